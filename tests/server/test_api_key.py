"""``NEXUS_API_KEY``: parsing, and a real server that answers only requests bearing a key,
driven by raw HTTP, the official ``ollama``, ``openai`` and ``anthropic`` clients and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from nexus.config import ClientSettings, ConfigError, Settings
from nexus.server.auth import ApiKeyAuth, presented_keys
from tests.cli.helpers import cli_env, run_cli
from tests.support import DEFAULT_MODEL, ServerProcess, free_port, start_server

K1 = "nexus-test-key-one-5d1f"
K2 = "nexus-test-key-two-93ac"
SHORT = {"temperature": 0, "num_predict": 4}
HI = [{"role": "user", "content": "Hi"}]

# ---- parsing ---------------------------------------------------------------------------------


def test_keys_are_trimmed_and_empty_entries_dropped() -> None:
    assert Settings.from_env({"NEXUS_API_KEY": f" {K1} , ,{K2} ,"}).api_keys == (K1, K2)
    assert Settings.from_env({"NEXUS_API_KEY": K1}).api_keys == (K1,)


def test_unset_or_empty_means_no_key() -> None:
    assert Settings.from_env({}).api_keys == ()
    assert Settings.from_env({"NEXUS_API_KEY": ""}).api_keys == ()


@pytest.mark.parametrize("value", [" , ", ",", " ", ",,  ,"])
def test_a_value_without_any_key_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"NEXUS_API_KEY": value})
    assert info.value.variable == "NEXUS_API_KEY"
    assert "NEXUS_API_KEY" in str(info.value)


def test_keys_stay_out_of_reprs() -> None:
    assert K1 not in repr(Settings.from_env({"NEXUS_API_KEY": K1}))
    assert K1 not in repr(ClientSettings.from_env({"NEXUS_API_KEY": K1}))


def test_client_uses_the_first_key() -> None:
    assert ClientSettings.from_env({"NEXUS_API_KEY": f"{K2},{K1}"}).api_key == K2
    assert ClientSettings.from_env({}).api_key is None


def test_presented_keys_read_bearer_and_x_api_key() -> None:
    headers = [(b"authorization", b"bearer  abc "), (b"x-api-key", b"def")]
    assert presented_keys(headers) == [b"abc", b"def"]
    assert presented_keys([(b"authorization", b"Basic abc")]) == []
    assert presented_keys([(b"authorization", b"Bearer ")]) == []


def test_only_whole_keys_match() -> None:
    auth = ApiKeyAuth(lambda *_: None, (K1, K2))  # type: ignore[arg-type, return-value]
    assert auth.accepts([K1.encode()]) and auth.accepts([K2.encode()])
    assert auth.accepts([b"wrong", K2.encode()])
    for near in (K1[:-1], K1 + "x", K1.upper(), "", " " + K1):
        assert not auth.accepts([near.encode()])
    assert not auth.accepts([])


# ---- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "locked.log"
    srv = start_server(
        models_dir,
        log,
        NEXUS_API_KEY=f"{K1}, {K2}",
        OLLAMA_CONTEXT_LENGTH="2048",
        OLLAMA_NUM_PARALLEL="1",
        OLLAMA_DEBUG="1",
    )
    yield srv
    srv.stop()
    text = log.read_text(errors="replace")
    assert K1 not in text and K2 not in text, "an API key reached the log"


@pytest.fixture
def raw(locked: ServerProcess) -> Iterator[httpx.Client]:
    with locked.client() as client:
        yield client


def assert_challenge(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"x-api-key": "nope"}])
def test_ollama_routes_answer_401_in_ollama_shape(
    raw: httpx.Client, headers: dict[str, str]
) -> None:
    response = raw.get("/api/tags", headers=headers)
    assert_challenge(response)
    body = response.json()
    assert set(body) == {"error"} and "API key" in body["error"]
    chat = raw.post("/api/chat", json={"model": DEFAULT_MODEL, "messages": HI}, headers=headers)
    assert_challenge(chat)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_openai_routes_answer_401_in_openai_shape(
    raw: httpx.Client, headers: dict[str, str]
) -> None:
    response = raw.get("/v1/models", headers=headers)
    assert_challenge(response)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    assert "API key" in error["message"]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "nope"}])
def test_anthropic_route_answers_401_in_anthropic_shape(
    raw: httpx.Client, headers: dict[str, str]
) -> None:
    body = {"model": DEFAULT_MODEL, "max_tokens": 4, "messages": HI}
    response = raw.post("/v1/messages", json=body, headers=headers)
    assert_challenge(response)
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "authentication_error"
    assert "API key" in payload["error"]["message"]


def test_sdk_errors_name_the_failure(locked: ServerProcess) -> None:
    with (
        openai.OpenAI(
            base_url=f"{locked.url}/v1",
            api_key="wrong",
            max_retries=0,
            http_client=httpx.Client(trust_env=False, timeout=120),
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=locked.url, timeout=120, trust_env=False).list()
    assert info.value.status_code == 401


def test_root_is_open(raw: httpx.Client) -> None:
    assert raw.get("/").status_code == 200
    assert raw.head("/").status_code == 200
    assert_challenge(raw.post("/"))


def test_cors_preflight_needs_no_key(raw: httpx.Client) -> None:
    preflight = raw.options(
        "/api/chat",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    # the 401 itself carries CORS headers, so a page can read why it was refused
    refused = raw.get("/api/tags", headers={"Origin": "http://localhost:3000"})
    assert_challenge(refused)
    assert refused.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_metrics_needs_the_key(raw: httpx.Client) -> None:
    assert_challenge(raw.get("/metrics"))
    scraped = raw.get("/metrics", headers={"Authorization": f"Bearer {K2}"})
    assert scraped.status_code == 200
    assert "nexus_requests_total" in scraped.text


def test_registry_reads_stay_open(raw: httpx.Client) -> None:
    assert raw.get("/v2/").status_code == 200
    manifest = raw.get(f"/v2/library/{DEFAULT_MODEL.replace(':', '/manifests/')}")
    assert manifest.status_code == 200
    assert manifest.json()["layers"]


def test_either_key_opens_raw_http(raw: httpx.Client) -> None:
    for key in (K1, K2):
        tags = raw.get("/api/tags", headers={"Authorization": f"Bearer {key}"})
        assert tags.status_code == 200
        assert any(m["name"] == DEFAULT_MODEL for m in tags.json()["models"])
    assert raw.get("/api/ps", headers={"x-api-key": K1}).status_code == 200


def test_ollama_client_with_key(locked: ServerProcess) -> None:
    client = ollama.Client(
        host=locked.url, headers={"Authorization": f"Bearer {K2}"}, timeout=120, trust_env=False
    )
    assert any(m.model == DEFAULT_MODEL for m in client.list().models)
    parts = list(client.chat(model=DEFAULT_MODEL, messages=HI, stream=True, options=SHORT))
    assert parts[-1].done
    assert parts[-1].eval_count and parts[-1].eval_count > 0


def test_openai_sdk_with_key(locked: ServerProcess) -> None:
    with openai.OpenAI(
        base_url=f"{locked.url}/v1",
        api_key=K1,
        max_retries=0,
        http_client=httpx.Client(trust_env=False, timeout=120),
    ) as client:
        assert DEFAULT_MODEL in [m.id for m in client.models.list()]
        stream = client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            stream=True,
        )
        chunks = list(stream)
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_anthropic_sdk_with_key(locked: ServerProcess) -> None:
    with anthropic.Anthropic(
        base_url=locked.url,
        api_key=K2,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False, timeout=120),
    ) as client:
        message = client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=4,
            messages=[{"role": "user", "content": "Hi"}],
        )
        assert message.usage.output_tokens > 0


def test_cli_sends_the_first_key_from_its_environment(
    locked: ServerProcess, tmp_path: Path
) -> None:
    ok = run_cli(["list"], cli_env(locked.url, tmp_path, NEXUS_API_KEY=f"{K2},{K1}"))
    assert ok.code == 0, ok.err
    assert DEFAULT_MODEL in ok.out
    env = cli_env(locked.url, tmp_path)
    env.pop("NEXUS_API_KEY", None)
    refused = run_cli(["list"], env)
    assert refused.code != 0
    assert "API key" in refused.err


def test_start_up_refuses_a_value_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "NEXUS_"))}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{free_port()}", OLLAMA_MODELS=str(tmp_path), NEXUS_API_KEY=" , "
    )
    proc = subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "NEXUS_API_KEY" in lines[0]
