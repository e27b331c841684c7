"""Limits on what one client may make the server hold: request size, request and reply time.

``BodyLimits`` is a pure ASGI middleware (streaming responses pass through untouched) that
wraps ``receive``: a body larger than ``NEXUS_MAX_BODY_SIZE`` is refused with 413 (at once when
``Content-Length`` says so), and a body that stalls for ``NEXUS_READ_TIMEOUT`` is answered 408.
It wraps ``send`` too: a reply its client reads none of for ``NEXUS_WRITE_TIMEOUT`` (the socket's
buffers full) has its connection closed, so a client that stops reading a long reply (a
streamed embedding of many inputs) does not hold the runner slot behind it for ever.
Blob uploads (``/api/blobs/``, ``/v2/``) carry model weights and have no size limit, only the
stall timeout. A response sent before its request body was read to the end closes the
connection, so unread bytes are never parsed as the next request.

The deadline on the request head is ``nexus.net.guarded``'s protocol, shared with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.errors import NexusError
from nexus.net.guarded import bounded_send
from nexus.server.errors import send_error

log = logging.getLogger(__name__)

#: Paths whose bodies are blobs: no size limit, only the read timeout.
UNLIMITED_PREFIXES = ("/api/blobs/", "/v2/")


class BodyTooLarge(NexusError):
    """Raised when a request body is larger than the configured limit."""

    status = 413


class RequestTimeout(NexusError):
    """Raised when a client stops sending its request body."""

    status = 408


class _NotReading(Exception):
    """Raised by ``send`` when the client has read none of the reply for too long."""


def too_large_message(limit: int) -> str:
    return (
        f"request body larger than {limit} bytes (the limit is set by NEXUS_MAX_BODY_SIZE; "
        "send large files as blobs)"
    )


class BodyLimits:
    """Size and stall limits on request bodies, and the stall limit on replies (see the
    module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_size: int,
        read_timeout: float,
        write_timeout: float = math.inf,
    ) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = 0 if path.startswith(UNLIMITED_PREFIXES) else self.max_body_size
        declared = _content_length(scope)
        if limit and declared is not None and declared > limit:
            await _send_error(send, path, BodyTooLarge(too_large_message(limit)))
            return
        timeout = self.read_timeout
        received = 0
        body_done = declared == 0 or scope.get("method") in ("GET", "HEAD", "OPTIONS")

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                if math.isfinite(timeout):
                    async with asyncio.timeout(timeout):
                        message = await receive()
                else:
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body stalled for more than {timeout:g} s "
                    "(the limit is set by NEXUS_READ_TIMEOUT)"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if limit and received > limit:
                    raise BodyTooLarge(too_large_message(limit))
                if not message.get("more_body", False):
                    body_done = True
            else:
                body_done = True
            return message

        if math.isfinite(self.write_timeout):
            send = bounded_send(send, self.write_timeout, _NotReading)

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, guarded_receive, closing_send)
        except _NotReading:
            log.warning(
                "closed %s: its client read none of the reply for %g s (NEXUS_WRITE_TIMEOUT)",
                path,
                self.write_timeout,
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _send_error(send: Send, path: str, exc: NexusError) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send_error(send, path, exc, headers)


__all__ = ["BodyLimits", "BodyTooLarge", "RequestTimeout"]
