"""What the deployment checks share: the repository root and the tools they need, found in the
project's environment (PyPI tools) or on PATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def find_tool(name: str) -> str | None:
    """``name`` from the project's venv (PyPI tools), else from PATH."""
    candidate = VENV_BIN / name
    if candidate.is_file():
        return str(candidate)
    return shutil.which(name)


def need_tool(name: str, how: str) -> str:
    found = find_tool(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({how})")
    return found


def compose_command() -> list[str]:
    """``docker compose`` where the plugin exists, else Debian's ``docker-compose``."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.skip("neither `docker compose` nor docker-compose (apt-get install docker-compose)")
    return [legacy]
