"""Plain ASGI plumbing for the gateway: reading a request, writing a reply.

The gateway sits on every request's path, so it speaks ASGI directly (no framework layers, no
middleware stack): a request costs a dictionary lookup and a few awaits beyond the HTTP parsing
uvicorn already does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nexus.gateway.errors import BadRequest, ClientGone, PayloadTooLarge, RequestTimeout
from nexus.jsonio import without_lone_surrogates
from nexus.jsonshape import ShapeError, check_shape

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON = b"application/json"


class RequestHeaders:
    """The few request headers the gateway reads, found in one pass."""

    __slots__ = ("backend", "content_length", "content_type", "forward", "token")

    #: headers passed on to a backend; everything else (the client's key above all) stays here
    FORWARD = frozenset(
        {
            b"content-type",
            b"accept",
            b"user-agent",
            b"anthropic-version",
            b"anthropic-beta",
            b"openai-beta",
            b"x-request-id",
        }
    )

    def __init__(self, raw: RawHeaders) -> None:
        self.token: str | None = None
        self.backend: str | None = None
        self.content_type = b""
        self.content_length: int | None = None
        self.forward: RawHeaders = []
        api_key: str | None = None
        for name, value in raw:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                self.token = credentials.strip() if scheme.lower() == "bearer" else ""
            elif name == b"x-api-key":
                api_key = value.decode("latin-1").strip()
            elif name == b"x-nexus-backend":
                self.backend = value.decode("latin-1").strip() or None
            elif name == b"content-length":
                self.content_length = int(value) if value.isdigit() else None
            elif name in self.FORWARD:
                if name == b"content-type":
                    self.content_type = value
                self.forward.append((name, value))
        if self.token is None and api_key is not None:
            self.token = api_key


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole request body; 413 past ``limit`` bytes, 408 when it takes over ``timeout``."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body larger than {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout:g} s") from None


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        check_shape(body)  # before parsing: what parsing would build is bounded
    except ShapeError as exc:
        raise BadRequest(str(exc)) from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return without_lone_surrogates(body, data)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: RawHeaders | None = None,
) -> None:
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        head += headers
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: RawHeaders | None = None) -> None:
    await send_body(send, status, json.dumps(data).encode(), JSON, headers)
