"""llama.cpp's server as an ``openai`` backend: Ollama's native API through the gateway.

``llama-server`` when one is built (``LLAMA_SERVER``, or the bench's build), else the same
llama.cpp server code as the engine runs it (see ``tests/gateway/llamacpp.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import ollama
import openai
import pytest

from nexus.store.default_model import default_gguf_path
from tests.gateway.e2e.conftest import GATEWAY_ENV
from tests.gateway.harness import GatewayProcess, openai_gateway
from tests.gateway.llamacpp import start_llamacpp_openai

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def llama_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, str, str]]:
    root = tmp_path_factory.mktemp("llama-gateway")
    url, stop = start_llamacpp_openai(default_gguf_path(), root / "llama.log")
    try:
        with openai_gateway(root, "llama", f"{url}/v1", **GATEWAY_ENV) as (gateway, key):
            with gateway.client(key) as http:
                model = http.get("/v1/models").json()["data"][0]["id"]
            yield gateway, key, model
    finally:
        stop()


def test_native_chat_through_the_gateway_to_llamacpp(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    gateway, key, model = llama_gateway
    client = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})
    names = [m.model for m in client.list().models]
    assert names and names[0].endswith(":latest")
    options = {"num_predict": 8, "temperature": 0, "seed": 1}
    whole = client.chat(model=names[0], messages=MESSAGES, options=options)
    assert whole.done and whole.message.role == "assistant" and whole.message.content
    assert whole.eval_count and whole.prompt_eval_count
    parts = list(client.chat(model=names[0], messages=MESSAGES, options=options, stream=True))
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    generated = client.generate(model=model, prompt="The sky is", options=options)
    assert generated.done and generated.response
    embedded = client.embed(model=model, input=["one", "two"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) > 10


def test_a_lone_surrogate_is_translated_as_a_replacement_character(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    """A client's ``"\\ud800"`` (no text UTF-8 can hold) reads as U+FFFD, as Go's decoder reads
    it, so the native request is translated and served, and the reply is valid UTF-8."""
    gateway, key, model = llama_gateway
    body = (
        '{"model": "' + model + '", "stream": true, "options": {"num_predict": 4}, '
        '"messages": [{"role": "user", "content": "hi\\ud800"}]}'
    )
    with gateway.client(key) as http:
        resp = http.post("/api/chat", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    lines = [json.loads(line) for line in resp.content.decode("utf-8").splitlines()]
    assert lines[-1]["done"] is True


def test_a_body_of_too_many_small_values_is_400_before_parsing(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    """150,001 empty messages: refused by their count before the gateway parses them."""
    gateway, key, model = llama_gateway
    body = b'{"model": "%s", "messages": [%s]}' % (model.encode(), b",".join([b"{}"] * 150_001))
    with gateway.client(key) as http:
        resp = http.post("/api/chat", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text[:300]
        assert "100,000 JSON arrays and objects" in resp.text
        assert http.get("/api/tags").status_code == 200


def test_openai_api_passes_through_to_llamacpp(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    gateway, key, model = llama_gateway
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    chunks = list(
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=6, stream=True)  # type: ignore[arg-type]
    )
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    with gateway.client(key) as http:
        usage = http.get("/metrics").text
    assert 'nexus_gateway_tokens_total{kind="completion"' in usage or 'kind="completion"' in usage


def test_unknown_backend_header_is_400(llama_gateway: tuple[GatewayProcess, str, str]) -> None:
    gateway, key, model = llama_gateway
    with gateway.client(key) as http:
        reply = http.post(
            "/api/chat",
            json={"model": model, "messages": MESSAGES},
            headers={"X-Nexus-Backend": "nope"},
        )
        assert reply.status_code == 400 and "unknown backend" in reply.json()["error"]


def test_load_and_unload_requests_are_answered_for_an_openai_backend(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    gateway, key, model = llama_gateway
    with gateway.client(key) as http:
        load = http.post("/api/chat", json={"model": model, "messages": [], "stream": False})
        assert load.status_code == 200 and load.json()["done_reason"] == "load"
        unload = http.post("/api/generate", json={"model": model, "keep_alive": 0})
        assert unload.status_code == 200
        assert unload.headers["content-type"] == "application/x-ndjson"
        assert json.loads(unload.text.splitlines()[-1])["done_reason"] == "unload"


def test_a_native_embedding_of_many_inputs_through_llamacpp(
    llama_gateway: tuple[GatewayProcess, str, str],
) -> None:
    """150 inputs go upstream 64 at a time; the vectors are those llama.cpp gives for each input,
    normalized, in order, and the prompt counts are summed."""
    gateway, key, model = llama_gateway
    inputs = [f"item {n} of the list" for n in range(150)]
    client = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})
    native = client.embed(model=model, input=inputs)
    upstream = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    direct = upstream.embeddings.create(model=model, input=inputs[60:70] + inputs[140:])
    assert len(native.embeddings) == 150
    picked = native.embeddings[60:70] + native.embeddings[140:]
    for got, item in zip(picked, direct.data, strict=True):
        norm = sum(x * x for x in item.embedding) ** 0.5
        assert max(abs(a - b / norm) for a, b in zip(got, item.embedding, strict=True)) < 1e-4
    assert native.prompt_eval_count and native.prompt_eval_count >= 150
