"""OpenAI-compatible SSE streams translated into Ollama's NDJSON, whatever the chunk boundaries."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from nexus.gateway.translate import NativeOverOpenAI
from tests.gateway.native_checks import check_error_line, check_stream, ndjson

CHAT = {"model": "smol", "messages": [{"role": "user", "content": "hi"}]}
TIMING_KEYS = ("created_at", "total_duration", "prompt_eval_duration", "eval_duration")


def sse(*events: dict[str, Any] | str, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    out = ""
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        out += f"data: {data}{end}{end}"
    return out.encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "/models/x.gguf",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"completion_tokens": 4, "prompt_tokens": 32, "total_tokens": 36},
    "timings": {"cache_n": 31, "prompt_n": 1, "prompt_ms": 41.412, "predicted_n": 4,
                "predicted_ms": 583.988},
}  # fmt: skip

# the shape llama.cpp's server streams, with text that is more than one byte per character
CHAT_STREAM = sse(
    chunk({"role": "assistant", "content": None}),
    chunk({"content": "Héllo"}),
    chunk({"content": " wörld "}),
    chunk({"content": "👋"}),
    chunk({"content": "!"}),
    chunk({}, "length"),
    USAGE,
    "[DONE]",
)


def run(t: NativeOverOpenAI, pieces: list[bytes]) -> bytes:
    out = b""
    for piece in pieces:
        out += t.feed(piece)
    return out + t.end()


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def stable(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


def test_chat_stream() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    lines = ndjson(run(t, [CHAT_STREAM]))
    check_stream("/api/chat", lines)
    assert "".join(line["message"]["content"] for line in lines) == "Héllo wörld 👋!"
    assert all(line["model"] == "smol" and line["message"]["role"] == "assistant" for line in lines)
    assert len(lines) == 5  # four pieces of text, then the done line
    last = lines[-1]
    assert last["done_reason"] == "length" and last["message"]["content"] == ""
    assert (last["prompt_eval_count"], last["eval_count"]) == (32, 4)
    assert (last["prompt_eval_duration"], last["eval_duration"]) == (41_412_000, 583_988_000)
    assert t.usage == (32, 4)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_chunk_size_gives_the_same_lines(size: int) -> None:
    whole = stable(ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [CHAT_STREAM])))
    t = NativeOverOpenAI("/api/chat", CHAT)
    assert stable(ndjson(run(t, split_every(CHAT_STREAM, size)))) == whole


def test_every_single_cut_including_inside_utf8_characters() -> None:
    whole = stable(ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [CHAT_STREAM])))
    emoji = CHAT_STREAM.index("👋".encode())
    cuts = [emoji + 1, emoji + 2, emoji + 3, CHAT_STREAM.index(b"\n\n") + 1]
    cuts += random.Random(7).sample(range(1, len(CHAT_STREAM)), 40)
    for cut in cuts:
        t = NativeOverOpenAI("/api/chat", CHAT)
        first = t.feed(CHAT_STREAM[:cut])
        assert first == b"" or first.endswith(b"\n")
        rest = t.feed(CHAT_STREAM[cut:]) + t.end()
        assert stable(ndjson(first + rest)) == whole, cut


def test_crlf_framing_and_comments() -> None:
    body = b": keep-alive\r\n\r\n" + sse(
        chunk({"content": "ok"}), chunk({}, "stop"), "[DONE]", crlf=True
    )
    lines = ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [body]))
    check_stream("/api/chat", lines)
    assert [line["message"]["content"] for line in lines] == ["ok", ""]
    assert lines[-1]["done_reason"] == "stop"


def test_nothing_until_a_line_is_whole() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    assert t.feed(b'data: {"choices": [{"index": 0, "delta": {"content": "a') == b""
    assert t.feed(b'"}}]}\n') == b""  # the event is complete only at its blank line
    assert json.loads(t.feed(b"\n"))["message"]["content"] == "a"


def test_tool_calls_streamed_in_pieces() -> None:
    calls: list[dict[str, Any] | str] = [
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "city\": \"Pa"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}),
        chunk({}, "tool_calls"),
        {"choices": [],
         "usage": {"prompt_tokens": 44, "completion_tokens": 16, "total_tokens": 60}},
        "[DONE]",
    ]  # fmt: skip
    body = sse(*calls)
    t = NativeOverOpenAI("/api/chat", {**CHAT, "tools": []})
    lines = ndjson(run(t, split_every(body, 11)))
    check_stream("/api/chat", lines)
    assert len(lines) == 2
    assert lines[0]["message"]["tool_calls"] == [
        {"id": "call_a", "function": {"index": 0, "name": "get_weather",
                                      "arguments": {"city": "Paris"}}},
        {"id": "call_b", "function": {"index": 1, "name": "get_time", "arguments": {}}},
    ]  # fmt: skip
    assert lines[1]["done_reason"] == "stop"
    assert (lines[1]["prompt_eval_count"], lines[1]["eval_count"]) == (44, 16)


def test_broken_tool_call_arguments_are_an_error_line() -> None:
    body = sse(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a":'}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    lines = ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [body]))
    assert len(lines) == 1 and "not a JSON object" in lines[0]["error"]
    check_error_line(lines[0])


def test_reasoning_becomes_thinking() -> None:
    body = sse(
        chunk({"reasoning_content": "let me see"}),
        chunk({"content": "yes"}),
        chunk({}, "stop"),
        "[DONE]",
    )
    lines = ndjson(run(NativeOverOpenAI("/api/chat", {**CHAT, "think": True}), [body]))
    check_stream("/api/chat", lines)
    assert lines[0]["message"] == {"role": "assistant", "content": "", "thinking": "let me see"}
    assert lines[1]["message"]["content"] == "yes"


def test_logprobs_are_carried() -> None:
    lp = {
        "content": [
            {
                "token": "yes",
                "logprob": -0.1,
                "bytes": [121, 101, 115],
                "top_logprobs": [{"token": "yes", "logprob": -0.1, "bytes": [121, 101, 115]}],
            }
        ]
    }
    body = sse(chunk({"content": "yes"}, logprobs=None) | {"choices": [
        {"index": 0, "delta": {"content": "yes"}, "logprobs": lp, "finish_reason": None}]},
        chunk({}, "stop"), "[DONE]")  # fmt: skip
    lines = ndjson(run(NativeOverOpenAI("/api/chat", {**CHAT, "logprobs": True}), [body]))
    check_stream("/api/chat", lines)
    assert lines[0]["logprobs"] == lp["content"]


def test_generate_stream_from_completions() -> None:
    def text(value: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"text": value, "index": 0, "logprobs": None, "finish_reason": finish}
        return {"object": "text_completion", "choices": [choice], **extra}

    usage = {"completion_tokens": 3, "prompt_tokens": 3, "total_tokens": 6}
    body = sse(text(" a"), text(" canvas"), text(" of"), text("", "length", usage=usage), "[DONE]")
    t = NativeOverOpenAI("/api/generate", {"model": "g", "prompt": "The sky is", "raw": True})
    lines = ndjson(run(t, split_every(body, 9)))
    check_stream("/api/generate", lines)
    assert "".join(line["response"] for line in lines) == " a canvas of"
    assert "message" not in lines[0] and "context" not in lines[-1]
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (3, 3)
    assert lines[-1]["done_reason"] == "length"


def test_generate_stream_over_chat() -> None:
    t = NativeOverOpenAI("/api/generate", {"model": "g", "prompt": "hi"})
    assert t.path == "/v1/chat/completions"
    lines = ndjson(run(t, [CHAT_STREAM]))
    check_stream("/api/generate", lines)
    assert "".join(line["response"] for line in lines) == "Héllo wörld 👋!"


@pytest.mark.parametrize(
    "failure",
    [
        b'data: {"error": {"code": 500, "message": "slot crashed", "type": "server_error"}}\n\n',
        b'error: {"code": 500, "message": "slot crashed", "type": "server_error"}\n\n',
        b'event: error\ndata: {"message": "slot crashed"}\n\n',
        b"event: error\ndata: slot crashed\n\n",
        b'data: {"object": "error", "message": "slot crashed", "type": "BadRequestError"}\n\n',
        b'data: {"error": "slot crashed", "error_type": "generation"}\n\n',
    ],
)
def test_error_event_mid_stream(failure: bytes) -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    out = t.feed(sse(chunk({"content": "par"})) + failure)
    assert t.feed(sse(chunk({"content": "tial"}), chunk({}, "stop"), "[DONE]")) == b""
    out += t.end()
    lines = ndjson(out)
    assert lines[0]["message"]["content"] == "par"
    assert lines[1:] == [{"error": "slot crashed"}]
    check_error_line(lines[1])


def test_finish_without_done_marker_still_ends_with_done() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    body = sse(chunk({"content": "ok"}), chunk({}, "stop"), USAGE).rstrip(b"\n")
    lines = ndjson(run(t, [body]))
    check_stream("/api/chat", lines)
    assert lines[-1]["eval_count"] == 4  # the usage event without its blank line still counted


def test_done_marker_without_finish_reason() -> None:
    lines = ndjson(
        run(NativeOverOpenAI("/api/chat", CHAT), [sse(chunk({"content": "ok"}), "[DONE]")])
    )
    check_stream("/api/chat", lines)
    assert lines[-1]["done_reason"] == "stop"


@pytest.mark.parametrize("cut", [0, 1, 40])
def test_stream_that_ends_early_is_an_error_not_a_truncation(cut: int) -> None:
    body = sse(chunk({"content": "half"}), chunk({"content": " an answer"}))
    t = NativeOverOpenAI("/api/chat", CHAT)
    lines = ndjson(run(t, [body[: len(body) - cut]]))
    assert lines[-1] == {"error": "backend ended the stream early"}
    assert not any(line.get("done") for line in lines)
    check_error_line(lines[-1])


def test_nothing_at_all_is_an_error() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    assert ndjson(t.end()) == [{"error": "backend ended the stream early"}]


def test_event_that_is_not_json_is_an_error() -> None:
    lines = ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [b"data: {oops\n\n"]))
    assert len(lines) == 1 and "not JSON" in lines[0]["error"]


def test_error_line() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    assert t.error_line("backend connection lost") == b'{"error":"backend connection lost"}\n'


def test_measured_durations_without_timings() -> None:
    body = sse(chunk({"content": "ok"}), chunk({}, "stop"), "[DONE]")
    lines = ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [body]))
    check_stream("/api/chat", lines)
    last = lines[-1]
    assert last["total_duration"] >= last["prompt_eval_duration"] + last["eval_duration"]
    assert "eval_count" not in last  # unknown without usage: left out, not made up


def test_whole_stream_given_to_response() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    status, body = t.response(200, CHAT_STREAM)
    assert status == 200
    lines = ndjson(body)
    check_stream("/api/chat", lines)
    assert "".join(line["message"]["content"] for line in lines) == "Héllo wörld 👋!"


def test_streamed_request_answered_with_one_object() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    reply = {"choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
    status, body = t.response(200, json.dumps(reply).encode())
    lines = ndjson(body)
    check_stream("/api/chat", lines)
    assert status == 200 and lines[0]["message"]["content"] == "hi"


def test_error_status_on_a_streamed_request() -> None:
    t = NativeOverOpenAI("/api/chat", CHAT)
    status, body = t.response(400, b'{"error": {"message": "context exceeded"}}')
    assert (status, json.loads(body)) == (400, {"error": "context exceeded"})


def test_event_of_an_unexpected_shape_is_an_error() -> None:
    body = sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": 5}]}}]})
    lines = ndjson(run(NativeOverOpenAI("/api/chat", CHAT), [body]))
    assert len(lines) == 1 and "unexpected shape" in lines[0]["error"]
