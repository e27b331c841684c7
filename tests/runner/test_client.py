"""EngineClient's stream parsing against a scripted engine (the real engine is in the
integration tests): events in order, the body read to its end, errors mapped."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from nexus.errors import BadRequest, RunnerFailed
from nexus.runner.client import ContextExceeded, EngineClient, EngineUnreachable
from nexus.runner.prompt_gate import PromptGate


class ScriptedBody:
    """A response body sent in the given pieces (chunked, as the engine streams); remembers
    whether it was sent to its end."""

    def __init__(self, pieces: list[bytes], gate: asyncio.Event | None = None) -> None:
        self.pieces = pieces
        self.gate = gate  # when given, the pieces after the first wait for it
        self.exhausted = False


Engine = Callable[[dict[str, object]], tuple[int, ScriptedBody]]


async def _serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, engine: Engine, keep_alive: bool
) -> None:
    while True:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            break
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        request = json.loads(await reader.readexactly(length)) if length else {}
        status, body = engine(request)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for i, piece in enumerate(body.pieces):
            if i == 1 and body.gate is not None:
                await body.gate.wait()
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        body.exhausted = True
        if not keep_alive:
            break
    writer.close()


async def client_of(
    engine: Engine, *, keep_alive: bool = True, connections: list[int] | None = None
) -> EngineClient:
    """An EngineClient whose engine (on a Unix socket) answers with the given handler. Without
    ``keep_alive`` the engine closes each connection after one reply; ``connections`` gets one
    item per connection the engine accepted."""
    path = str(Path(tempfile.mkdtemp(prefix="nexus-test-")) / "engine.sock")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connections is not None:
            connections.append(len(connections))
        try:
            await _serve(reader, writer, engine, keep_alive)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    await asyncio.start_unix_server(handle, path)
    return EngineClient(f"unix://{path}")


async def client_for(status: int, body: ScriptedBody) -> EngineClient:
    return await client_of(lambda request: (status, body))


def sse(event: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def test_events_split_anywhere_arrive_whole_and_in_order() -> None:
    raw = sse({"content": "Hel"}) + sse({"content": "lo"}) + sse({"content": "", "stop": True})
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # lines cut mid-JSON
    client = await client_for(200, ScriptedBody(pieces))
    events = [event async for event in client.completion_stream({"prompt": "x"})]
    assert [e["content"] for e in events] == ["Hel", "lo", ""]
    assert events[-1]["stop"] is True


async def test_body_is_read_to_its_end_before_the_last_event() -> None:
    """Then the connection can go back to the pool for the next request."""
    body = ScriptedBody([sse({"content": "a"}), sse({"content": "", "stop": True}), b"\n"])
    client = await client_for(200, body)
    seen_exhausted_at_stop = None
    async for event in client.completion_stream({"prompt": "x"}):
        if event.get("stop"):
            seen_exhausted_at_stop = body.exhausted
    assert seen_exhausted_at_stop is True


async def test_error_line_in_the_stream_raises() -> None:
    error = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
    body = ScriptedBody([sse({"content": "a"}), b"error: " + error + b"\n\n"])
    client = await client_for(200, body)
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
    client = await client_for(400, ScriptedBody([json.dumps(error).encode()]))
    with pytest.raises(ContextExceeded) as caught:
        async for _ in client.completion_stream({"prompt": "x"}):
            pass
    assert (caught.value.n_prompt_tokens, caught.value.n_ctx) == (2000, 1024)


async def test_other_client_errors_are_bad_requests() -> None:
    error = {"error": {"message": "invalid grammar", "type": "invalid_request_error"}}
    client = await client_for(400, ScriptedBody([json.dumps(error).encode()]))
    with pytest.raises(BadRequest, match="invalid grammar"):
        async for _ in client.completion_stream({"prompt": "x"}):
            pass


async def test_tokenize_adds_the_vocabulary_specials_only_when_asked() -> None:
    sent: list[dict[str, object]] = []

    def engine(request: dict[str, object]) -> tuple[int, ScriptedBody]:
        sent.append(request)
        return 200, ScriptedBody([json.dumps({"tokens": [1, 2]}).encode()])

    client = await client_of(engine)
    assert await client.tokenize("hi") == [1, 2]
    assert await client.tokenize("hi", add_special=True) == [1, 2]
    assert [body["add_special"] for body in sent] == [False, True]
    assert all(body["parse_special"] is True for body in sent)


def tokens_reply(request: dict[str, object]) -> tuple[int, ScriptedBody]:
    return 200, ScriptedBody([json.dumps({"tokens": [7]}).encode()])


async def test_a_kept_alive_connection_serves_the_next_request() -> None:
    connections: list[int] = []
    client = await client_of(tokens_reply, connections=connections)
    for _ in range(3):
        assert await client.tokenize("hi") == [7]
    assert len(connections) == 1


async def test_a_connection_the_engine_closed_is_replaced_without_an_error() -> None:
    connections: list[int] = []
    client = await client_of(tokens_reply, keep_alive=False, connections=connections)
    for _ in range(3):
        assert await client.tokenize("hi") == [7]
    assert len(connections) == 3


async def test_a_stream_left_early_closes_its_connection() -> None:
    """The engine then stops generating; the next request gets a new connection."""
    connections: list[int] = []
    gate = asyncio.Event()
    pieces = [sse({"content": "a"}), sse({"content": "b"}), sse({"stop": True})]
    bodies = iter([ScriptedBody(pieces, gate), ScriptedBody(pieces)])
    client = await client_of(lambda request: (200, next(bodies)), connections=connections)
    stream = client.completion_stream({"prompt": "x"})
    assert (await anext(stream))["content"] == "a"
    await stream.aclose()
    gate.set()
    events = [event async for event in client.completion_stream({"prompt": "x"})]
    assert [e.get("content") for e in events] == ["a", "b", None]
    assert len(connections) == 2


async def test_an_engine_that_is_gone_is_unreachable() -> None:
    client = EngineClient(f"unix://{tempfile.mkdtemp(prefix='nexus-test-')}/missing.sock")
    assert await client.health() is False
    with pytest.raises(EngineUnreachable):
        await client.tokenize("hi")
    with pytest.raises(EngineUnreachable):
        async for _ in client.completion_stream({"prompt": "x"}):
            pass


# ---- the prompt gate: a prompt holds its turn until its first event, and never longer --------


async def test_a_prompt_holds_its_turn_until_its_first_event() -> None:
    held = asyncio.Event()
    body = ScriptedBody([b": busy\n\n", sse({"content": "a"}), sse({"stop": True})], held)
    client = await client_for(200, body)
    gate = client.gate = PromptGate(batch=64, parallel=4)
    stream = client.completion_stream({"prompt": "x"})
    first = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    assert gate.entered == 1  # in the engine, no event yet
    held.set()
    assert (await first)["content"] == "a"
    assert gate.entered == 0  # given back before the first event went out
    assert [e.get("stop") async for e in stream] == [True]
    assert gate.entered == 0


async def test_a_prompt_left_before_its_first_event_gives_its_turn_back() -> None:
    held = asyncio.Event()
    body = ScriptedBody([b": busy\n\n", sse({"content": "a"}), sse({"stop": True})], held)
    client = await client_for(200, body)
    gate = client.gate = PromptGate(batch=64, parallel=4)
    first = asyncio.create_task(anext(client.completion_stream({"prompt": "x"})))
    await asyncio.sleep(0)
    assert gate.entered == 1
    first.cancel()  # the client left
    with pytest.raises(asyncio.CancelledError):
        await first
    assert gate.entered == 0
    held.set()


async def test_a_refused_or_unreachable_prompt_gives_its_turn_back() -> None:
    error = {"error": {"message": "invalid grammar", "type": "invalid_request_error"}}
    refusing = await client_for(400, ScriptedBody([json.dumps(error).encode()]))
    gone = EngineClient(f"unix://{tempfile.mkdtemp(prefix='nexus-test-')}/missing.sock")
    for client, error_type in ((refusing, BadRequest), (gone, EngineUnreachable)):
        gate = client.gate = PromptGate(batch=64, parallel=4)
        with pytest.raises(error_type):
            async for _ in client.completion_stream({"prompt": "x"}):
                pass
        assert gate.entered == 0


async def test_a_text_that_may_be_short_is_counted_exactly_when_the_gate_is_busy() -> None:
    sent: list[dict[str, object]] = []

    def engine(request: dict[str, object]) -> tuple[int, ScriptedBody]:
        sent.append(request)
        if "content" in request:  # /tokenize
            return 200, ScriptedBody([json.dumps({"tokens": list(range(10))}).encode()])
        return 200, ScriptedBody([sse({"content": "a"}), sse({"stop": True})])

    client = await client_of(engine)
    gate = client.gate = PromptGate(batch=64, parallel=4)  # half a batch: 30 tokens
    await gate.enter(None)  # a long prompt is in
    async with asyncio.timeout(30):  # fails rather than waits for ever
        events = [e async for e in client.completion_stream({"prompt": "x" * 100})]
    # 104 tokens at most by its bytes, 10 by the tokenizer: short, so let in beside it
    assert [e.get("content") for e in events] == ["a", None]
    assert sent[0] == {"content": "x" * 100, "add_special": True, "parse_special": True}
    assert gate.entered == 1
