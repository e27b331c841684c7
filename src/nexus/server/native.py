"""Ollama's native API under ``/api``: parse, call, stream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from nexus import __version__
from nexus.api.ollama import (
    OLLAMA_API_VERSION,
    ChatRequest,
    CopyRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ShowRequest,
)
from nexus.errors import BadRequest, BlobNotFound, InvalidModelName, ModelNotFound
from nexus.inference.embedding import EmbedTally
from nexus.jsonio import dumpb
from nexus.server.body import parse_body
from nexus.server.state import AppState, state_of
from nexus.server.streaming import (
    Chunk,
    JSONReply,
    array_reply,
    encoded,
    merge_chat,
    merge_generate,
    progress_stream,
    reply,
    until_disconnect,
)
from nexus.store.blobs import parse_digest
from nexus.store.create import CreateSpec, create_model
from nexus.store.names import ModelName
from nexus.streams import prepend

router = APIRouter()

FOREVER_UNTIL = datetime(2318, 1, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> Response:
    return JSONReply({"version": OLLAMA_API_VERSION, "nexus_version": __version__})


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    state = state_of(request)
    stored = await asyncio.to_thread(state.store.manifests.list)
    models = []
    for item in stored:
        details = await state.details_for(item)
        name = item.name.display()
        models.append(
            {
                "name": name,
                "model": name,
                "modified_at": iso(item.modified_at),
                "size": item.size,
                "digest": item.digest,
                "details": details,
            }
        )
    return JSONReply({"models": models})


@router.post("/api/show")
async def show(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, ShowRequest)
    requested = req.model or req.name
    if not requested:
        raise BadRequest("model is required")
    model = await state.catalog.get(requested)
    return JSONReply(await asyncio.to_thread(state.show, model, req.verbose))


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, GenerateRequest)
    _require_model(req.model)
    return await reply(
        request, state.inference.generate(req), stream=req.stream, merge=merge_generate
    )


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, ChatRequest)
    _require_model(req.model)
    return await reply(request, state.inference.chat(req), stream=req.stream, merge=merge_chat)


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, EmbedRequest)
    _require_model(req.model)
    tally = EmbedTally(time.monotonic())
    head = b'{"model":' + dumpb(req.model) + b',"embeddings":['

    def tail() -> bytes:
        if not req.input:
            return b"]}"
        fields: dict[str, Any] = {
            "total_duration": int((time.monotonic() - tally.started) * 1e9),
            "load_duration": int(tally.load_duration * 1e9),
            "prompt_eval_count": tally.count,
        }
        if tally.truncated:
            fields["truncated"] = True
        return b"]," + dumpb(fields)[1:]

    windows = encoded(state.inference.embed(req, tally), dumpb)
    return await array_reply(request, head, windows, tail)


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, EmbeddingsRequest)
    _require_model(req.model)
    return JSONReply(await until_disconnect(request, state.inference.embeddings(req)))


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    state = state_of(request)
    now = datetime.now(UTC)
    models = []
    shown: set[str] = set()
    # a model's embeddings runner is the same model: listed once, by its main runner if any
    for loaded in sorted(state.scheduler.loaded(), key=lambda m: m.spec.embeddings_only):
        if not loaded.runner.alive:
            continue
        model = loaded.info.get("model")
        if model is None or model.display_name in shown:
            continue
        shown.add(model.display_name)
        if loaded.refcount > 0 or not math.isfinite(loaded.keep_alive):
            until = now + timedelta(seconds=min(loaded.keep_alive, 1e10))
        else:
            until = datetime.fromtimestamp(loaded.expires_at, UTC)
        if not math.isfinite(loaded.keep_alive):
            until = FOREVER_UNTIL
        name = model.display_name
        size = int(loaded.info.get("size", 0))
        models.append(
            {
                "name": name,
                "model": name,
                "size": size,
                "digest": model.digest,
                "details": model.details(),
                "expires_at": iso(until),
                "size_vram": _vram(loaded.runner, size, model.gguf.block_count),
                "context_length": loaded.spec.num_ctx,
            }
        )
    models.sort(key=lambda m: m["expires_at"], reverse=True)
    return JSONReply({"models": models})


def _vram(runner: object, size: int, n_layers: int) -> int:
    vram_bytes = getattr(runner, "vram_bytes", None)
    return int(vram_bytes(size, n_layers)) if vram_bytes is not None else 0


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, CopyRequest)
    try:
        src = ModelName.parse(req.source)
    except InvalidModelName:
        raise BadRequest(f'source "{req.source}" is invalid') from None
    try:
        dst = ModelName.parse(req.destination)
    except InvalidModelName:
        raise BadRequest(f'destination "{req.destination}" is invalid') from None
    manifests = state.store.manifests
    resolved = await asyncio.to_thread(manifests.resolve, src)
    if resolved is None:
        raise ModelNotFound(f'model "{req.source}" not found')
    await asyncio.to_thread(manifests.copy, resolved, dst, req.source)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, DeleteRequest)
    requested = req.model or req.name
    if not requested:
        raise BadRequest("model is required")
    try:
        name = ModelName.parse(requested)
    except InvalidModelName:
        raise BadRequest(f'name "{requested}" is invalid') from None
    resolved = await asyncio.to_thread(state.store.manifests.resolve, name)
    if resolved is None:
        raise ModelNotFound(f"model '{requested}' not found")
    await asyncio.to_thread(state.store.delete_model, resolved, requested)
    return Response(status_code=200)


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request, digest: str) -> Response:
    state = state_of(request)
    parsed = parse_digest(digest)
    if not await asyncio.to_thread(state.store.blobs.exists, parsed):
        raise BlobNotFound(f'blob "{parsed}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def blob_upload(request: Request, digest: str) -> Response:
    state = state_of(request)
    parsed = parse_digest(digest)
    blobs = state.store.blobs
    if await asyncio.to_thread(blobs.exists, parsed):
        return Response(status_code=200)
    # The writer gets a thread of its own: a client that stalls mid-upload must not hold one
    # of the shared workers every other route's file access runs on.
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=64)
    loop = asyncio.get_running_loop()
    written: asyncio.Future[None] = loop.create_future()

    def feed() -> Iterator[bytes]:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def write() -> None:
        error: BaseException | None = None
        try:
            blobs.put(feed(), parsed)
        except BaseException as exc:  # handed to the request, which reports it
            error = exc
        loop.call_soon_threadsafe(_settle, written, error)

    threading.Thread(target=write, name="nexus-blob-upload", daemon=True).start()
    try:
        async for data in request.stream():
            if data:
                await _put(chunks, data, written)
    except BaseException:
        with contextlib.suppress(Exception):  # the writer stops, removing its temporary file
            await _put(chunks, UploadAborted(), written)
        await asyncio.wait({written})
        if not written.cancelled():
            written.exception()  # the request's own error is the one to report
        raise
    await _put(chunks, None, written)
    await written
    return Response(status_code=201)


class UploadAborted(Exception):
    """Tells a blob writer that its request ended before the whole body came."""


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


async def _put(
    chunks: queue.Queue[bytes | BaseException | None],
    item: bytes | BaseException | None,
    writer: asyncio.Future[None],
) -> None:
    """Hand a chunk to the writer thread without blocking the event loop."""
    while True:
        if writer.done():
            writer.result()  # re-raises the writer's error (digest mismatch, disk full)
            return
        try:
            chunks.put_nowait(item)
            return
        except queue.Full:
            await asyncio.sleep(0.001)


@router.post("/api/create")
async def create(request: Request) -> Response:
    state = state_of(request)
    spec = await parse_body(request, CreateSpec)
    if not spec.model:
        raise BadRequest("model is required")
    statuses = _run_with_progress(lambda progress: create_model(state.store, spec, progress))
    if spec.stream:
        first = await anext(statuses)
        return StreamingResponse(
            progress_stream(prepend(first, statuses)), media_type="application/x-ndjson"
        )
    last: Chunk = {}
    async for status in statuses:
        last = status
    state.catalog_changed()
    return JSONReply(last)


async def _run_with_progress(
    work: Callable[[Callable[[str], None]], None],
) -> AsyncIterator[Chunk]:
    """Run blocking ``work`` in a thread, yielding each status it reports as it comes."""
    loop = asyncio.get_running_loop()
    statuses: asyncio.Queue[str | None] = asyncio.Queue()

    def progress(status: str) -> None:
        loop.call_soon_threadsafe(statuses.put_nowait, status)

    def run() -> None:
        try:
            work(progress)
        finally:
            loop.call_soon_threadsafe(statuses.put_nowait, None)

    task = asyncio.ensure_future(asyncio.to_thread(run))
    while True:
        status = await statuses.get()
        if status is None:
            break
        yield {"status": status}
    await task  # raises the work's error, which the stream reports


def _require_model(model: str) -> None:
    if not model:
        raise BadRequest("model is required")


__all__ = ["AppState", "router"]
