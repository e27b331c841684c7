"""The images' entrypoint and health check, run here against real servers on loopback."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from tests.deploy.tools import ROOT, VENV_BIN
from tests.gateway.harness import gateway_env, start_gateway
from tests.support import ServerProcess, free_port, start_server

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"


def clean_env(**env: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_", "NEXUS_")) and k != "DEFAULT_BACKEND"
    }
    base["PATH"] = f"{VENV_BIN}:{base.get('PATH', '/usr/bin:/bin')}"
    base.update(env)
    return base


def entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
    )


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


def test_a_nexus_subcommand_runs_nexus() -> None:
    result = entrypoint("--version")
    assert result.returncode == 0, result.stderr
    assert "nexus version is" in result.stdout + result.stderr
    listing = entrypoint("help", "list")
    assert listing.returncode == 0, listing.stderr
    assert "List models" in listing.stdout


def test_any_program_on_path_runs_as_given() -> None:
    result = entrypoint("printenv", "OLLAMA_HOST", OLLAMA_HOST="0.0.0.0:11434")
    assert result.returncode == 0
    assert result.stdout.strip() == "0.0.0.0:11434"


def test_default_model_registration_failure_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    port = free_port()
    result = entrypoint(
        "serve",
        NEXUS_IMPORT_DEFAULT="1",
        OLLAMA_MODELS=str(blocker / "models"),
        OLLAMA_HOST=f"127.0.0.1:{port}",
    )
    assert result.returncode == 1
    assert "could not register the default model" in result.stderr


def test_registration_only_before_serve(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = entrypoint("list", NEXUS_IMPORT_DEFAULT="1", OLLAMA_MODELS=str(models),
                        OLLAMA_HOST=f"127.0.0.1:{free_port()}")  # fmt: skip
    assert result.returncode != 0  # no server there
    assert not models.exists()


def test_healthcheck_against_the_server(server: ServerProcess) -> None:
    host = server.url.removeprefix("http://")
    assert healthcheck(OLLAMA_HOST=host).returncode == 0
    wildcard = f"0.0.0.0:{host.rsplit(':', 1)[1]}"
    assert healthcheck(OLLAMA_HOST=wildcard).returncode == 0, "a bind address is asked on loopback"
    down = healthcheck(OLLAMA_HOST=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert "unhealthy" in down.stderr
    bad = healthcheck(OLLAMA_HOST="host:99999")
    assert bad.returncode == 1


def test_healthcheck_against_the_gateway(server: ServerProcess, tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "gateway.db", OLLAMA_BASE_URL=server.url)
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        host = gateway.url.removeprefix("http://")
        assert healthcheck("--gateway", NEXUS_GATEWAY_HOST=host).returncode == 0
        gone = healthcheck("--gateway", NEXUS_GATEWAY_HOST=f"127.0.0.1:{free_port()}")
        assert gone.returncode == 1
    finally:
        gateway.stop()


def test_healthcheck_presents_the_servers_api_key(models_dir: Path, tmp_path: Path) -> None:
    server = start_server(models_dir, tmp_path / "server.log", NEXUS_API_KEY="sesame,other")
    try:
        host = server.url.removeprefix("http://")
        assert healthcheck(OLLAMA_HOST=host, NEXUS_API_KEY="sesame").returncode == 0
        wrong = healthcheck(OLLAMA_HOST=host, NEXUS_API_KEY="nope")
        assert wrong.returncode == 1
        assert "HTTP 401" in wrong.stderr
    finally:
        server.stop()


def test_healthcheck_tells_a_gateway_container_by_its_main_process() -> None:
    spec = importlib.util.spec_from_file_location("nexus_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.runs_gateway(["/opt/nexus/bin/python", "/opt/nexus/bin/nexus", "gateway"])
    assert module.runs_gateway(["ollama", "gateway"])
    assert not module.runs_gateway(["/opt/nexus/bin/python", "/opt/nexus/bin/nexus", "serve"])
    assert not module.runs_gateway(["/usr/bin/gateway", "nexus"])
    assert not module.runs_gateway([])


def test_healthcheck_server_flag_wins(server: ServerProcess) -> None:
    host = server.url.removeprefix("http://")
    assert healthcheck("--server", OLLAMA_HOST=host).returncode == 0
    both = healthcheck("--server", "--gateway", OLLAMA_HOST=host)
    assert both.returncode == 2
