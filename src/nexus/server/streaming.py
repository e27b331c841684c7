"""NDJSON streaming as Ollama does it, and single replies that stop when the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nexus.errors import Canceled, NexusError
from nexus.jsonio import dumpb
from nexus.streams import aclose

log = logging.getLogger(__name__)

Chunk = dict[str, Any]
T = TypeVar("T")


def event_frame(event: dict[str, Any]) -> bytes:
    """One server-sent event named by its ``type``, as the Responses and Messages APIs send them."""
    return b"event: " + event["type"].encode() + b"\ndata: " + dumpb(event) + b"\n\n"


class ClosingStreamingResponse(StreamingResponse):
    """A streamed reply that closes its body's generator however the sending ends (the client
    left, or read nothing for too long), so what the generator holds (a runner slot) is freed
    at once rather than whenever the garbage collector reaches it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(RuntimeError):  # one still running is ending already
                await aclose(self.body_iterator)


class JSONReply(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumpb(content)


async def _ndjson(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    yield dumpb(first) + b"\n"
    try:
        async for chunk in rest:
            yield dumpb(chunk) + b"\n"
    except NexusError as exc:
        yield dumpb({"error": exc.message}) + b"\n"
    except Exception as exc:  # the stream has started: report in-band, as Ollama does
        log.exception("stream failed")
        yield dumpb({"error": str(exc)}) + b"\n"
    finally:
        await aclose(rest)


async def wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, work: Any) -> Any:
    """Run ``work`` (a coroutine); cancel it if the client goes away first.

    A cancelled ``work`` is waited for before this returns, so whatever it was iterating (a
    generator in ``anext``) has stopped running and can be closed."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # it ended as the client left: retrieved, nobody is there to tell
        raise Canceled()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


async def reply(
    request: Request,
    chunks: AsyncIterator[Chunk],
    *,
    stream: bool,
    merge: Callable[[list[Chunk]], Chunk],
) -> Response:
    """Answer with NDJSON when streaming, else with the merged chunks as one JSON object.

    The first chunk is awaited before anything is sent, so errors that happen before output
    (unknown model, bad options, load failure) get their own status code.
    """
    try:
        first = await until_disconnect(request, anext(chunks))
    except StopAsyncIteration:
        first = {}
    except BaseException:
        await aclose(chunks)
        raise
    if first.get("done_reason") in ("load", "unload"):
        return JSONReply(first)  # a single object even when streaming, as Ollama answers
    if stream:
        return ClosingStreamingResponse(_ndjson(first, chunks), media_type="application/x-ndjson")

    async def collect() -> list[Chunk]:
        items = [first]
        try:
            async for chunk in chunks:
                items.append(chunk)
        finally:
            await aclose(chunks)
        return items

    return JSONReply(merge(await until_disconnect(request, collect())))


async def array_reply(
    request: Request,
    head: bytes,
    windows: AsyncIterator[list[bytes]],
    tail: Callable[[], bytes],
) -> Response:
    """A JSON object around one long array: ``head`` up to the array's ``[``, ``windows`` its
    elements encoded a window at a time, ``tail()`` from the array's ``]`` on (called after the
    last window, so it may report what they counted).

    Up to two windows are awaited before anything is sent: a reply of one window is sent whole,
    with its length, and an error is its status. A longer one is streamed, so memory holds a
    window whatever the count; an error past the first two closes the connection.
    """
    early: list[bytes] = []

    async def first_two() -> bool:
        for _ in range(2):
            try:
                early.extend(await anext(windows))
            except StopAsyncIteration:
                return True
        return False

    try:
        finished = await until_disconnect(request, first_two())
    except BaseException:
        await aclose(windows)
        raise
    if finished:
        return Response(head + b",".join(early) + tail(), media_type="application/json")
    return ClosingStreamingResponse(
        _array_body(head, early, windows, tail), media_type="application/json"
    )


async def encoded(
    windows: AsyncIterator[list[T]], encode: Callable[[T], bytes]
) -> AsyncIterator[list[bytes]]:
    """Each window's items encoded; ``windows`` is closed however this ends."""
    try:
        async for window in windows:
            yield [encode(item) for item in window]
    finally:
        await aclose(windows)


async def _array_body(
    head: bytes, early: list[bytes], windows: AsyncIterator[list[bytes]], tail: Callable[[], bytes]
) -> AsyncIterator[bytes]:
    try:
        yield head + b",".join(early)
        early.clear()
        async for window in windows:
            if window:
                yield b"," + b",".join(window)
        yield tail()
    except Exception as exc:
        # the status is sent: closing the connection is all that says the reply is incomplete
        log.warning("reply cut short after it had started: %s", exc)
        raise
    finally:
        await aclose(windows)


def merge_generate(chunks: list[Chunk]) -> Chunk:
    result = dict(chunks[-1])
    result["response"] = "".join(c.get("response", "") for c in chunks)
    thinking = "".join(c.get("thinking", "") for c in chunks)
    if thinking:
        result["thinking"] = thinking
    return result


def merge_chat(chunks: list[Chunk]) -> Chunk:
    result = dict(chunks[-1])
    message = dict(result.get("message") or {"role": "assistant"})
    message["content"] = "".join((c.get("message") or {}).get("content", "") for c in chunks)
    thinking = "".join((c.get("message") or {}).get("thinking", "") for c in chunks)
    if thinking:
        message["thinking"] = thinking
    calls = [call for c in chunks for call in (c.get("message") or {}).get("tool_calls", [])]
    if calls:
        message["tool_calls"] = calls
    result["message"] = message
    return result


async def progress_stream(statuses: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    try:
        async for status in statuses:
            yield dumpb(status) + b"\n"
    except NexusError as exc:
        yield dumpb({"error": exc.message}) + b"\n"
