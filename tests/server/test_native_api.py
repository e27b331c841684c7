"""Ollama's native API over HTTP against a real ``nexus serve`` with the real default model.

Every response with a schema in Ollama's OpenAPI document is validated against it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi import NDJSON, validate

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 24}
STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}
JSON_PROMPT = 'Reply with a JSON object with one key "answer" whose value is yes.'


# ---- helpers ---------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, f"timestamp without a zone: {text}"
    return parsed


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def generate(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/api/generate", json={"model": MODEL, **body})


def chat(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/api/chat", json={"model": MODEL, **body})


def ok(response: httpx.Response) -> Any:
    """Assert a 200 and return the body, validated against the OpenAPI document."""
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return validate(response)


def one_json(response: httpx.Response) -> dict[str, Any]:
    """A single JSON object reply (stream: false, or the load/unload replies)."""
    assert response.headers["content-type"].startswith("application/json")
    body = ok(response)
    assert isinstance(body, dict)
    return body


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].split(";")[0] == NDJSON
    events = ok(response)
    assert isinstance(events, list)
    return events


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validate(response)
    message: str = body["error"]
    return message


def assert_final(final: dict[str, Any], num_predict: int | None = None) -> None:
    """The last chunk of a generate/chat reply: done, a reason and integer ns statistics."""
    assert final["done"] is True
    assert final["done_reason"] in ("stop", "length")
    for key in STATS:
        assert is_int(final.get(key)), f"{key} missing or not an integer: {final}"
        assert final[key] >= 0, key
    assert final["total_duration"] > 0
    assert final["prompt_eval_count"] > 0
    assert final["eval_count"] > 0
    assert final["eval_duration"] > 0
    assert final["total_duration"] >= final["load_duration"]
    assert final["total_duration"] >= final["eval_duration"]
    assert final["total_duration"] >= final["prompt_eval_duration"]
    if num_predict is not None:
        assert final["eval_count"] <= num_predict
        if final["done_reason"] == "length":
            assert final["eval_count"] == num_predict


def assert_chunk_common(chunk: dict[str, Any], model: str = MODEL) -> None:
    assert chunk["model"] == model
    parse_time(chunk["created_at"])


def streamed_text(events: list[dict[str, Any]], key: str = "response") -> str:
    if key == "response":
        return "".join(e.get("response", "") for e in events)
    return "".join(e["message"].get("content", "") for e in events)


def loaded_models(http: httpx.Client) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = ok(http.get("/api/ps"))["models"]
    return models


def model_blob_digest(http: httpx.Client, name: str) -> str:
    """The weights blob of a model, read from the FROM line of its rendered Modelfile."""
    modelfile = ok(http.post("/api/show", json={"model": name}))["modelfile"]
    match = re.search(r"^FROM .*sha256-([0-9a-f]{64})$", modelfile, re.MULTILINE)
    assert match, modelfile
    return f"sha256:{match.group(1)}"


# ---- basics ----------------------------------------------------------------------------


def test_root_get_and_head(http: httpx.Client) -> None:
    r = http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "Ollama is running"
    r = http.head("/")
    assert r.status_code == 200
    assert r.content == b""


def test_version(http: httpx.Client) -> None:
    body = ok(http.get("/api/version"))
    assert re.fullmatch(r"\d+(\.\d+)+", body["version"]), body
    r = http.head("/api/version")
    assert r.status_code == 200
    assert r.content == b""


def test_tags_lists_default_model_with_details(http: httpx.Client) -> None:
    body = ok(http.get("/api/tags"))
    by_name = {m["name"]: m for m in body["models"]}
    assert MODEL in by_name, list(by_name)
    entry = by_name[MODEL]
    assert entry["model"] == MODEL
    assert entry["size"] > 50_000_000
    assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"])
    parse_time(entry["modified_at"])
    details = entry["details"]
    assert details["format"] == "gguf"
    assert details["family"] == "llama"
    assert "llama" in details["families"]
    assert details["parameter_size"]
    assert details["quantization_level"]


def test_tags_head(http: httpx.Client) -> None:
    r = http.head("/api/tags")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.content == b""


def test_show_default_model(http: httpx.Client) -> None:
    body = ok(http.post("/api/show", json={"model": MODEL}))
    assert body["details"]["format"] == "gguf"
    assert body["details"]["family"] == "llama"
    info = body["model_info"]
    assert info["general.architecture"] == "llama"
    assert is_int(info["llama.context_length"]) and info["llama.context_length"] >= 2048
    assert is_int(info["general.parameter_count"])
    assert isinstance(body["parameters"], str)
    assert isinstance(body["template"], str) and body["template"]
    assert "completion" in body["capabilities"]
    assert "FROM " in body["modelfile"]
    assert isinstance(body["license"], str)
    parse_time(body["modified_at"])
    # Large token arrays only come with verbose.
    assert not info.get("tokenizer.ggml.tokens")


def test_show_verbose_includes_token_arrays(http: httpx.Client) -> None:
    body = ok(http.post("/api/show", json={"model": MODEL, "verbose": True}))
    tokens = body["model_info"]["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list) and len(tokens) > 1000


def test_ps_after_generate(http: httpx.Client) -> None:
    ok(generate(http, prompt="Hi", stream=False, options={"num_predict": 2}))
    before = datetime.now(UTC)
    models = loaded_models(http)
    entry = next((m for m in models if m["name"] == MODEL), None)
    assert entry is not None, models
    assert entry["model"] == MODEL
    assert entry["size"] > 50_000_000
    assert is_int(entry["size_vram"]) and 0 <= entry["size_vram"] <= entry["size"]
    assert entry["context_length"] == 2048
    assert parse_time(entry["expires_at"]) > before
    tags = {m["name"]: m for m in ok(http.get("/api/tags"))["models"]}
    assert entry["digest"] == tags[MODEL]["digest"]
    assert entry["details"]["family"] == "llama"


# ---- generate --------------------------------------------------------------------------


def test_generate_streamed(http: httpx.Client) -> None:
    events = ndjson(generate(http, prompt="Why is the sky blue?", options=GREEDY))
    partial, final = events[:-1], events[-1]
    assert len(partial) >= 2
    for chunk in events:
        assert_chunk_common(chunk)
    assert all(c["done"] is False for c in partial)
    assert all(isinstance(c["response"], str) for c in partial)
    assert all("done_reason" not in c for c in partial)
    assert_final(final, num_predict=GREEDY["num_predict"])
    assert final["context"] and all(is_int(t) for t in final["context"])
    assert len(final["context"]) >= final["prompt_eval_count"]
    assert streamed_text(events).strip()


def test_generate_not_streamed(http: httpx.Client) -> None:
    body = one_json(generate(http, prompt="Why is the sky blue?", stream=False, options=GREEDY))
    assert_chunk_common(body)
    assert_final(body, num_predict=GREEDY["num_predict"])
    assert isinstance(body["response"], str) and body["response"].strip()
    assert all(is_int(t) for t in body["context"])


def test_generate_greedy_is_repeatable(http: httpx.Client) -> None:
    request = {"prompt": "Why is the sky blue?", "options": GREEDY}
    first = one_json(generate(http, stream=False, **request))["response"]
    second = one_json(generate(http, stream=False, **request))["response"]
    streamed = streamed_text(ndjson(generate(http, **request)))
    assert first == second
    assert streamed == first


def test_generate_raw(http: httpx.Client) -> None:
    options = {"num_predict": 8, "temperature": 0}
    templated = one_json(generate(http, prompt="Hello", stream=False, options=options))
    raw = one_json(generate(http, prompt="Hello", raw=True, stream=False, options=options))
    assert_final(raw, num_predict=8)
    assert isinstance(raw["response"], str)
    # No template: only the prompt's own tokens are evaluated, and raw replies carry no context.
    assert raw["prompt_eval_count"] < templated["prompt_eval_count"]
    assert raw["prompt_eval_count"] <= 3
    assert "context" not in raw


def test_generate_system_override(http: httpx.Client) -> None:
    options = {"num_predict": 8, "temperature": 0}
    system = (
        "You are a pirate captain sailing the seven seas. Answer every question in pirate "
        "speak, with plenty of arr and matey, and never break character."
    )
    plain = one_json(generate(http, prompt="Hi", stream=False, options=options))
    custom = one_json(generate(http, prompt="Hi", system=system, stream=False, options=options))
    assert_final(custom, num_predict=8)
    assert custom["prompt_eval_count"] > plain["prompt_eval_count"]
    prompt_tokens = custom["context"][: custom["prompt_eval_count"]]
    assert prompt_tokens != plain["context"][: plain["prompt_eval_count"]]


def test_generate_format_json(http: httpx.Client) -> None:
    body = one_json(
        generate(
            http,
            prompt=JSON_PROMPT,
            format="json",
            stream=False,
            options={**GREEDY, "num_predict": 60},
        )
    )
    assert body["done_reason"] == "stop", body
    assert isinstance(json.loads(body["response"]), dict)


def test_generate_format_json_schema(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    body = one_json(
        generate(
            http,
            prompt="Describe a person named Ann who is 30 years old as JSON.",
            format=schema,
            stream=False,
            options={**GREEDY, "num_predict": 60},
        )
    )
    assert body["done_reason"] == "stop", body
    jsonschema.validate(json.loads(body["response"]), schema)


def test_generate_invalid_format_is_400(http: httpx.Client) -> None:
    assert error(generate(http, prompt="Hi", format="yaml", stream=False), 400)


def test_generate_context_continues_conversation(http: httpx.Client) -> None:
    options = {"num_predict": 8, "temperature": 0}
    first = one_json(generate(http, prompt="My name is Bob.", stream=False, options=options))
    context = first["context"]
    second = one_json(
        generate(http, prompt="What is my name?", context=context, stream=False, options=options)
    )
    assert_final(second, num_predict=8)
    assert second["context"][: len(context)] == context
    assert second["prompt_eval_count"] > len(context)


def test_generate_keep_alive_shows_in_ps(http: httpx.Client) -> None:
    before = datetime.now(UTC)
    ok(generate(http, prompt="Hi", keep_alive="10m", stream=False, options={"num_predict": 2}))
    after = datetime.now(UTC)
    entry = next(m for m in loaded_models(http) if m["name"] == MODEL)
    expires = parse_time(entry["expires_at"])
    assert before + timedelta(minutes=10) - timedelta(seconds=5) <= expires
    assert expires <= after + timedelta(minutes=10) + timedelta(seconds=5)


def test_generate_empty_prompt_loads(http: httpx.Client) -> None:
    # Streaming is the default, but a load reply is one JSON object, not NDJSON.
    body = one_json(generate(http))
    assert_chunk_common(body)
    assert body["done"] is True
    assert body["done_reason"] == "load"
    assert body["response"] == ""
    assert any(m["name"] == MODEL for m in loaded_models(http))


def test_generate_empty_prompt_with_keep_alive_zero_unloads(http: httpx.Client) -> None:
    ok(generate(http))  # make sure it is loaded first
    body = one_json(generate(http, keep_alive=0))
    assert_chunk_common(body)
    assert body["done"] is True
    assert body["done_reason"] == "unload"
    assert body["response"] == ""
    # Ollama may stop the runner just after replying: poll, bounded, until it is gone.
    deadline = time.monotonic() + 30
    while any(m["name"] == MODEL for m in loaded_models(http)):
        assert time.monotonic() < deadline, "the model is still loaded after an unload"
        time.sleep(0.05)


# ---- chat ------------------------------------------------------------------------------

HELLO = [{"role": "user", "content": "Why is the sky blue?"}]


def test_chat_streamed(http: httpx.Client) -> None:
    events = ndjson(chat(http, messages=HELLO, options=GREEDY))
    partial, final = events[:-1], events[-1]
    assert len(partial) >= 2
    for chunk in events:
        assert_chunk_common(chunk)
        assert chunk["message"]["role"] == "assistant"
        assert isinstance(chunk["message"]["content"], str)
    assert all(c["done"] is False for c in partial)
    assert_final(final, num_predict=GREEDY["num_predict"])
    assert streamed_text(events, "message").strip()


def test_chat_not_streamed_matches_stream(http: httpx.Client) -> None:
    body = one_json(chat(http, messages=HELLO, stream=False, options=GREEDY))
    assert_chunk_common(body)
    assert_final(body, num_predict=GREEDY["num_predict"])
    assert body["message"]["role"] == "assistant"
    assert body["message"]["content"].strip()
    again = one_json(chat(http, messages=HELLO, stream=False, options=GREEDY))
    streamed = streamed_text(ndjson(chat(http, messages=HELLO, options=GREEDY)), "message")
    assert again["message"]["content"] == body["message"]["content"] == streamed


def test_chat_multi_turn(http: httpx.Client) -> None:
    options = {"num_predict": 12, "temperature": 0}
    short = [{"role": "user", "content": "What is my name?"}]
    turns = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Hello, my name is Alice."},
        {"role": "assistant", "content": "Hello Alice! How can I help you today?"},
        {"role": "user", "content": "What is my name?"},
    ]
    single = one_json(chat(http, messages=short, stream=False, options=options))
    body = one_json(chat(http, messages=turns, stream=False, options=options))
    assert_final(body, num_predict=12)
    assert body["message"]["role"] == "assistant"
    assert isinstance(body["message"]["content"], str)
    # The whole history is in the prompt.
    assert body["prompt_eval_count"] > single["prompt_eval_count"] + 15


def test_chat_with_tools(http: httpx.Client) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    options = {"num_predict": 24, "temperature": 0}
    body = one_json(
        chat(http, messages=messages, tools=[WEATHER_TOOL], stream=False, options=options)
    )
    assert_final(body, num_predict=24)
    message = body["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str)
    for call in message.get("tool_calls") or []:
        assert isinstance(call["function"]["name"], str) and call["function"]["name"]
        assert isinstance(call["function"]["arguments"], dict)
    # The tools are described to the model: the prompt is longer than without them.
    plain = one_json(chat(http, messages=messages, stream=False, options=options))
    assert body["prompt_eval_count"] > plain["prompt_eval_count"]


def test_chat_tool_result_round_trip(http: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather"},
    ]
    body = one_json(
        chat(
            http,
            messages=messages,
            tools=[WEATHER_TOOL],
            stream=False,
            options={"num_predict": 16, "temperature": 0},
        )
    )
    assert_final(body, num_predict=16)
    assert isinstance(body["message"]["content"], str)


def test_chat_format_json(http: httpx.Client) -> None:
    body = one_json(
        chat(
            http,
            messages=[{"role": "user", "content": JSON_PROMPT}],
            format="json",
            stream=False,
            options={**GREEDY, "num_predict": 60},
        )
    )
    assert body["done_reason"] == "stop", body
    assert isinstance(json.loads(body["message"]["content"]), dict)


def test_chat_empty_messages_loads(http: httpx.Client) -> None:
    body = one_json(chat(http, messages=[]))
    assert body["done"] is True
    assert body["done_reason"] == "load"
    assert body["message"] == {"role": "assistant", "content": ""}


# ---- embeddings ------------------------------------------------------------------------


def embed(http: httpx.Client, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(http.post("/api/embed", json={"model": MODEL, **body}))
    assert result["model"] == MODEL
    return result


def test_embed_string(http: httpx.Client) -> None:
    body = embed(http, input="The sky is blue.")
    assert len(body["embeddings"]) == 1
    vector = body["embeddings"][0]
    assert len(vector) > 100
    assert norm(vector) == pytest.approx(1.0, abs=1e-4)
    for key in ("total_duration", "load_duration", "prompt_eval_count"):
        assert is_int(body[key]), key
    assert body["prompt_eval_count"] > 0


def test_embed_list(http: httpx.Client) -> None:
    texts = ["The sky is blue.", "Grass is green.", "The sky is blue."]
    vectors = embed(http, input=texts)["embeddings"]
    assert len(vectors) == 3
    assert len({len(v) for v in vectors}) == 1
    for vector in vectors:
        assert norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)
    single = embed(http, input="The sky is blue.")["embeddings"][0]
    assert single == pytest.approx(vectors[0], abs=1e-4)


def test_embed_dimensions(http: httpx.Client) -> None:
    vectors = embed(http, input=["The sky is blue.", "Grass is green."], dimensions=16)
    for vector in vectors["embeddings"]:
        assert len(vector) == 16
        assert norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_embed_empty_input(http: httpx.Client) -> None:
    assert embed(http, input="")["embeddings"] == []


def test_embed_too_long_without_truncate_is_400(http: httpx.Client) -> None:
    r = http.post("/api/embed", json={"model": MODEL, "input": "hello " * 3000, "truncate": False})
    assert "input length exceeds the context length" in error(r, 400)


def test_embed_invalid_input_type_is_400(http: httpx.Client) -> None:
    r = http.post("/api/embed", json={"model": MODEL, "input": 123})
    assert error(r, 400) == "invalid input type"


def test_embeddings_legacy_not_normalised(http: httpx.Client) -> None:
    r = http.post("/api/embeddings", json={"model": MODEL, "prompt": "The sky is blue."})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["embedding"]
    raw = body["embedding"]
    assert all(isinstance(x, float) for x in raw)
    assert abs(norm(raw) - 1.0) > 1e-2
    # Same direction as the normalised /api/embed vector.
    unit = embed(http, input="The sky is blue.")["embeddings"][0]
    assert len(unit) == len(raw)
    assert [x / norm(raw) for x in raw] == pytest.approx(unit, abs=1e-3)


def test_embeddings_legacy_empty_prompt(http: httpx.Client) -> None:
    r = http.post("/api/embeddings", json={"model": MODEL, "prompt": ""})
    assert r.status_code == 200, r.text
    assert r.json() == {"embedding": []}


# ---- copy / delete ---------------------------------------------------------------------


def tag_names(http: httpx.Client) -> set[str]:
    return {m["name"] for m in ok(http.get("/api/tags"))["models"]}


def test_copy_show_and_delete(http: httpx.Client, scratch_name: Callable[[str], str]) -> None:
    copy_name = scratch_name("copy")
    weights = model_blob_digest(http, MODEL)
    r = http.post("/api/copy", json={"source": MODEL, "destination": copy_name})
    assert r.status_code == 200, r.text
    assert validate(r) is None
    assert copy_name in tag_names(http)
    tags = {m["name"]: m for m in ok(http.get("/api/tags"))["models"]}
    assert tags[copy_name]["digest"] == tags[MODEL]["digest"]
    shown = ok(http.post("/api/show", json={"model": copy_name}))
    assert shown["model_info"]["general.architecture"] == "llama"

    r = http.request("DELETE", "/api/delete", json={"model": copy_name})
    assert r.status_code == 200, r.text
    assert validate(r) is None
    assert copy_name not in tag_names(http)
    r = http.request("DELETE", "/api/delete", json={"model": copy_name})
    assert error(r, 404) == f"model '{copy_name}' not found"

    # The original keeps its blobs and still works.
    assert MODEL in tag_names(http)
    assert http.head(f"/api/blobs/{weights}").status_code == 200
    ok(http.post("/api/show", json={"model": MODEL}))
    body = one_json(generate(http, prompt="Hi", stream=False, options={"num_predict": 4}))
    assert_final(body, num_predict=4)


def test_copy_to_invalid_name_is_400(http: httpx.Client) -> None:
    r = http.post("/api/copy", json={"source": MODEL, "destination": "../evil"})
    assert error(r, 400) == 'destination "../evil" is invalid'


# ---- blobs -----------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blob_head_unknown_is_404(http: httpx.Client) -> None:
    r = http.head(f"/api/blobs/{sha256(os.urandom(32))}")
    assert r.status_code == 404


def test_blob_upload_then_head(http: httpx.Client) -> None:
    data = os.urandom(4096)
    digest = sha256(data)
    assert http.head(f"/api/blobs/{digest}").status_code == 404
    r = http.post(f"/api/blobs/{digest}", content=data)
    assert r.status_code == 201, r.text
    assert http.head(f"/api/blobs/{digest}").status_code == 200
    # Already there: 200, nothing rewritten.
    assert http.post(f"/api/blobs/{digest}", content=data).status_code == 200


def test_blob_upload_streamed_in_chunks(http: httpx.Client) -> None:
    chunks = [os.urandom(1 << 20) for _ in range(8)]
    digest = sha256(b"".join(chunks))

    def body() -> Iterator[bytes]:
        yield from chunks

    r = http.post(f"/api/blobs/{digest}", content=body())
    assert r.status_code == 201, r.text
    assert http.head(f"/api/blobs/{digest}").status_code == 200


def test_blob_digest_mismatch_is_400(http: httpx.Client) -> None:
    wrong = sha256(b"something else")
    r = http.post(f"/api/blobs/{wrong}", content=os.urandom(2048))
    message = error(r, 400)
    assert "digest mismatch" in message
    assert wrong in message
    assert http.head(f"/api/blobs/{wrong}").status_code == 404


@pytest.mark.parametrize("digest", ["sha256:xyz", "md5:" + "a" * 32, "sha256:" + "a" * 63])
def test_blob_bad_digest_is_400(http: httpx.Client, digest: str) -> None:
    assert error(http.post(f"/api/blobs/{digest}", content=b"data"), 400) == (
        "invalid digest format"
    )
    assert http.head(f"/api/blobs/{digest}").status_code == 400


# ---- create ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf_digest(server: Any, default_gguf: Path) -> str:
    """The default GGUF uploaded as a blob once for this module (as ``ollama create`` does)."""
    digest = "sha256:" + hashlib.sha256(default_gguf.read_bytes()).hexdigest()
    with server.client() as client:
        present = client.head(f"/api/blobs/{digest}").status_code == 200
        with default_gguf.open("rb") as fh:
            r = client.post(f"/api/blobs/{digest}", content=fh)
        # Ollama answers 200 without reading the body when the blob is already stored.
        assert r.status_code == (200 if present else 201), r.text
        assert client.head(f"/api/blobs/{digest}").status_code == 200
    return digest


CREATE_PARAMS = {"temperature": 0, "num_predict": 8}
PIRATE = "You are a pirate. Always answer like a pirate."


def assert_pirate_model(http: httpx.Client, name: str) -> None:
    shown = ok(http.post("/api/show", json={"model": name}))
    assert shown["system"] == PIRATE
    lines = shown["parameters"].splitlines()
    assert any(re.fullmatch(r"temperature\s+0", line) for line in lines), shown["parameters"]
    assert any(re.fullmatch(r"num_predict\s+8", line) for line in lines), shown["parameters"]
    assert "completion" in shown["capabilities"]
    # The model's parameters apply: at most 8 tokens come back.
    r = http.post("/api/generate", json={"model": name, "prompt": "Tell a story", "stream": False})
    body = one_json(r)
    assert body["model"] == name
    assert_final(body, num_predict=8)


def test_create_from_model_streamed(http: httpx.Client, scratch_name: Callable[[str], str]) -> None:
    name = scratch_name("create")
    r = http.post(
        "/api/create",
        json={"model": name, "from": MODEL, "system": PIRATE, "parameters": CREATE_PARAMS},
    )
    events = ndjson(r)
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "success"
    assert "writing manifest" in statuses
    assert statuses.index("writing manifest") == len(statuses) - 2
    assert any(re.fullmatch(r"using existing layer sha256:[0-9a-f]{64}", s) for s in statuses)
    assert any(
        re.fullmatch(r"(creating new|using existing) layer sha256:[0-9a-f]{64}", s)
        for s in statuses
    )
    assert name in tag_names(http)
    assert_pirate_model(http, name)


def test_create_from_model_not_streamed(
    http: httpx.Client, scratch_name: Callable[[str], str]
) -> None:
    name = scratch_name("create")
    r = http.post(
        "/api/create",
        json={
            "model": name,
            "from": MODEL,
            "system": PIRATE,
            "parameters": CREATE_PARAMS,
            "stream": False,
        },
    )
    assert one_json(r) == {"status": "success"}
    assert_pirate_model(http, name)
    # Deleting the derived model keeps the base model whole.
    weights = model_blob_digest(http, MODEL)
    assert http.request("DELETE", "/api/delete", json={"model": name}).status_code == 200
    assert http.head(f"/api/blobs/{weights}").status_code == 200
    ok(http.post("/api/show", json={"model": MODEL}))


def test_create_from_uploaded_gguf(
    http: httpx.Client, gguf_digest: str, scratch_name: Callable[[str], str]
) -> None:
    name = scratch_name("files")
    r = http.post(
        "/api/create",
        json={"model": name, "files": {"model.gguf": gguf_digest}, "stream": False},
    )
    assert one_json(r) == {"status": "success"}
    tags = {m["name"]: m for m in ok(http.get("/api/tags"))["models"]}
    assert tags[name]["details"]["family"] == "llama"
    assert tags[name]["size"] >= 98_000_000
    shown = ok(http.post("/api/show", json={"model": name}))
    assert shown["model_info"]["general.architecture"] == "llama"
    assert model_blob_digest(http, name) == gguf_digest
    body = one_json(
        http.post(
            "/api/generate",
            json={"model": name, "prompt": "Hi", "stream": False, "options": {"num_predict": 4}},
        )
    )
    assert_final(body, num_predict=4)


def test_create_from_unknown_model_is_404(
    http: httpx.Client, scratch_name: Callable[[str], str]
) -> None:
    name = scratch_name("nofrom")
    r = http.post(
        "/api/create", json={"model": name, "from": "nexus-no-such-model", "stream": False}
    )
    assert "nexus-no-such-model" in error(r, 404)
    assert name not in tag_names(http)


def test_create_with_escaping_name_is_400(http: httpx.Client) -> None:
    r = http.post("/api/create", json={"model": "../evil", "from": MODEL, "stream": False})
    assert error(r, 400) == "invalid model name"
    assert not any("evil" in n for n in tag_names(http))


def test_create_without_from_or_files_is_400(
    http: httpx.Client, scratch_name: Callable[[str], str]
) -> None:
    r = http.post("/api/create", json={"model": scratch_name("empty"), "stream": False})
    assert error(r, 400) == "neither 'from' or 'files' was specified"


# ---- CORS ------------------------------------------------------------------------------


def test_cors_allowed_origin(http: httpx.Client) -> None:
    r = http.get("/api/version", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == "http://localhost:3000"


def test_cors_disallowed_origin(http: httpx.Client) -> None:
    r = http.get("/api/version", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_preflight_allowed_origin(http: httpx.Client) -> None:
    r = http.options(
        "/api/chat",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 204
    assert r.headers.get("access-control-allow-origin") == "http://localhost:3000"
    assert "POST" in r.headers.get("access-control-allow-methods", "")


def test_cors_preflight_disallowed_origin(http: httpx.Client) -> None:
    r = http.options(
        "/api/chat",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
