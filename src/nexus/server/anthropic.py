"""Anthropic's Messages API under ``/v1``: ``/v1/messages`` and ``/v1/messages/count_tokens``.

Errors on these paths render as Anthropic's ``{"type": "error", "error": {...}}`` (see
``server.errors``); once a stream has started they are sent as an ``error`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus.api.anthropic import CountTokensRequest, MessagesRequest
from nexus.api.ollama import ChatRequest
from nexus.compat import anthropic as an
from nexus.errors import NexusError, RunnerFailed, UnsupportedCapability
from nexus.inference.prompts import PromptBuilder
from nexus.inference.service import Outcome
from nexus.server.body import parse_body
from nexus.server.errors import error_body
from nexus.server.state import AppState, state_of
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
SSE_HEADERS = {"Cache-Control": "no-cache"}


async def sse(events: AsyncIterator[dict[str, Any]], path: str) -> AsyncIterator[bytes]:
    """``event: <type>`` / ``data: <json>`` pairs; a failure mid-stream becomes an ``error``
    event, which Anthropic's SDKs raise as an API error."""
    try:
        async for event in events:
            yield event_frame(event)
    except NexusError as exc:
        yield event_frame(error_body(path, exc.status, exc.message, exc))
    except Exception as exc:  # the stream has started: report in-band
        log.exception("messages stream failed")
        yield event_frame(error_body(path, 500, f"internal error: {exc}"))
    finally:
        await aclose(events)


async def _can_think(state: AppState, req: CountTokensRequest | MessagesRequest) -> bool:
    if not an.asks_for_thinking(req):
        return False
    model = await state.catalog.get(req.model)
    return "thinking" in model.capabilities


@router.post("/messages")
async def messages(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, MessagesRequest)
    native = an.to_native(req, can_think=await _can_think(state, req))
    outcome = Outcome()
    stop_sequences = list(req.stop_sequences or ())
    chunks = state.inference.chat(
        native, tool_choice=an.tool_choice(req.tool_choice), outcome=outcome
    )
    if not req.stream:
        result = await until_disconnect(
            request, an.message_reply(req.model, chunks, outcome, stop_sequences)
        )
        return JSONReply(result)
    # Wait for the first native chunk before answering, so that errors found before any
    # output (unknown model, bad options, context overflow) keep their HTTP status.
    try:
        first: Chunk | None = await until_disconnect(request, anext(chunks))
    except StopAsyncIteration:
        first = None
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    stream = an.MessageStream(req.model, outcome, stop_sequences, an.estimate_input_tokens(native))
    events = stream.events(prepend(first, chunks))
    return ClosingStreamingResponse(
        sse(events, request.url.path), media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.post("/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    """The prompt's exact length in the model's tokens, rendered as a chat would render it."""
    state = state_of(request)
    req = await parse_body(request, CountTokensRequest)
    native = an.count_request_to_native(req, can_think=await _can_think(state, req))
    tools = None if an.tool_choice(req.tool_choice) == "none" else native.tools
    count = await until_disconnect(request, _count(state, native, tools))
    return JSONReply({"input_tokens": count})


async def _count(state: AppState, native: ChatRequest, tools: list[dict[str, Any]] | None) -> int:
    inference = state.inference
    model = await inference.catalog.get(native.model)
    if "completion" not in model.capabilities:
        raise UnsupportedCapability(f'"{native.model}" does not support chat')
    options = inference.options_for(model, native.options)
    lease, _ = await inference.lease(model, options, native.keep_alive)
    async with lease:
        client = getattr(lease.runner, "client", None)
        if client is None:
            raise RunnerFailed("llama runner process no longer running")
        builder = PromptBuilder(client, inference.catalog)
        messages = builder.chat_messages(model, native)
        rendered = await builder.chat_prompt(model, messages, tools, native.think)
        return len(await client.tokenize(rendered.text, add_special=True))
