"""OpenAI-compatible API under ``/v1``: chat, completions, embeddings, models."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus.api.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from nexus.compat import openai as oa
from nexus.errors import BadRequest, ModelNotFound, NexusError
from nexus.inference.embedding import EmbedTally
from nexus.inference.schemas import check_schema
from nexus.jsonio import dumpb
from nexus.runner.client import Vector
from nexus.server.body import parse_body
from nexus.server.errors import error_body
from nexus.server.state import state_of
from nexus.server.streaming import (
    ClosingStreamingResponse,
    JSONReply,
    array_reply,
    encoded,
    until_disconnect,
)
from nexus.store.names import ModelName
from nexus.streams import aclose

router = APIRouter(prefix="/v1")

Chunk = dict[str, Any]


async def sse(first: Chunk, rest: AsyncIterator[Chunk], path: str) -> AsyncIterator[bytes]:
    """``data: {json}`` events ending with ``data: [DONE]``; a failure after the first event is
    sent as an error event, which the OpenAI SDK raises."""
    try:
        yield b"data: " + dumpb(first) + b"\n\n"
        async for chunk in rest:
            yield b"data: " + dumpb(chunk) + b"\n\n"
    except NexusError as exc:
        yield b"data: " + dumpb(error_body(path, exc.status, exc.message, exc)) + b"\n\n"
        return
    finally:
        await aclose(rest)
    yield b"data: [DONE]\n\n"


async def stream_reply(request: Request, events: AsyncIterator[Chunk]) -> Response:
    """Start the stream only once the first event exists, so early errors keep their status."""
    try:
        first = await until_disconnect(request, anext(events))
    except BaseException:
        await aclose(events)
        raise
    return ClosingStreamingResponse(
        sse(first, events, request.url.path), media_type="text/event-stream"
    )


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, ChatCompletionRequest)
    wanted = (req.response_format or {}).get("json_schema")
    schema = wanted.get("schema") if isinstance(wanted, dict) else None
    if schema is not None:
        await check_schema(schema, "response_format.json_schema.schema")
    native = oa.chat_to_native(req)
    chunks = state.inference.chat(native, tool_choice=oa.tool_choice(req.tool_choice))
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        stream = oa.ChatCompletionStream(req.model, include_usage, bool(req.logprobs))
        return await stream_reply(request, stream.convert(chunks))
    result = await until_disconnect(
        request, oa.chat_completion(req.model, chunks, bool(req.logprobs))
    )
    return JSONReply(result)


@router.post("/completions")
async def completions(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, CompletionRequest)
    prompts = oa.completion_prompts(req)
    if req.stream:
        return await stream_reply(request, _completion_events(state, req, prompts))

    async def run() -> Chunk:
        choices, finals = [], []
        for index, prompt in enumerate(prompts):
            text: list[str] = []
            lps: list[dict[str, Any]] = []
            final: Chunk = {}
            async for chunk in state.inference.generate(oa.completion_to_native(req, prompt)):
                text.append(chunk.get("response", ""))
                lps.extend(chunk.get("logprobs") or [])
                if chunk.get("done"):
                    final = chunk
            body = (prompt if req.echo else "") + "".join(text)
            choices.append(
                {
                    "text": body,
                    "index": index,
                    "logprobs": oa.legacy_logprobs(lps, len(prompt) if req.echo else 0)
                    if req.logprobs is not None
                    else None,
                    "finish_reason": oa.finish_reason(final, False),
                }
            )
            finals.append(final)
        return oa.completion_object(req.model, choices, finals)

    return JSONReply(await until_disconnect(request, run()))


async def _completion_events(
    state: Any, req: CompletionRequest, prompts: list[str]
) -> AsyncIterator[Chunk]:
    template = oa.completion_object(req.model, [], [])
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    finals = []
    for index, prompt in enumerate(prompts):
        if req.echo and prompt:
            yield {**template, "choices": [_text_choice(index, prompt, None)]}
        async for chunk in state.inference.generate(oa.completion_to_native(req, prompt)):
            lps = chunk.get("logprobs")
            logprobs = oa.legacy_logprobs(lps, 0) if lps and req.logprobs is not None else None
            finish = oa.finish_reason(chunk, False) if chunk.get("done") else None
            if chunk.get("response") or finish or logprobs:
                choice = _text_choice(index, chunk.get("response", ""), finish)
                choice["logprobs"] = logprobs
                yield {**template, "choices": [choice]}
            if chunk.get("done"):
                finals.append(chunk)
    if include_usage:
        yield {**oa.completion_object(req.model, [], finals), "id": template["id"]}


def _text_choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    state = state_of(request)
    req = await parse_body(request, EmbeddingRequest)
    raw = req.input
    inputs: list[str | list[int]]
    if isinstance(raw, str):
        inputs = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        inputs = [[int(x) for x in raw if isinstance(x, int)]]
    else:
        inputs = list(raw)  # type: ignore[arg-type]
    if not inputs or any(not item for item in inputs):
        raise BadRequest("input must not be empty", param="input")
    tally = EmbedTally(time.monotonic())
    windows = state.inference.embed_inputs(
        req.model,
        inputs,
        truncate=False,
        dimensions=req.dimensions,
        options=req.options,
        keep_alive=req.keep_alive,
        tally=tally,
    )
    index = itertools.count()

    def item(vector: Vector) -> bytes:
        embedding = _encode(vector, req.encoding_format)
        return dumpb({"object": "embedding", "embedding": embedding, "index": next(index)})

    def tail() -> bytes:
        usage = {"prompt_tokens": tally.count, "total_tokens": tally.count}
        return b'],"model":' + dumpb(req.model) + b',"usage":' + dumpb(usage) + b"}"

    head = b'{"object":"list","data":['
    return await array_reply(request, head, encoded(windows, item), tail)


def _encode(vector: Vector, encoding: str) -> Vector | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector


def _model_object(name: ModelName, modified: float) -> Chunk:
    return {
        "id": name.display(),
        "object": "model",
        "created": int(modified),
        "owned_by": name.namespace,
    }


@router.get("/models")
async def list_models(request: Request) -> Response:
    state = state_of(request)
    stored = await asyncio.to_thread(state.store.manifests.list)
    data = [_model_object(item.name, item.modified_at.timestamp()) for item in stored]
    return JSONReply({"object": "list", "data": data})


@router.get("/models/{model:path}")
async def retrieve_model(request: Request, model: str) -> Response:
    state = state_of(request)
    try:
        name = ModelName.parse(model)
    except NexusError:
        raise ModelNotFound(f"The model `{model}` does not exist") from None
    resolved = await asyncio.to_thread(state.store.manifests.resolve, name)
    if resolved is None:
        raise ModelNotFound(f"The model `{model}` does not exist")
    item = await asyncio.to_thread(state.store.manifests.read, resolved, model)
    return JSONReply(_model_object(item.name, item.modified_at.timestamp() or time.time()))
