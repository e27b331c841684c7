"""EngineClient's stream parsing against a scripted engine (the real engine is in the
integration tests): events in order, the body read to its end, errors mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from nexus.errors import BadRequest, RunnerFailed
from nexus.runner.client import ContextExceeded, EngineClient


class ScriptedBody(httpx.AsyncByteStream):
    """A response body sent in the given pieces; remembers whether it was read to its end."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.exhausted = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        self.exhausted = True


def client_of(engine: Callable[[httpx.Request], httpx.Response]) -> EngineClient:
    """An EngineClient whose engine is the given request handler."""
    client = EngineClient("http://engine")
    client._http = httpx.AsyncClient(
        base_url="http://engine", transport=httpx.MockTransport(engine)
    )
    return client


def client_for(status: int, body: ScriptedBody) -> EngineClient:
    return client_of(lambda request: httpx.Response(status, stream=body))


def sse(event: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def test_events_split_anywhere_arrive_whole_and_in_order() -> None:
    raw = sse({"content": "Hel"}) + sse({"content": "lo"}) + sse({"content": "", "stop": True})
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # lines cut mid-JSON
    client = client_for(200, ScriptedBody(pieces))
    events = [event async for event in client.completion_stream({"prompt": "x"})]
    assert [e["content"] for e in events] == ["Hel", "lo", ""]
    assert events[-1]["stop"] is True


async def test_body_is_read_to_its_end_before_the_last_event() -> None:
    """Then the connection can go back to the pool for the next request."""
    body = ScriptedBody([sse({"content": "a"}), sse({"content": "", "stop": True}), b"\n"])
    client = client_for(200, body)
    seen_exhausted_at_stop = None
    async for event in client.completion_stream({"prompt": "x"}):
        if event.get("stop"):
            seen_exhausted_at_stop = body.exhausted
    assert seen_exhausted_at_stop is True


async def test_error_line_in_the_stream_raises() -> None:
    error = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
    body = ScriptedBody([sse({"content": "a"}), b"error: " + error + b"\n\n"])
    client = client_for(200, body)
    with pytest.raises(RunnerFailed, match="boom"):
        async for _ in client.completion_stream({"prompt": "x"}):
            pass


async def test_context_overflow_maps_to_context_exceeded() -> None:
    error = {
        "error": {
            "message": "request (2000 tokens) exceeds the context size (1024 tokens)",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 2000,
            "n_ctx": 1024,
        }
    }
    client = client_for(400, ScriptedBody([json.dumps(error).encode()]))
    with pytest.raises(ContextExceeded) as caught:
        async for _ in client.completion_stream({"prompt": "x"}):
            pass
    assert (caught.value.n_prompt_tokens, caught.value.n_ctx) == (2000, 1024)


async def test_other_client_errors_are_bad_requests() -> None:
    error = {"error": {"message": "invalid grammar", "type": "invalid_request_error"}}
    client = client_for(400, ScriptedBody([json.dumps(error).encode()]))
    with pytest.raises(BadRequest, match="invalid grammar"):
        async for _ in client.completion_stream({"prompt": "x"}):
            pass


async def test_tokenize_adds_the_vocabulary_specials_only_when_asked() -> None:
    sent: list[dict[str, object]] = []

    def engine(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"tokens": [1, 2]})

    client = client_of(engine)
    assert await client.tokenize("hi") == [1, 2]
    assert await client.tokenize("hi", add_special=True) == [1, 2]
    assert [body["add_special"] for body in sent] == [False, True]
    assert all(body["parse_special"] is True for body in sent)
