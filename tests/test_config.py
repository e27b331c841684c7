"""Settings.from_env: Ollama's variables, defaults and forms; bad values are start-up errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.config import ConfigError, HostAddress, Settings, parse_duration, parse_host
from tests.support import free_port


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


# ---- defaults --------------------------------------------------------------------------------


def test_defaults_from_empty_environment() -> None:
    s = settings()
    assert s.host.scheme == "http"
    assert s.host.host == "127.0.0.1"
    assert s.host.port == 11434
    assert s.host.url == "http://127.0.0.1:11434"
    assert s.models == Path.home() / ".ollama" / "models"
    assert s.keep_alive == 300.0
    assert s.load_timeout == 300.0
    assert s.max_queue == 512
    assert s.num_parallel is None
    assert s.context_length is None
    assert s.max_loaded_models == 0
    assert s.effective_max_loaded_models == 3
    assert s.kv_cache_type == "f16"
    assert s.flash_attention is None
    assert s.noprune is False
    assert s.debug == 0
    assert s.origins == ()


def test_from_env_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "7")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5555")
    s = Settings.from_env()
    assert s.max_queue == 7
    assert s.host.port == 5555


def test_defaults_ignore_unrelated_variables() -> None:
    s = settings(PATH="/usr/bin", HOME="/nowhere", OLLAMA_UNKNOWN_THING="x")
    assert s.max_queue == 512
    assert s.host.port == 11434


def test_empty_values_mean_default() -> None:
    s = settings(OLLAMA_NUM_PARALLEL="", OLLAMA_KEEP_ALIVE=" ", OLLAMA_HOST="", OLLAMA_MAX_QUEUE="")
    assert s.num_parallel is None
    assert s.keep_alive == 300.0
    assert s.host.url == "http://127.0.0.1:11434"
    assert s.max_queue == 512


# ---- OLLAMA_HOST -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "port", "url"),
    [
        ("0.0.0.0:11434", "0.0.0.0", 11434, "http://127.0.0.1:11434"),
        ("0.0.0.0", "0.0.0.0", 11434, "http://127.0.0.1:11434"),
        ("127.0.0.1:8080", "127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("11435", "127.0.0.1", 11435, "http://127.0.0.1:11435"),
        ("http://h:80", "h", 80, "http://h:80"),
        ("http://h", "h", 80, "http://h:80"),
        ("https://example.com", "example.com", 443, "https://example.com:443"),
        ("[::1]:5000", "::1", 5000, "http://[::1]:5000"),
        ("[::1]", "::1", 11434, "http://[::1]:11434"),
        ('"127.0.0.1:9000"', "127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("  localhost:9001  ", "localhost", 9001, "http://localhost:9001"),
    ],
)
def test_ollama_host_forms(value: str, host: str, port: int, url: str) -> None:
    address = settings(OLLAMA_HOST=value).host
    assert (address.host, address.port) == (host, port)
    assert address.url == url


def test_ollama_host_port_only_binds_all_interfaces() -> None:
    address = settings(OLLAMA_HOST=":1234").host
    assert address.port == 1234
    assert address.host in ("", "0.0.0.0")
    assert address.url == "http://127.0.0.1:1234"


def test_https_scheme_is_kept() -> None:
    address = settings(OLLAMA_HOST="https://example.com:8443").host
    assert address == HostAddress(scheme="https", host="example.com", port=8443)


def test_parse_host_direct() -> None:
    assert parse_host("") == HostAddress("http", "127.0.0.1", 11434)
    with pytest.raises(ValueError):
        parse_host("host:99999")


# ---- context length --------------------------------------------------------------------------


def test_context_length() -> None:
    assert settings(OLLAMA_CONTEXT_LENGTH="4096").context_length == 4096


def test_num_ctx_is_an_alias_for_context_length() -> None:
    assert settings(OLLAMA_NUM_CTX="3072").context_length == 3072


def test_context_length_wins_over_num_ctx() -> None:
    s = settings(OLLAMA_CONTEXT_LENGTH="4096", OLLAMA_NUM_CTX="1024")
    assert s.context_length == 4096


def test_context_length_zero_is_automatic() -> None:
    assert settings(OLLAMA_CONTEXT_LENGTH="0").context_length is None


# ---- keep-alive and durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300", 300.0),
        ("10", 10.0),
        ("0", 0.0),
        ("90s", 90.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2h0m0s", 7200.0),
        ('"5m"', 300.0),
    ],
)
def test_keep_alive_durations(value: str, seconds: float) -> None:
    assert settings(OLLAMA_KEEP_ALIVE=value).keep_alive == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-1", "-1m", "-5s", "-1h30m"])
def test_negative_keep_alive_is_forever(value: str) -> None:
    assert settings(OLLAMA_KEEP_ALIVE=value).keep_alive == math.inf


def test_read_and_write_timeouts() -> None:
    assert (settings().read_timeout, settings().write_timeout) == (30.0, 60.0)
    s = settings(NEXUS_READ_TIMEOUT="5s", NEXUS_WRITE_TIMEOUT="2m")
    assert (s.read_timeout, s.write_timeout) == (5.0, 120.0)
    assert math.isinf(settings(NEXUS_WRITE_TIMEOUT="0").write_timeout)


def test_connections_from_one_address() -> None:
    assert settings().max_client_connections is None
    assert settings(NEXUS_MAX_CLIENT_CONNECTIONS="0").max_client_connections is None
    assert settings(NEXUS_MAX_CLIENT_CONNECTIONS="500").max_client_connections == 500
    with pytest.raises(ConfigError, match="NEXUS_MAX_CLIENT_CONNECTIONS"):
        settings(NEXUS_MAX_CLIENT_CONNECTIONS="many")


def test_load_timeout_zero_or_negative_is_forever() -> None:
    assert settings(OLLAMA_LOAD_TIMEOUT="0").load_timeout == math.inf
    assert settings(OLLAMA_LOAD_TIMEOUT="-1").load_timeout == math.inf
    assert settings(OLLAMA_LOAD_TIMEOUT="2m").load_timeout == 120.0


@pytest.mark.parametrize("text", ["", "soon", "5", "5x", "m5", "1h30", "--1m"])
def test_parse_duration_rejects_or_reads_seconds(text: str) -> None:
    if text == "5":
        assert parse_duration(text) == 5.0
        return
    with pytest.raises(ValueError):
        parse_duration(text)


# ---- other variables -------------------------------------------------------------------------


def test_numeric_and_boolean_variables() -> None:
    s = settings(
        OLLAMA_NUM_PARALLEL="2",
        OLLAMA_MAX_QUEUE="0",
        OLLAMA_MAX_LOADED_MODELS="1",
        OLLAMA_FLASH_ATTENTION="true",
        OLLAMA_NOPRUNE="1",
        OLLAMA_KV_CACHE_TYPE="Q8_0",
        OLLAMA_ORIGINS="http://a.example, https://b.example",
        OLLAMA_DEBUG="2",
        OLLAMA_MODELS="/srv/models",
    )
    assert s.num_parallel == 2
    assert s.max_queue == 0
    assert s.max_loaded_models == 1
    assert s.effective_max_loaded_models == 1
    assert s.flash_attention is True
    assert s.noprune is True
    assert s.kv_cache_type == "q8_0"
    assert s.origins == ("http://a.example", "https://b.example")
    assert s.debug == 2
    assert s.models == Path("/srv/models")


def test_false_booleans_and_debug_true() -> None:
    s = settings(OLLAMA_FLASH_ATTENTION="0", OLLAMA_NOPRUNE="false", OLLAMA_DEBUG="true")
    assert s.flash_attention is False
    assert s.noprune is False
    assert s.debug == 1


def test_models_path_expands_user() -> None:
    assert settings(OLLAMA_MODELS="~/m").models == Path.home() / "m"


# ---- bad values ------------------------------------------------------------------------------

BAD_VALUES = [
    ("OLLAMA_NUM_PARALLEL", "abc"),
    ("OLLAMA_KEEP_ALIVE", "soon"),
    ("OLLAMA_KV_CACHE_TYPE", "q5"),
    ("OLLAMA_HOST", "host:99999"),
    ("OLLAMA_NOPRUNE", "maybe"),
    ("OLLAMA_MAX_QUEUE", "-3"),
    ("OLLAMA_CONTEXT_LENGTH", "4k"),
    ("OLLAMA_LOAD_TIMEOUT", "forever"),
    ("OLLAMA_FLASH_ATTENTION", "yes please"),
    ("OLLAMA_HOST", "127.0.0.1:port"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_bad_value_raises_config_error_naming_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**{variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OLLAMA_NUM_PARALLEL", "abc"),
        ("OLLAMA_KEEP_ALIVE", "soon"),
        ("OLLAMA_KV_CACHE_TYPE", "q5"),
        ("OLLAMA_HOST", "host:99999"),
        ("OLLAMA_NOPRUNE", "maybe"),
    ],
)
def test_serve_with_bad_variable_exits_with_one_line(
    variable: str, value: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    # Should it start anyway, it binds a free loopback port and an empty store.
    env["OLLAMA_HOST"] = f"127.0.0.1:{free_port()}"
    env["OLLAMA_MODELS"] = str(tmp_path / "models")
    env[variable] = value
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nexus.cli.main", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"nexus serve kept running with {variable}={value!r}")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists(), "nothing may be created before settings parse"
