"""Native requests served by a real llama.cpp server through its OpenAI-compatible API, with the
default model: llama.cpp's own ``llama-server`` where a binary is at hand, and the same server
code as the engine runs it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.gateway.translate import NativeOverOpenAI
from tests.gateway.llamacpp import llama_server_binary, start_llamacpp_openai
from tests.gateway.native_checks import check_reply, check_stream, ndjson

GREEDY = {"temperature": 0, "seed": 42, "num_predict": 24}
MODEL = "smollm2:135m"


@pytest.fixture(scope="module", params=["llama-server", "engine"])
def upstream(
    request: pytest.FixtureRequest, default_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    binary = None
    if request.param == "llama-server":
        binary = llama_server_binary()
        if binary is None:
            pytest.skip("no llama-server binary (set LLAMA_SERVER, or build the bench's peer)")
    log = tmp_path_factory.mktemp("llamacpp") / f"{request.param}.log"
    url, stop = start_llamacpp_openai(default_gguf, log, binary=binary or False)
    try:
        with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
            yield client
    finally:
        stop()


def send(client: httpx.Client, route: str, body: dict[str, Any]) -> tuple[int, bytes]:
    t = NativeOverOpenAI(route, body)
    if not t.stream:
        r = client.post(t.path, json=t.payload)
        return t.response(r.status_code, r.content)
    # llama.cpp's server drops the connection after a streamed reply (its stream ends as a
    # cancelled write), a moment after the last chunk: so no reuse of that connection
    with client.stream("POST", t.path, json=t.payload, headers={"Connection": "close"}) as r:
        if r.status_code != 200:
            return t.response(r.status_code, r.read())
        out = b""
        for piece in r.iter_raw(5):  # small pieces: boundaries fall inside events
            out += t.feed(piece)
        return r.status_code, out + t.end()


def both(client: httpx.Client, route: str, body: dict[str, Any], field: str) -> tuple[str, str]:
    """The same request streamed and not; each checked; the two texts."""
    status, streamed = send(client, route, body)
    assert status == 200, streamed
    lines = ndjson(streamed)
    check_stream(route, lines)
    status, whole = send(client, route, {**body, "stream": False})
    assert status == 200, whole
    reply = json.loads(whole)
    check_reply(route, reply)
    for last in (lines[-1], reply):
        assert last["model"] == MODEL
        assert last["prompt_eval_count"] > 0 and 0 < last["eval_count"] <= GREEDY["num_predict"]
        assert last["eval_duration"] > 0 and last["total_duration"] > 0
        assert "context" not in last
    assert lines[-1]["eval_count"] == reply["eval_count"]

    def text(item: dict[str, Any]) -> str:
        return str(item["message"]["content"] if field == "message" else item["response"])

    return "".join(text(line) for line in lines), text(reply)


def test_chat(upstream: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."},
        ],
        "options": GREEDY,
    }
    streamed, whole = both(upstream, "/api/chat", body, "message")
    assert streamed == whole and whole.strip()


def test_generate_as_a_chat_turn(upstream: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "Why is the sky blue?", "options": GREEDY}
    streamed, whole = both(upstream, "/api/generate", body, "response")
    assert streamed == whole and whole.strip()


def test_generate_raw(upstream: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "The capital of France is", "raw": True, "options": GREEDY}
    streamed, whole = both(upstream, "/api/generate", body, "response")
    assert streamed == whole and whole.strip()


def test_embed(upstream: httpx.Client) -> None:
    status, raw = send(upstream, "/api/embed", {"model": MODEL, "input": ["red", "a green apple"]})
    assert status == 200, raw
    reply = json.loads(raw)
    check_reply("/api/embed", reply)
    first, second = reply["embeddings"]
    assert len(first) == len(second) > 100 and first != second
    for vector in (first, second):
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    assert reply["prompt_eval_count"] > 0
    status, raw = send(upstream, "/api/embeddings", {"model": MODEL, "prompt": "red"})
    assert status == 200, raw
    legacy = json.loads(raw)
    check_reply("/api/embeddings", legacy)
    assert len(legacy["embedding"]) == len(first)


def test_backend_error_keeps_its_status(upstream: httpx.Client) -> None:
    long = "word " * 5000  # past the 2048-token context
    for stream in (True, False):
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": long}]}
        status, raw = send(upstream, "/api/chat", body)
        assert 400 <= status < 600, raw
        error = json.loads(raw)["error"]
        assert isinstance(error, str) and "context" in error, error


def test_format_schema_constrains_the_reply(upstream: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "maxLength": 12}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    body = {
        "model": MODEL,
        "stream": False,
        "messages": [{"role": "user", "content": "What colour is the sky? Answer in JSON."}],
        "format": schema,
        "options": {**GREEDY, "num_predict": 64},
    }
    status, raw = send(upstream, "/api/chat", body)
    assert status == 200, raw
    reply = json.loads(raw)
    check_reply("/api/chat", reply)
    answer = json.loads(reply["message"]["content"])
    assert set(answer) == {"colour"} and isinstance(answer["colour"], str)
