"""Token counts read from replies as they pass, and the end of a stream told from a cut."""

from __future__ import annotations

import json

import pytest

from nexus.gateway.accounting import ANTHROPIC, NATIVE, OPENAI, RESPONSES, Meter, family


def sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


def feed_in_pieces(meter: Meter, stream: bytes, size: int) -> bytes:
    out = b"".join(meter.feed(stream[i : i + size]) for i in range(0, len(stream), size))
    return out + meter.flush()


def test_family_of_each_route() -> None:
    assert family("/api/chat") == NATIVE
    assert family("/v1/chat/completions") == OPENAI
    assert family("/v1/embeddings") == OPENAI
    assert family("/v1/responses") == RESPONSES
    assert family("/v1/messages") == ANTHROPIC


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_native_stream_counts_from_the_last_line(size: int) -> None:
    lines = [
        {"message": {"content": 'say "done":true'}, "done": False},
        {"message": {"content": ""}, "done": True, "prompt_eval_count": 12, "eval_count": 5},
    ]
    stream = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    meter = Meter(NATIVE)
    assert feed_in_pieces(meter, stream, size) == stream
    assert (meter.prompt, meter.completion, meter.finished) == (12, 5, True)


def test_native_stream_without_its_last_line_is_not_finished() -> None:
    meter = Meter(NATIVE)
    meter.feed(b'{"message":{"content":"a"},"done":false}\n')
    assert not meter.finished and meter.flush() == b""


def test_native_error_line_ends_a_stream() -> None:
    meter = Meter(NATIVE)
    meter.feed(b'{"error":"model crashed"}\n')
    assert meter.finished


@pytest.mark.parametrize("size", [1, 13, 10_000])
def test_openai_usage_chunk_is_read_and_stripped_when_the_gateway_asked(size: int) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    stream = sse(chunk) + sse(usage) + b"data: [DONE]\n\n"
    meter = Meter(OPENAI, strip_usage=True)
    assert feed_in_pieces(meter, stream, size) == sse(chunk) + b"data: [DONE]\n\n"
    assert (meter.prompt, meter.completion, meter.finished) == (9, 2, True)
    kept = Meter(OPENAI)
    assert feed_in_pieces(kept, stream, size) == stream
    assert (kept.prompt, kept.completion) == (9, 2)


def test_openai_stream_cut_before_done_is_not_finished() -> None:
    meter = Meter(OPENAI, strip_usage=True)
    out = meter.feed(sse({"choices": [{"delta": {"content": "x"}}]}) + b'data: {"cho')
    assert out.endswith(b"\n\n")
    assert not meter.finished
    assert meter.flush() == b'data: {"cho\n\n'


def test_anthropic_and_responses_streams() -> None:
    anthropic = Meter(ANTHROPIC)
    anthropic.feed(
        sse({"type": "message_start", "message": {"usage": {"input_tokens": 7}}}, "message_start")
        + sse({"type": "message_delta", "usage": {"output_tokens": 3}}, "message_delta")
        + sse({"type": "message_stop"}, "message_stop")
    )
    assert (anthropic.prompt, anthropic.completion, anthropic.finished) == (7, 3, True)
    responses = Meter(RESPONSES)
    done = {"type": "response.completed",
            "response": {"usage": {"input_tokens": 4, "output_tokens": 6}}}  # fmt: skip
    responses.feed(sse(done, "response.completed"))
    assert (responses.prompt, responses.completion, responses.finished) == (4, 6, True)


def test_whole_bodies() -> None:
    native = Meter(NATIVE)
    native.whole(b'{"done":true,"prompt_eval_count":3,"eval_count":4}')
    assert (native.prompt, native.completion) == (3, 4)
    openai = Meter(OPENAI)
    openai.whole(b'{"usage":{"prompt_tokens":5,"completion_tokens":1}}')
    assert (openai.prompt, openai.completion) == (5, 1)
    anthropic = Meter(ANTHROPIC)
    anthropic.whole(b'{"usage":{"input_tokens":8,"output_tokens":2}}')
    assert (anthropic.prompt, anthropic.completion) == (8, 2)
    garbage = Meter(OPENAI)
    garbage.whole(b"not json")
    garbage.whole(b'{"usage":{"prompt_tokens":-4,"completion_tokens":"x"}}')
    assert (garbage.prompt, garbage.completion) == (0, 0)


def watch_in_pieces(meter: Meter, body: bytes, size: int) -> None:
    for i in range(0, len(body), size):
        meter.piece(body[i : i + size])


@pytest.mark.parametrize("size", [1, 5, 333, 100_000])
def test_a_passed_native_reply_counts_its_last_keys(size: int) -> None:
    """Wherever the pieces are cut, the reply's own counts (after its content) win over a model's
    look-alike keys before them and over text in its strings."""
    body = json.dumps(
        {
            "model": "m",
            "message": {
                "content": 'fake "prompt_eval_count": 99',
                "tool_calls": [{"function": {"arguments": {"eval_count": 77}}}],
            },
            "embeddings": [[0.5] * 2000],
            "prompt_eval_count": 1234,
            "eval_count": 56,
        }
    ).encode()
    meter = Meter(NATIVE)
    watch_in_pieces(meter, body, size)
    assert (meter.prompt, meter.completion) == (1234, 56)


@pytest.mark.parametrize("size", [1, 9, 4096, 100_000])
@pytest.mark.parametrize("api", [OPENAI, ANTHROPIC])
def test_a_passed_openai_reply_reads_its_usage_object(size: int, api: str) -> None:
    usage = (
        {"prompt_tokens": 321, "completion_tokens": 0, "total_tokens": 321,
         "prompt_tokens_details": {"cached_tokens": 0}}
        if api == OPENAI
        else {"input_tokens": 321, "output_tokens": 0}
    )  # fmt: skip
    body = json.dumps(
        {"data": [{"embedding": [0.25] * 3000, "note": '"usage": {"prompt_tokens": 1}'}],
         "model": "m", "usage": usage}
    ).encode()  # fmt: skip
    meter = Meter(api)
    watch_in_pieces(meter, body, size)
    assert (meter.prompt, meter.completion) == (321, 0)


def test_a_passed_reply_without_counts_counts_nothing() -> None:
    meter = Meter(OPENAI)
    watch_in_pieces(meter, json.dumps({"data": [[1, 2, 3]] * 1000}).encode(), 100)
    meter.piece(b'"usage": {"prompt_tokens": 4')  # never closed
    assert (meter.prompt, meter.completion) == (0, 0)
