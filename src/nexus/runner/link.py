"""HTTP/1.1 to the engine inside a runner, over its Unix socket or loopback port.

This is the hot path: every streamed token crosses it. A general client (httpx) costs about a
millisecond per request here and several layers of Python per streamed chunk; this link keeps a
few idle connections, writes a request in one go and lets ``httptools`` (C, already used by
uvicorn) parse the reply, chunked bodies included. It speaks to one known peer only: no
redirects, proxies, TLS or cookies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import httptools

READ_SIZE = 65536
IDLE_EXPIRY = 2.0  # below the engine's keep-alive timeout (5 s): never reuse one it is closing
CONNECT_TIMEOUT = 10.0
#: Connections open to one engine at most, idle and busy together; more requests wait for one.
MAX_CONNECTIONS = 32


class LinkError(ConnectionError):
    """The engine could not be reached, or the connection broke mid-reply."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class Reply:
    """One response: status first, then the body as it arrives. ``close`` must be called (the
    link does it for whoever reads the body to the end); the connection goes back to the pool
    only if the whole reply was read."""

    def __init__(self, link: EngineLink, conn: _Connection) -> None:
        self._link = link
        self._conn = conn
        self._parser = httptools.HttpResponseParser(self)
        self._pieces: list[bytes] = []
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._closed = False
        self.status = 0

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()  # reset once the message is complete

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    async def _receive(self) -> None:
        try:
            data = await self._conn.reader.read(READ_SIZE)
        except OSError as exc:
            raise LinkError(f"engine connection lost: {exc}") from exc
        if not data:
            raise LinkError("engine closed the connection")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise LinkError(f"engine sent a malformed reply: {exc}") from exc

    async def read_head(self) -> None:
        while not self._headers_done:
            await self._receive()
        self.status = self._parser.get_status_code()

    async def iter_body(self) -> AsyncGenerator[bytes, None]:
        """The body in the pieces it arrives in (chunked encoding already removed)."""
        try:
            while True:
                if self._pieces:
                    data = b"".join(self._pieces)
                    self._pieces.clear()
                    yield data
                if self._complete:
                    return
                await self._receive()
        finally:
            self.close()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_body()])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._complete and self._keep_alive:
            self._link.release(self._conn)
        else:
            self._conn.close()
        self._link.slots.release()


class EngineLink:
    """Requests to one engine address: ``unix:///path/to.sock`` or ``http://host:port``."""

    def __init__(self, address: str, max_connections: int = MAX_CONNECTIONS) -> None:
        self.address = address
        #: One per open connection in use; idle pooled connections hold none.
        self.slots = asyncio.Semaphore(max_connections)
        self.max_connections = max_connections
        if address.startswith("unix://"):
            self._unix: str | None = address.removeprefix("unix://")
            self._host, self._port = "engine", 0
        else:
            parts = urlsplit(address)
            self._unix = None
            self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if self._unix is not None:
                    reader, writer = await asyncio.open_unix_connection(self._unix)
                else:
                    reader, writer = await asyncio.open_connection(self._host, self._port)
        except (OSError, TimeoutError) as exc:
            raise LinkError(f"engine unreachable at {self.address}: {exc}") from exc
        return _Connection(reader, writer)

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_EXPIRY and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        """Send a request (``body`` as JSON) and wait for the reply's status and headers.

        A kept-alive connection the engine closed just before it was reused is replaced once:
        the engine had received nothing, so sending again is safe. At most ``max_connections``
        replies are open at once; a request beyond them waits for one to close."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        await self.slots.acquire()
        try:
            conn = self._pooled()
            while True:
                fresh = conn is None
                if conn is None:
                    conn = await self._connect()
                reply = Reply(self, conn)
                try:
                    conn.writer.write(head + payload)
                    await conn.writer.drain()
                    await reply.read_head()
                    return reply
                except OSError as exc:  # LinkError included
                    conn.close()
                    if not fresh:
                        conn = None
                        continue
                    if isinstance(exc, LinkError):
                        raise
                    raise LinkError(f"engine connection lost: {exc}") from exc
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            self.slots.release()
            raise

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
