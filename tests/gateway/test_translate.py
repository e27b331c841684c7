"""Native requests translated for OpenAI-compatible backends, and their non-streamed replies."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest

from nexus.gateway.errors import BadRequest
from nexus.gateway.translate import NATIVE_ROUTES, NativeOverOpenAI
from nexus.gateway.translate.replies import ReplyError
from tests.gateway.native_checks import check_reply

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()


def reply(t: NativeOverOpenAI, data: Any, status: int = 200) -> tuple[int, dict[str, Any]]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    code, body = t.response(status, raw)
    return code, json.loads(body)


# ---- requests -------------------------------------------------------------------------------


def test_routes() -> None:
    assert {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"} == NATIVE_ROUTES
    with pytest.raises(BadRequest, match="/api/show"):
        NativeOverOpenAI("/api/show", {"model": "m"})
    with pytest.raises(BadRequest, match="model"):
        NativeOverOpenAI("/api/chat", {"messages": []})


def test_chat_request_maps_messages_options_and_format() -> None:
    t = NativeOverOpenAI(
        "/api/chat",
        {
            "model": "llama3:8b",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "what is here?", "images": [PNG, JPEG]},
            ],
            "format": "json",
            "options": {
                "temperature": 0,
                "top_p": 0.9,
                "top_k": 20,
                "seed": 7,
                "num_predict": 32,
                "stop": "END",
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "repeat_penalty": 1.1,
                "min_p": 0.05,
                "num_ctx": 4096,
            },
            "keep_alive": "10m",
            "tools": [],
        },
    )
    assert (t.path, t.model, t.stream) == ("/v1/chat/completions", "llama3:8b", True)
    p = t.payload
    assert p["model"] == "llama3:8b"
    assert p["stream"] is True and p["stream_options"] == {"include_usage": True}
    assert p["messages"][0] == {"role": "system", "content": "be brief"}
    parts = p["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "what is here?"}
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert parts[2]["image_url"]["url"] == f"data:image/jpeg;base64,{JPEG}"
    assert p["response_format"] == {"type": "json_object"}
    assert (p["temperature"], p["top_p"], p["top_k"], p["seed"], p["max_tokens"]) == (
        0,
        0.9,
        20,
        7,
        32,
    )
    assert p["stop"] == ["END"]
    assert (p["presence_penalty"], p["frequency_penalty"], p["min_p"]) == (0.1, 0.2, 0.05)
    assert p["repeat_penalty"] == p["repetition_penalty"] == 1.1
    for dropped in ("num_ctx", "keep_alive", "options", "format", "tools"):
        assert dropped not in p


@pytest.mark.parametrize("limit", [-1, -2])
def test_unbounded_num_predict_sets_no_max_tokens(limit: int) -> None:
    t = NativeOverOpenAI(
        "/api/chat",
        {"model": "m", "stream": False, "messages": [{"role": "user", "content": "x"}],
         "options": {"num_predict": limit}},
    )  # fmt: skip
    assert "max_tokens" not in t.payload
    assert t.stream is False and t.payload["stream"] is False
    assert "stream_options" not in t.payload


def test_schema_format_and_think() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    t = NativeOverOpenAI(
        "/api/chat",
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "format": schema,
         "think": True},
    )  # fmt: skip
    assert t.payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True},
    }
    assert t.payload["chat_template_kwargs"] == {"enable_thinking": True}
    high = NativeOverOpenAI(
        "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "think": "high"}
    )
    assert high.payload["reasoning_effort"] == "high"
    with pytest.raises(BadRequest, match="format"):
        NativeOverOpenAI("/api/chat", {"model": "m", "messages": [], "format": 3})


def test_tool_history_gets_ids_and_string_arguments() -> None:
    t = NativeOverOpenAI(
        "/api/chat",
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                        {"id": "call_x", "function": {"name": "time", "arguments": {"tz": "CET"}}},
                    ],
                },
                {"role": "tool", "content": "10:00", "tool_name": "time"},
                {"role": "tool", "content": "sunny", "tool_name": "weather"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        },
    )
    messages = t.payload["messages"]
    calls = messages[1]["tool_calls"]
    assert calls[0]["type"] == "function" and calls[0]["id"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert calls[1]["id"] == "call_x"
    assert messages[2] == {
        "role": "tool", "content": "10:00", "tool_call_id": "call_x", "name": "time"
    }  # fmt: skip
    assert messages[3]["tool_call_id"] == calls[0]["id"]
    assert t.payload["tools"][0]["function"]["name"] == "weather"


def test_generate_raw_and_fim_use_completions() -> None:
    raw = NativeOverOpenAI(
        "/api/generate", {"model": "m", "prompt": "def f(", "raw": True, "stream": False}
    )
    assert raw.path == "/v1/completions"
    assert raw.payload["prompt"] == "def f(" and raw.payload["stream"] is False
    fim = NativeOverOpenAI("/api/generate", {"model": "m", "prompt": "a", "suffix": "b"})
    assert fim.path == "/v1/completions" and fim.payload["suffix"] == "b"


def test_generate_with_template_semantics_uses_chat() -> None:
    t = NativeOverOpenAI(
        "/api/generate",
        {
            "model": "m",
            "prompt": "hi",
            "system": "be kind",
            "images": [PNG],
            "options": {"seed": 1},
        },
    )
    assert t.path == "/v1/chat/completions"
    system, user = t.payload["messages"]
    assert system == {"role": "system", "content": "be kind"}
    assert user["content"][0] == {"type": "text", "text": "hi"}
    assert user["content"][1]["type"] == "image_url"
    assert t.payload["seed"] == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": "x", "context": [1, 2, 3]}, "context"),
        ({"prompt": "x", "template": "{{ .Prompt }}"}, "template"),
        ({"prompt": "x", "raw": True, "system": "s"}, "raw"),
        ({"prompt": "x", "suffix": "y", "images": [PNG]}, "images"),
        ({"prompt": 3}, "prompt"),
    ],
)
def test_generate_refuses_what_it_cannot_translate(body: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        NativeOverOpenAI("/api/generate", {"model": "m", **body})


def test_bad_messages_are_refused() -> None:
    with pytest.raises(BadRequest, match="role"):
        NativeOverOpenAI("/api/chat", {"model": "m", "messages": [{"role": "bot", "content": ""}]})
    with pytest.raises(BadRequest, match="messages"):
        NativeOverOpenAI("/api/chat", {"model": "m", "messages": "hi"})


def test_load_and_unload_are_answered_without_the_backend() -> None:
    load = NativeOverOpenAI("/api/chat", {"model": "m", "messages": []})
    assert load.immediate is not None
    status, body = load.immediate
    line = json.loads(body)
    assert status == 200 and body.endswith(b"\n")
    assert line["done"] is True and line["done_reason"] == "load"
    check_reply("/api/chat", line)
    unload = NativeOverOpenAI(
        "/api/generate", {"model": "m", "prompt": "", "keep_alive": 0, "stream": False}
    )
    assert unload.immediate is not None
    line = json.loads(unload.immediate[1])
    assert line["done_reason"] == "unload" and line["response"] == ""
    check_reply("/api/generate", line)
    asked = NativeOverOpenAI(
        "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    assert asked.immediate is None


def test_embed_requests() -> None:
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": "one", "truncate": True})
    assert t.path == "/v1/embeddings" and t.stream is False
    assert t.payload == {"model": "e", "input": ["one"], "encoding_format": "float"}
    many = NativeOverOpenAI("/api/embed", {"model": "e", "input": ["a", "b"], "stream": True})
    assert many.payload["input"] == ["a", "b"] and many.stream is False
    legacy = NativeOverOpenAI("/api/embeddings", {"model": "e", "prompt": "p"})
    assert legacy.payload["input"] == ["p"]
    empty = NativeOverOpenAI("/api/embed", {"model": "e", "input": []})
    assert empty.immediate == (200, b'{"model":"e","embeddings":[]}')
    with pytest.raises(BadRequest, match="input"):
        NativeOverOpenAI("/api/embed", {"model": "e", "input": [1, 2]})


# ---- non-streamed replies -------------------------------------------------------------------

LLAMA_CHAT = {
    "choices": [
        {"finish_reason": "length", "index": 0,
         "message": {"role": "assistant", "content": "I'm glad you're here! I"}}
    ],
    "created": 1796009929, "model": "/models/SmolLM2.gguf", "object": "chat.completion",
    "usage": {"completion_tokens": 8, "prompt_tokens": 32, "total_tokens": 40},
    "id": "chatcmpl-7vGK",
    "timings": {"cache_n": 0, "prompt_n": 32, "prompt_ms": 581.62, "predicted_n": 8,
                "predicted_ms": 500.727},
}  # fmt: skip


def test_chat_reply() -> None:
    t = NativeOverOpenAI(
        "/api/chat",
        {"model": "smol", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
    )
    status, body = reply(t, LLAMA_CHAT)
    assert status == 200
    check_reply("/api/chat", body)
    assert body["model"] == "smol" and body["created_at"].endswith("Z")
    assert body["message"] == {"role": "assistant", "content": "I'm glad you're here! I"}
    assert (body["done"], body["done_reason"]) == (True, "length")
    assert (body["prompt_eval_count"], body["eval_count"]) == (32, 8)
    assert body["prompt_eval_duration"] == 581_620_000
    assert body["eval_duration"] == 500_727_000
    assert body["total_duration"] >= body["prompt_eval_duration"] + body["eval_duration"]
    assert body["load_duration"] == 0
    assert "context" not in body
    assert t.usage == (32, 8)


def test_chat_reply_with_tool_calls_and_reasoning() -> None:
    t = NativeOverOpenAI(
        "/api/chat", {"model": "q", "stream": False, "messages": [{"role": "user", "content": "?"}]}
    )
    upstream = {
        "choices": [{
            "index": 0, "finish_reason": "tool_calls",
            "message": {
                "role": "assistant", "content": None, "reasoning_content": "need weather",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {
                    "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}],
            },
        }],
        "usage": {"prompt_tokens": 44, "completion_tokens": 16, "total_tokens": 60},
    }  # fmt: skip
    status, body = reply(t, upstream)
    assert status == 200
    check_reply("/api/chat", body)
    message = body["message"]
    assert message["content"] == "" and message["thinking"] == "need weather"
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}},
        }
    ]
    assert body["done_reason"] == "stop"
    assert "prompt_eval_duration" in body and body["eval_count"] == 16


def test_tool_call_arguments_that_are_not_an_object_are_an_error() -> None:
    t = NativeOverOpenAI(
        "/api/chat", {"model": "q", "stream": False, "messages": [{"role": "user", "content": "?"}]}
    )
    upstream = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}],
                },
            }
        ]
    }
    status, body = reply(t, upstream)
    assert status == 502 and "not a JSON object" in body["error"]


def test_generate_reply_from_completions() -> None:
    t = NativeOverOpenAI("/api/generate", {"model": "g", "prompt": "The sky is", "raw": True,
                                           "stream": False})  # fmt: skip
    upstream = {
        "choices": [{"text": " a canvas of endless possibilities", "index": 0, "logprobs": None,
                     "finish_reason": "length"}],
        "object": "text_completion",
        "usage": {"completion_tokens": 5, "prompt_tokens": 3, "total_tokens": 8},
    }  # fmt: skip
    status, body = reply(t, upstream)
    assert status == 200
    check_reply("/api/generate", body)
    assert body["response"] == " a canvas of endless possibilities"
    assert body["done"] is True and body["done_reason"] == "length"
    assert (body["prompt_eval_count"], body["eval_count"]) == (3, 5)
    assert "context" not in body


def test_generate_reply_from_chat() -> None:
    t = NativeOverOpenAI("/api/generate", {"model": "g", "prompt": "hi", "stream": False})
    status, body = reply(t, LLAMA_CHAT)
    assert status == 200
    check_reply("/api/generate", body)
    assert body["response"] == "I'm glad you're here! I" and "message" not in body


@pytest.mark.parametrize(
    ("status", "upstream", "message"),
    [
        (400, {"error": {"message": "the request exceeds the available context size",
                         "type": "invalid_request_error", "param": None, "code": 400}},
         "the request exceeds the available context size"),
        (404, {"error": "model 'x' not found"}, "model 'x' not found"),
        (400, {"object": "error", "message": "max_tokens is too large", "code": 400},
         "max_tokens is too large"),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
         "field required"),
        (503, b"upstream connect error", "upstream connect error"),
        (500, b"", "HTTP 500"),
    ],
)  # fmt: skip
def test_upstream_errors_keep_status(status: int, upstream: Any, message: str) -> None:
    t = NativeOverOpenAI(
        "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "?"}]}
    )
    code, body = reply(t, upstream, status)
    assert code == status and set(body) == {"error"}
    assert message in body["error"]


def test_invalid_success_replies_are_bad_gateway() -> None:
    t = NativeOverOpenAI("/api/chat", {"model": "m", "stream": False,
                                       "messages": [{"role": "user", "content": "?"}]})  # fmt: skip
    assert reply(t, b"<html>")[0] == 502
    assert reply(t, {"choices": []})[0] == 502
    code, body = reply(t, {"error": {"message": "overloaded"}})
    assert (code, body) == (502, {"error": "overloaded"})


def f32(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def test_embed_reply_floats_and_base64_in_index_order() -> None:
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": ["a", "b"]})
    upstream = {
        "object": "list", "model": "x",
        "data": [{"object": "embedding", "index": 1, "embedding": f32([0.0, 2.0])},
                 {"object": "embedding", "index": 0, "embedding": [3.0, 4.0]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }  # fmt: skip
    status, body = reply(t, upstream)
    assert status == 200
    check_reply("/api/embed", body)
    assert body["model"] == "e" and body["prompt_eval_count"] == 2
    assert body["embeddings"] == [[0.6, 0.8], [0.0, 1.0]]  # unit length, as Ollama's
    assert isinstance(body["total_duration"], int) and body["load_duration"] == 0
    assert t.usage == (2, 0)


def test_embed_dimensions_cut_then_normalize() -> None:
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": "a", "dimensions": 2})
    status, body = reply(t, {"data": [{"index": 0, "embedding": [3.0, 4.0, 12.0]}]})
    assert status == 200
    assert body["embeddings"] == [[0.6, 0.8]]
    assert math.isclose(sum(x * x for x in body["embeddings"][0]), 1.0)


def openai_embeddings(inputs: list[str], usage: bool = True) -> bytes:
    """An upstream reply with the vector [n, 1] for input ``i<n>``."""
    data = [{"index": i, "embedding": [float(text[1:]), 1.0]} for i, text in enumerate(inputs)]
    body: dict[str, Any] = {"data": data}
    if usage:
        body["usage"] = {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}
    return json.dumps(body).encode()


@pytest.mark.parametrize("usage", [True, False])
def test_embed_of_many_inputs_a_window_at_a_time(usage: bool) -> None:
    inputs = [f"i{n}" for n in range(150)]
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": inputs})
    assert t.windows == 3 and t.payload["input"] == inputs[:64]
    parts = [t.window_head()]
    for index in range(3):
        payload = t.window_payload(index, "upstream-name")
        assert payload["model"] == "upstream-name"
        assert payload["input"] == inputs[index * 64 : (index + 1) * 64]
        parts.append(t.window_vectors(index, 200, openai_embeddings(payload["input"], usage)))
    body = json.loads(b"".join([*parts, t.window_tail()]))
    check_reply("/api/embed", body)
    assert len(body["embeddings"]) == 150
    for n, vector in enumerate(body["embeddings"]):
        norm = math.hypot(n, 1.0)
        assert vector == [n / norm, 1.0 / norm]
    if usage:
        assert body["prompt_eval_count"] == 300 and t.usage == (300, 0)
    else:
        assert "prompt_eval_count" not in body and t.usage is None


def test_a_window_of_the_wrong_size_or_an_error_is_refused() -> None:
    inputs = [f"i{n}" for n in range(70)]
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": inputs})
    with pytest.raises(ReplyError, match="returned 5 embeddings for 6 inputs"):
        t.window_vectors(1, 200, openai_embeddings(inputs[64:69]))
    with pytest.raises(ReplyError, match="overloaded"):
        t.window_vectors(0, 503, b'{"error": {"message": "overloaded"}}')
    with pytest.raises(ReplyError, match="not JSON"):
        t.window_vectors(0, 200, b"<html>")
    one = NativeOverOpenAI("/api/embed", {"model": "e", "input": ["i1", "i2"]})
    assert one.windows == 1
    code, body = reply(one, openai_embeddings(["i1"]))
    assert code == 502 and "returned 1 embedding for 2 inputs" in body["error"]


def test_legacy_embeddings_reply() -> None:
    t = NativeOverOpenAI("/api/embeddings", {"model": "e", "prompt": "a"})
    status, body = reply(t, {"data": [{"index": 0, "embedding": [3.0, 4.0]}]})
    assert status == 200
    check_reply("/api/embeddings", body)
    assert body == {"embedding": [3.0, 4.0]}
    empty = NativeOverOpenAI("/api/embeddings", {"model": "e", "prompt": ""})
    assert empty.immediate == (200, b'{"embedding":[]}')


def test_image_types_and_bad_values() -> None:
    webp = base64.b64encode(b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 8).decode()
    t = NativeOverOpenAI(
        "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "", "images": [webp]}]}
    )
    assert t.payload["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{webp}"}}
    ]
    with pytest.raises(BadRequest, match="images"):
        NativeOverOpenAI(
            "/api/chat",
            {"model": "m", "messages": [{"role": "user", "content": "", "images": [1]}]},
        )
    with pytest.raises(BadRequest, match="think"):
        NativeOverOpenAI("/api/chat", {"model": "m", "messages": [], "think": "hard"})
    with pytest.raises(BadRequest, match="dimensions"):
        NativeOverOpenAI("/api/embed", {"model": "e", "input": "a", "dimensions": -3})
    with pytest.raises(BadRequest, match="num_predict"):
        NativeOverOpenAI("/api/generate", {"model": "m", "options": {"num_predict": "many"}})


def test_bad_embeddings_from_the_backend_are_bad_gateway() -> None:
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": "a"})
    code, body = reply(t, {"data": [{"index": 0, "embedding": "not base64!"}]})
    assert code == 502 and "base64" in body["error"]
    assert reply(t, {"data": []})[0] == 502


def test_reply_of_an_unexpected_shape_is_bad_gateway() -> None:
    t = NativeOverOpenAI("/api/embed", {"model": "e", "input": "a"})
    code, body = reply(t, {"data": ["x"]})
    assert code == 502 and "unexpected shape" in body["error"]
