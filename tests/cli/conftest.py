"""Fixtures for the CLI tests: the CLI run as a subprocess against the session server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import Result, Terminal, cli_env, run_cli
from tests.support import DEFAULT_MODEL, ServerProcess

Cli = Callable[..., Result]


@pytest.fixture(scope="session")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="session")
def host(server: ServerProcess) -> str:
    return server.url.removeprefix("http://")


@pytest.fixture(scope="session")
def env(host: str, cli_home: Path) -> dict[str, str]:
    return cli_env(host, cli_home)


@pytest.fixture(scope="session")
def cli(env: dict[str, str]) -> Cli:
    """``cli("list")`` runs ``python -m nexus.cli.main list`` against the session server."""

    def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Result:
        return run_cli(list(args), env, stdin=stdin, cwd=cwd)

    return run


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def greedy(api: httpx.Client) -> Iterator[str]:
    """A copy of the default model that always picks the likeliest token, briefly."""
    name = f"cli-greedy-{uuid.uuid4().hex[:8]}:latest"
    body = {
        "model": name,
        "from": DEFAULT_MODEL,
        "parameters": {"temperature": 0, "num_predict": 12},
        "stream": False,
    }
    api.post("/api/create", json=body).raise_for_status()
    yield name
    api.request("DELETE", "/api/delete", json={"model": name})


@pytest.fixture
def scratch(api: httpx.Client) -> Iterator[Callable[[str], str]]:
    """Unique model names; whatever exists under them afterwards is deleted."""
    names: list[str] = []

    def make(prefix: str = "scratch") -> str:
        name = f"cli-{prefix}-{uuid.uuid4().hex[:8]}:latest"
        names.append(name)
        return name

    yield make
    for name in names:
        api.request("DELETE", "/api/delete", json={"model": name})


@pytest.fixture
def terminal(env: dict[str, str]) -> Iterator[Callable[..., Terminal]]:
    """Start the CLI on a pseudo-terminal; it is killed afterwards if still running."""
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal.start(list(args), {**env, "TERM": "xterm"})
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()
