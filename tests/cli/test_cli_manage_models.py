"""manage-models.sh from the service README: its four verbs, run without docker compose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli
from tests.support import DEFAULT_MODEL

SCRIPT = Path(__file__).resolve().parents[2] / "manage-models.sh"
USAGE = "{pull|list|remove|info} [model-name]"


def _script(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _with_cli(env: dict[str, str]) -> dict[str, str]:
    return {**env, "OLLAMA_CLI": f"{sys.executable} -m nexus.cli.main"}


def test_it_ships_executable() -> None:
    assert SCRIPT.is_file()
    assert os.access(SCRIPT, os.X_OK)


def test_list_and_info(env: dict[str, str], cli: Cli) -> None:
    listed = _script(_with_cli(env), "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert DEFAULT_MODEL in listed.stdout
    info = _script(_with_cli(env), "info", DEFAULT_MODEL)
    assert info.returncode == 0, info.stderr
    assert info.stdout == cli("show", DEFAULT_MODEL).out


def test_the_cli_is_found_on_path_without_compose(env: dict[str, str]) -> None:
    # Only the interpreter's folder (with its nexus/ollama scripts) and the system tools.
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    listed = _script(env, "list", PATH=path)
    assert listed.returncode == 0, listed.stderr
    assert DEFAULT_MODEL in listed.stdout


def test_remove_and_errors(env: dict[str, str], cli: Cli) -> None:
    assert cli("cp", DEFAULT_MODEL, "cli-managed:latest").code == 0
    removed = _script(_with_cli(env), "remove", "cli-managed:latest")
    assert (removed.returncode, removed.stdout) == (0, "deleted 'cli-managed:latest'\n")
    missing = _script(_with_cli(env), "info", "no-such-model")
    assert missing.returncode == 1
    assert missing.stderr == "Error: model 'no-such-model' not found\n"


def test_usage(env: dict[str, str]) -> None:
    for args in ([], ["bogus"], ["pull"], ["info"]):
        result = _script(_with_cli(env), *args)
        assert result.returncode == 1
        assert result.stdout == f"Usage: {SCRIPT} {USAGE}\n"
