"""OpenAI's Responses API under ``/v1``: ``POST /v1/responses``, streamed or not.

Responses are not stored: each request carries its whole conversation in ``input``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus.api.responses import ResponsesRequest
from nexus.compat import responses as rs
from nexus.errors import ContextOverflow, NexusError
from nexus.server.body import parse_body
from nexus.server.state import state_of
from nexus.server.streaming import (
    ClosingStreamingResponse,
    JSONReply,
    event_frame,
    until_disconnect,
)
from nexus.streams import aclose, prepend

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

Chunk = dict[str, Any]


async def _sse(
    stream: rs.ResponseStream, events: AsyncGenerator[Chunk, None]
) -> AsyncIterator[bytes]:
    """Server-sent events named after their type. A failure once the stream has started is
    reported in-band: an ``error`` event, then ``response.failed``."""
    try:
        async for event in events:
            yield event_frame(event)
    except NexusError as exc:
        for event in stream.failed(exc.message, exc.code, exc.param):
            yield event_frame(event)
    except Exception as exc:
        log.exception("responses stream failed")
        for event in stream.failed(f"internal error: {exc}", None, None):
            yield event_frame(event)
    finally:
        await events.aclose()


@router.post("/responses")
async def create_response(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, ResponsesRequest)
    native, choice = rs.to_native(req)
    chunks = state.inference.chat(native, tool_choice=choice)
    # The first native chunk comes before any event, so errors that happen before output
    # (unknown model, bad options, an input too long) keep their own status.
    first: Chunk | None
    try:
        first = await until_disconnect(request, anext(chunks))
    except StopAsyncIteration:
        first = None
    except ContextOverflow as exc:
        await aclose(chunks)
        raise ContextOverflow(exc.message, param="input") from exc
    except BaseException:
        await aclose(chunks)
        raise
    stream = rs.ResponseStream(req)
    events = stream.events(prepend(first, chunks))
    if req.stream:
        return ClosingStreamingResponse(
            _sse(stream, events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return JSONReply(await until_disconnect(request, stream.collect(events)))
