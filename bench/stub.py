"""An OpenAI backend that answers at once: a raw ASGI app, for measuring what a proxy adds.

``POST /v1/chat/completions`` returns a fixed ``chat.completion`` with ``usage``; with
``"stream": true`` it sends 20 SSE chunks (a usage chunk too when
``stream_options.include_usage`` is set), then ``data: [DONE]``. ``GET /v1/models`` lists
``stub-model``; ``GET /health`` answers 200. Run it with ``python -m bench.stub --port N``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

MODEL = "stub-model"
CONTENT = "Hello! How can I help you today?"
STREAM_CHUNKS = 20
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 12, "completion_tokens": STREAM_CHUNKS, "total_tokens": 32}

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@lru_cache(maxsize=16)
def completion_body(model: str = MODEL) -> bytes:
    """The one non-streamed answer (about 310 bytes)."""
    return _dumps(
        {
            "id": "chatcmpl-stub0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CONTENT},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


@lru_cache(maxsize=32)
def stream_events(model: str = MODEL, include_usage: bool = False) -> tuple[bytes, ...]:
    """The streamed answer, one SSE event per item, ``data: [DONE]`` last."""
    words = [f"w{i} " for i in range(STREAM_CHUNKS)]
    events = []
    for i, word in enumerate(words):
        delta: dict[str, str] = {"content": word}
        if i == 0:
            delta = {"role": "assistant", "content": word}
        last = i == len(words) - 1
        chunk: dict[str, Any] = {
            "id": "chatcmpl-stub0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None,
                 "finish_reason": "stop" if last else None}
            ],
        }  # fmt: skip
        if include_usage:
            chunk["usage"] = None
        events.append(b"data: " + _dumps(chunk) + b"\n\n")
    if include_usage:
        usage = {
            "id": "chatcmpl-stub0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": USAGE,
        }
        events.append(b"data: " + _dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return tuple(events)


def models_body() -> bytes:
    return _dumps(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "stub"}],
        }
    )


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app: no framework, so the backend's own cost stays as small as it can be."""
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if method == "POST" and path == "/v1/chat/completions":
        try:
            request = json.loads(await _read_body(receive) or b"{}")
        except ValueError:
            await _reply(send, 400, _dumps({"error": {"message": "bad JSON"}}), _JSON)
            return
        model = str(request.get("model") or MODEL)
        if not request.get("stream"):
            await _reply(send, 200, completion_body(model), _JSON)
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        for event in stream_events(model, include_usage):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif method == "GET" and path == "/v1/models":
        await _reply(send, 200, models_body(), _JSON)
    elif method == "GET" and path == "/health":
        await _reply(send, 200, b'{"status":"ok"}', _JSON)
    else:
        await _reply(send, 404, _dumps({"error": {"message": f"no route {path}"}}), _JSON)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.stub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
