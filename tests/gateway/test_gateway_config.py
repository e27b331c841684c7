"""The gateway's configuration: defaults, backends from the environment and YAML, bad values."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.config import ConfigError
from nexus.gateway.config import GatewaySettings


def test_defaults() -> None:
    settings = GatewaySettings.from_env({})
    assert (settings.host.host, settings.host.port) == ("127.0.0.1", 8800)
    assert [(b.name, b.kind, b.url) for b in settings.backends] == [
        ("ollama", "ollama", "http://127.0.0.1:11434")
    ]
    assert settings.default_backend == "ollama"
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("gateway.db")


@pytest.mark.parametrize(("text", "seconds"), [("", 60.0), ("5s", 5.0), ("0", math.inf)])
def test_write_timeout(text: str, seconds: float) -> None:
    env = {"NEXUS_GATEWAY_WRITE_TIMEOUT": text} if text else {}
    assert GatewaySettings.from_env(env).write_timeout == seconds


@pytest.mark.parametrize(("text", "count"), [("", None), ("0", None), ("300", 300)])
def test_connections_from_one_address(text: str, count: int | None) -> None:
    env = {"NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS": text} if text else {}
    assert GatewaySettings.from_env(env).max_client_connections == count


def test_backends_from_a_list_and_a_file(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "backends:\n"
        "  - {name: vllm, kind: openai, url: 'http://vllm:8000/v1', weight: 3,"
        " api_key_env: VLLM_KEY}\n"
    )
    settings = GatewaySettings.from_env(
        {
            "OLLAMA_BASE_URL": "http://ollama:11434, http://other:11434/",
            "NEXUS_GATEWAY_CONFIG": str(config),
            "DEFAULT_BACKEND": "vllm",
            "VLLM_KEY": "secret-key",
            "NEXUS_GATEWAY_HOST": "0.0.0.0",
        }
    )
    assert [(b.name, b.kind, b.url, b.weight) for b in settings.backends] == [
        ("ollama", "ollama", "http://ollama:11434", 1.0),
        ("ollama-2", "ollama", "http://other:11434", 1.0),
        ("vllm", "openai", "http://vllm:8000", 3.0),
    ]
    assert settings.backends[2].api_key == "secret-key"
    assert "secret-key" not in repr(settings)
    assert settings.host.port == 8800 and settings.host.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OLLAMA_BASE_URL": "ftp://x"}, "OLLAMA_BASE_URL"),
        ({"OLLAMA_BASE_URL": "http://x:notaport"}, "OLLAMA_BASE_URL"),
        ({"DEFAULT_BACKEND": "nope"}, "DEFAULT_BACKEND"),
        ({"NEXUS_GATEWAY_HOST": "host:99999"}, "NEXUS_GATEWAY_HOST"),
        ({"NEXUS_GATEWAY_DB": "mysql://x/y"}, "NEXUS_GATEWAY_DB"),
        ({"NEXUS_GATEWAY_CONFIG": "/nonexistent.yaml"}, "NEXUS_GATEWAY_CONFIG"),
        ({"NEXUS_GATEWAY_POLL_INTERVAL": "soon"}, "NEXUS_GATEWAY_POLL_INTERVAL"),
        ({"NEXUS_GATEWAY_TIMEOUT": "0"}, "NEXUS_GATEWAY_TIMEOUT"),
        ({"NEXUS_GATEWAY_MAX_BODY": "-1"}, "NEXUS_GATEWAY_MAX_BODY"),
        ({"NEXUS_GATEWAY_READ_TIMEOUT": "0"}, "NEXUS_GATEWAY_READ_TIMEOUT"),
        ({"NEXUS_GATEWAY_WRITE_TIMEOUT": "0.01"}, "NEXUS_GATEWAY_WRITE_TIMEOUT"),
        ({"NEXUS_GATEWAY_WRITE_TIMEOUT": "later"}, "NEXUS_GATEWAY_WRITE_TIMEOUT"),
        ({"NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS": "-5"}, "NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_env(env)
    assert caught.value.variable == variable


@pytest.mark.parametrize(
    "text",
    [
        "backends: []",
        "backends:\n  - {kind: grpc, url: 'http://x'}",
        "backends:\n  - {kind: openai}",
        "backends:\n  - {url: 'http://x', weight: 0}",
        "backends:\n  - {url: 'http://x', api_key_env: UNSET_VARIABLE}",
        "backends:\n  - {name: a, url: 'http://x'}\n  - {name: a, url: 'http://y'}",
        "[not yaml",
    ],
)
def test_a_bad_file_is_refused(tmp_path: Path, text: str) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_env({"NEXUS_GATEWAY_CONFIG": str(config)})
    assert caught.value.variable == "NEXUS_GATEWAY_CONFIG"


def test_start_up_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "gateway"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DEFAULT_BACKEND": "missing"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "Error: invalid DEFAULT_BACKEND='missing': must name a backend (ollama)"
    ]
