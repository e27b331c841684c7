"""uvicorn's httptools protocol with a deadline on the request head: a connection that opens
and sends nothing, or sends its headers too slowly, is closed, and a head larger than
``MAX_HEAD_BYTES`` is answered 431. uvicorn itself only times out idle keep-alive connections,
so without this a client could hold sockets open forever (slow-loris).

A closed connection whose client does not take the rest of the reply is dropped too: a
transport's ``close`` waits until what was written has been sent, so a client that reads
nothing would keep the socket, and the reply's buffers, for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
from asyncio import TimerHandle, Transport
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nexus.net.budget import ConnectionBudget

MAX_HEAD_BYTES = 64 * 1024
#: SO_LINGER on, 0 s: closing the socket resets the connection instead of sending what is left
_RESET = struct.pack("ii", 1, 0)


class BoundedClose:
    """A transport whose ``close`` becomes a reset when the client has taken none of what is
    still to be sent for ``timeout`` seconds. Everything else is the transport's own."""

    def __init__(self, transport: Transport, loop: asyncio.AbstractEventLoop, timeout: float):
        self.transport = transport
        self.loop = loop
        self.timeout = timeout
        self.timer: TimerHandle | None = None
        self.pending = 0
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_write_buffer_size = transport.get_write_buffer_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    def close(self) -> None:
        self.transport.close()
        if self.timer is None and math.isfinite(self.timeout):
            self.pending = self.transport.get_write_buffer_size()
            if self.pending:
                self.timer = self.loop.call_later(self.timeout, self._check)

    def _check(self) -> None:
        """Wait on while the client takes some of what is left; reset once it takes none."""
        left = self.transport.get_write_buffer_size()
        if not left:
            self.timer = None
            return
        if left < self.pending:
            self.pending = left
            self.timer = self.loop.call_later(self.timeout, self._check)
            return
        self.timer = None
        _reset(self.transport)

    def lost(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def bounded_send(send: Send, timeout: float, error: Callable[[], Exception]) -> Send:
    """ASGI ``send`` raising ``error()`` when a piece of a reply waits ``timeout`` seconds for
    its client to read (the connection's buffers full); the protocol then resets the connection
    if the client still takes nothing."""

    async def bounded(message: MutableMapping[str, Any]) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        try:
            async with asyncio.timeout(timeout):
                await send(message)
        except TimeoutError:
            raise error() from None

    return bounded


def _reset(transport: Transport) -> None:
    """Close at once, with a reset: nothing left to send is waited for."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


def guarded_protocol(
    head_timeout: float,
    close_timeout: float = math.inf,
    budget: ConnectionBudget | None = None,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request head does not arrive
    within ``head_timeout`` seconds, and resetting closed ones whose client takes none of the
    rest of the reply for ``close_timeout`` seconds (``inf``: no deadline). With ``budget``, a
    connection past its limits is reset as soon as it is accepted."""

    class GuardedProtocol(HttpToolsProtocol):
        _head_timer: TimerHandle | None = None
        _head_bytes = 0
        _in_head = False
        _bounded: BoundedClose | None = None
        _client: str | None = None

        def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
            if budget is not None:
                peer = transport.get_extra_info("peername")
                client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
                if not budget.admit(client):
                    _reset(transport)  # uvicorn never sees it
                    return
                self._client = client
            if math.isfinite(close_timeout):
                self._bounded = BoundedClose(transport, self.loop, close_timeout)
                transport = self._bounded  # type: ignore[assignment]
            super().connection_made(transport)
            self._start_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # counted once parsed: the piece that completes a head may carry the body too
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._stop_head()
                    self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._in_head:
                self._start_head()

        def on_headers_complete(self) -> None:
            self._stop_head()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # between requests uvicorn's keep-alive timeout applies; the next head restarts ours
            self._stop_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if budget is not None:
                if self._client is None:
                    return  # refused in connection_made
                budget.release(self._client)
            self._stop_head()
            if self._bounded is not None:
                self._bounded.lost()
            super().connection_lost(exc)

        def _start_head(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            if self._head_timer is None and math.isfinite(head_timeout):
                self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def _stop_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def _refuse_head(self) -> None:
            message = b"request header fields too large"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(message), message)
            )
            self.transport.close()

    return GuardedProtocol
