"""The compose files: valid for Compose, the service README's layout, and an environment the
server and the gateway accept as it is, with every tuning variable left to its default."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import yaml

from nexus.config import Settings
from nexus.gateway.config import GatewaySettings
from tests.deploy.tools import ROOT, compose_command

GPU_FILE = "docker-compose.yml"
CPU_FILE = "docker-compose.cpu.yml"
README_GPU = {
    "resources": {
        "reservations": {"devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}
    }
}
TUNING = [
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_MAX_LOADED_MODELS",
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_MAX_QUEUE",
    "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_NUM_CTX",
    "OLLAMA_FLASH_ATTENTION",
    "OLLAMA_KV_CACHE_TYPE",
    "OLLAMA_LOAD_TIMEOUT",
    "OLLAMA_DEBUG",
]


def source(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


def resolved(name: str, **env: str) -> dict[str, Any]:
    """``compose config`` of one file, with only ``env`` set beside PATH and HOME."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
    }
    full_env.update(env)
    result = subprocess.run(
        [*compose_command(), "-f", name, "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_compose_validates(name: str) -> None:
    data = resolved(name)
    assert set(data["services"]) == {"ollama", "gateway"}


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_server_service_as_the_service_readme_shows(name: str) -> None:
    ollama = source(name)["services"]["ollama"]
    assert ollama["ports"] == ["11434:11434"]
    assert environment(ollama)["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert ollama["volumes"] == ["ollama_data:/root/.ollama"]
    assert "nexus-healthcheck" in ollama["healthcheck"]["test"]
    # The README's backup commands address the volume by this name.
    assert source(name)["volumes"]["ollama_data"]["name"] == "nexus_ollama_data"


def test_gpu_reservation_is_the_readmes() -> None:
    ollama = source(GPU_FILE)["services"]["ollama"]
    assert ollama["deploy"] == README_GPU
    assert ollama["build"]["target"] == "cuda"
    assert ollama["image"] == "nexus:cuda"


def test_cpu_file_is_the_gpu_file_less_the_gpu() -> None:
    gpu, cpu = source(GPU_FILE), source(CPU_FILE)
    assert "deploy" not in cpu["services"]["ollama"]
    assert cpu["services"]["ollama"]["build"]["target"] == "cpu"
    assert cpu["services"]["ollama"]["image"] == "nexus:cpu"
    for data in (gpu, cpu):
        server = data["services"]["ollama"]
        server.pop("deploy", None)
        server.pop("image")
        server["build"].pop("target")
        server["build"]["args"].pop("CUDA_ARCHITECTURES", None)
    assert gpu == cpu


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_gateway_service(name: str) -> None:
    gateway = source(name)["services"]["gateway"]
    assert gateway["build"]["target"] == "cpu"
    assert gateway["command"] == ["nexus", "gateway"]
    assert gateway["ports"] == ["8800:8800"]
    assert gateway["depends_on"] == {"ollama": {"condition": "service_healthy"}}
    assert gateway["volumes"] == ["gateway_data:/data"]
    assert gateway["healthcheck"]["test"] == ["CMD", "nexus-healthcheck", "--gateway"]
    env = environment(gateway)
    assert env["OLLAMA_BASE_URL"] == "http://ollama:11434"
    assert env["DEFAULT_BACKEND"] == "ollama"
    assert env["NEXUS_GATEWAY_HOST"] == "0.0.0.0:8800"
    assert env["NEXUS_GATEWAY_DB"] == "sqlite:////data/gateway.db"


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_unset_tuning_variables_give_the_servers_defaults(name: str) -> None:
    env = environment(resolved(name)["services"]["ollama"])
    assert set(TUNING) <= set(env)
    settings = Settings.from_env(env)
    assert settings == Settings.from_env({"OLLAMA_HOST": "0.0.0.0:11434"})
    assert settings.host.host == "0.0.0.0" and settings.host.port == 11434


def test_tuning_variables_pass_through() -> None:
    env = environment(
        resolved(
            GPU_FILE,
            OLLAMA_NUM_CTX="4096",
            OLLAMA_NUM_PARALLEL="4",
            OLLAMA_MAX_LOADED_MODELS="2",
            OLLAMA_KEEP_ALIVE="10m",
            OLLAMA_FLASH_ATTENTION="1",
            OLLAMA_KV_CACHE_TYPE="q8_0",
        )["services"]["ollama"]
    )
    settings = Settings.from_env(env)
    assert settings.context_length == 4096
    assert settings.num_parallel == 4
    assert settings.max_loaded_models == 2
    assert settings.keep_alive == 600
    assert settings.flash_attention is True
    assert settings.kv_cache_type == "q8_0"


def test_gateway_accepts_its_compose_environment() -> None:
    env = environment(resolved(GPU_FILE)["services"]["gateway"])
    settings = GatewaySettings.from_env(env)
    assert [(b.name, b.kind, b.url) for b in settings.backends] == [
        ("ollama", "ollama", "http://ollama:11434")
    ]
    assert settings.default_backend == "ollama"
    assert (settings.host.host, settings.host.port) == ("0.0.0.0", 8800)
    assert settings.db_url == "sqlite:////data/gateway.db"
