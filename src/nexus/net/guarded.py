"""uvicorn's httptools protocol with a deadline on the request head: a connection that opens
and sends nothing, or sends its headers too slowly, is closed, and a head larger than
``MAX_HEAD_BYTES`` is answered 431. uvicorn itself only times out idle keep-alive connections,
so without this a client could hold sockets open forever (slow-loris)."""

from __future__ import annotations

import math
from asyncio import TimerHandle, Transport

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024


def guarded_protocol(head_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request head does not arrive
    within ``head_timeout`` seconds (``inf``: no deadline)."""

    class GuardedProtocol(HttpToolsProtocol):
        _head_timer: TimerHandle | None = None
        _head_bytes = 0
        _in_head = False

        def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
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
            self._stop_head()
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
