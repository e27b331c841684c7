"""Routes: ``/api/pull`` and ``/api/push``, speaking the registry protocol as Ollama does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from nexus.errors import BadRequest, NexusError
from nexus.registry.client import RegistryClient, new_http_client
from nexus.registry.options import TransferOptions
from nexus.registry.pull import PullJob, pull_model
from nexus.registry.push import local_manifest, push_model
from nexus.registry.reference import RegistryRef, parse_reference
from nexus.server.body import parse_body
from nexus.server.state import state_of
from nexus.server.streaming import Chunk, JSONReply, progress_stream, until_disconnect
from nexus.streams import aclose

log = logging.getLogger(__name__)

router = APIRouter()


class TransferRequest(BaseModel):
    """Body of ``/api/pull`` and ``/api/push``."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    name: str = ""  # legacy spelling of ``model``
    insecure: bool = False
    stream: bool | None = None


async def _parse(request: Request) -> tuple[TransferRequest, RegistryRef, str]:
    body = await parse_body(request, TransferRequest)
    requested = body.model or body.name
    if not requested:
        raise BadRequest("model is required", param="model")
    return body, parse_reference(requested, insecure=body.insecure), requested


async def _guarded(chunks: AsyncIterator[Chunk], after: Callable[[], None]) -> AsyncIterator[Chunk]:
    """Every failure as a ``NexusError`` (so a started stream ends with an error line)."""
    try:
        async for chunk in chunks:
            yield chunk
        after()
    except NexusError:
        raise
    except Exception as exc:
        log.exception("transfer failed")
        raise NexusError(str(exc) or type(exc).__name__) from exc
    finally:
        await aclose(chunks)


async def _respond(
    request: Request, chunks: AsyncIterator[Chunk], stream: bool | None, cleanup: Any
) -> Response:
    async def closing() -> AsyncIterator[Chunk]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await cleanup()

    if stream is None or stream:
        return StreamingResponse(progress_stream(closing()), media_type="application/x-ndjson")

    async def last() -> Chunk:
        final: Chunk = {}
        async for chunk in closing():
            final = chunk
        return final

    return JSONReply(await until_disconnect(request, last()))


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    state = state_of(request)
    body, ref, _ = await _parse(request)
    http = new_http_client()
    job = PullJob(
        store=state.store,
        client=RegistryClient(http, ref.name.host),
        table=state.transfers,
        options=TransferOptions(part_size=state.settings.pull_part_size),
    )
    chunks = _guarded(pull_model(job, ref), state.catalog_changed)
    return await _respond(request, chunks, body.stream, http.aclose)


@router.post("/api/push")
async def push(request: Request) -> Response:
    state = state_of(request)
    body, ref, requested = await _parse(request)
    manifest, raw = await local_manifest(state.store, ref, requested)
    http = new_http_client()
    client = RegistryClient(http, ref.name.host, token=state.settings.push_token)
    options = TransferOptions(part_size=state.settings.pull_part_size)
    chunks = _guarded(push_model(state.store, client, ref, manifest, raw, options), lambda: None)
    return await _respond(request, chunks, body.stream, http.aclose)
