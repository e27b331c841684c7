"""--version, help, and the errors every command shares (no server, bad OLLAMA_HOST)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus import __version__
from tests.cli.conftest import Cli
from tests.cli.helpers import cli_env, run_cli
from tests.support import free_port

COMMANDS = ("serve", "create", "show", "run", "stop", "pull", "push", "list", "ps", "cp", "rm")


def test_version(cli: Cli) -> None:
    for flag in ("--version", "-v"):
        result = cli(flag)
        assert (result.code, result.out, result.err) == (0, f"nexus version is {__version__}\n", "")


def test_version_without_a_server(tmp_path: Path) -> None:
    env = cli_env(f"127.0.0.1:{free_port()}", tmp_path)
    result = run_cli(["--version"], env)
    assert (result.code, result.out) == (0, f"nexus version is {__version__}\n")


def test_help_lists_the_commands(cli: Cli) -> None:
    result = cli("help")
    assert result.code == 0
    assert result.out.startswith("Usage: ")
    listed = [line.split()[0] for line in result.out.split("Commands:")[1].splitlines() if line]
    assert set(COMMANDS) <= set(listed)
    assert cli("--help").out == result.out


def test_help_for_one_command(cli: Cli) -> None:
    result = cli("help", "run")
    assert result.code == 0
    for flag in ("--keepalive", "--verbose", "--format", "--nowordwrap", "--insecure"):
        assert flag in result.out
    assert result.out == cli("run", "--help").out
    unknown = cli("help", "nope")
    assert (unknown.code, unknown.err) == (1, 'Error: unknown help topic "nope"\n')


@pytest.mark.parametrize(
    "args",
    [["list"], ["ps"], ["show", "smollm2:135m"], ["run", "smollm2:135m", "hi"], ["rm", "x"]],
)
def test_no_server_is_said_plainly(tmp_path: Path, args: list[str]) -> None:
    port = free_port()  # nothing listens there
    result = run_cli(args, cli_env(f"127.0.0.1:{port}", tmp_path))
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"Error: could not connect to Nexus at http://127.0.0.1:{port}; is `nexus serve` running?\n"
    )


def test_a_bad_ollama_host(tmp_path: Path) -> None:
    result = run_cli(["list"], cli_env("127.0.0.1:notaport", tmp_path))
    assert result.code == 1
    assert result.err.startswith("Error: invalid OLLAMA_HOST=")
    assert result.err.count("\n") == 1


def test_usage_errors_exit_non_zero(cli: Cli) -> None:
    result = cli("cp", "only-one")
    assert result.code != 0
    assert "Error: Missing argument" in result.err
