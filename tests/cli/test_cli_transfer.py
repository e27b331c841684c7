"""pull, push, and run's pull-on-404, between real servers: the session server is the
registry that a second server pulls from, and a third server takes pushes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import cli_env, run_cli
from tests.support import DEFAULT_MODEL, ServerProcess, start_server

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with an empty store that pulls, and pushes with the shared token."""
    root = tmp_path_factory.mktemp("node")
    srv = start_server(
        root / "models", root / "server.log", NEXUS_PUSH_TOKEN=TOKEN, OLLAMA_CONTEXT_LENGTH="1024"
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that accepts pushes made with the shared token."""
    root = tmp_path_factory.mktemp("target")
    srv = start_server(root / "models", root / "server.log", NEXUS_PUSH_TOKEN=TOKEN)
    yield srv
    srv.stop()


def _host(srv: ServerProcess) -> str:
    return srv.url.removeprefix("http://")


def _env(srv: ServerProcess, home: Path) -> dict[str, str]:
    return cli_env(_host(srv), home)


def test_pull_from_another_node(node: ServerProcess, server: ServerProcess, tmp_path: Path) -> None:
    name = f"{_host(server)}/library/{DEFAULT_MODEL}"
    result = run_cli(["pull", "--insecure", name], _env(node, tmp_path))
    assert result.code == 0, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [line for line in lines if line.startswith("pulling ") and ": 100% " in line]
    assert len(layers) >= 2  # the weights and at least one small layer
    with server.client() as api:
        digest = next(
            m["digest"] for m in api.get("/api/tags").json()["models"] if m["name"] == DEFAULT_MODEL
        )
    listed = run_cli(["list"], _env(node, tmp_path)).out
    assert f"{name}    {digest[:12]}" in listed


def test_pull_of_a_missing_model(
    node: ServerProcess, server: ServerProcess, tmp_path: Path
) -> None:
    name = f"{_host(server)}/library/no-such-model:latest"
    result = run_cli(["pull", "--insecure", name], _env(node, tmp_path))
    assert result.code == 1
    assert result.err.splitlines()[-1] == "Error: pull model manifest: file does not exist"


def test_push_to_another_node(
    node: ServerProcess, target: ServerProcess, server: ServerProcess, tmp_path: Path
) -> None:
    env = _env(node, tmp_path)
    source = f"{_host(server)}/library/{DEFAULT_MODEL}"
    assert run_cli(["pull", "--insecure", source], env).code == 0
    name = f"{_host(target)}/library/pushed:v1"
    assert run_cli(["cp", source, name], env).code == 0
    result = run_cli(["push", "--insecure", name], env)
    assert result.code == 0, result.err
    assert result.out == f"\nPushed; the model is now at:\n\n\t{name}\n"
    lines = result.err.splitlines()
    assert lines[0] == "retrieving manifest"
    assert lines[-2:] == ["pushing manifest", "success"]
    assert "pushed:v1" in run_cli(["list"], _env(target, tmp_path)).out


def test_run_pulls_a_model_it_does_not_have(
    node: ServerProcess, server: ServerProcess, tmp_path: Path
) -> None:
    with server.client() as api:
        api.post(
            "/api/create",
            json={
                "model": "cli-pull-me:latest",
                "from": DEFAULT_MODEL,
                "parameters": {"temperature": 0, "num_predict": 4},
                "stream": False,
            },
        ).raise_for_status()
        try:
            name = f"{_host(server)}/library/cli-pull-me:latest"
            result = run_cli(["run", "--insecure", name, "Hi"], _env(node, tmp_path))
        finally:
            api.request("DELETE", "/api/delete", json={"model": "cli-pull-me:latest"})
    assert result.code == 0, result.err
    assert "pulling manifest" in result.err and "success" in result.err
    assert result.out.endswith("\n\n") and result.out.strip()
    with httpx.Client(base_url=node.url, trust_env=False) as api:
        api.post("/api/generate", json={"model": name, "keep_alive": 0}).raise_for_status()
