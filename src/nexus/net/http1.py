"""A lean HTTP/1.1 client for one known peer: kept-alive connections, replies parsed by
``httptools`` (the C parser uvicorn uses), bodies streamed as they arrive.

General clients (httpx) cost about a millisecond per request; a proxy that must add less than
that uses this instead. One ``Peer`` per upstream address (``http://``, ``https://``); no
redirects, proxies or cookies.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from urllib.parse import urlsplit

import httptools

READ_SIZE = 65536
#: Below the keep-alive timeouts of common servers (uvicorn 5 s): never reuse one they close.
IDLE_EXPIRY = 2.0
CONNECT_TIMEOUT = 10.0

Headers = Sequence[tuple[bytes, bytes]]


class PeerError(ConnectionError):
    """The peer could not be reached, or the connection broke mid-reply."""


class PeerTimeout(PeerError):
    """The peer took longer than the read timeout to send the next part of its reply."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class Reply:
    """One response: status and headers first, then the body as it arrives. Read the body to
    its end or call ``close``; the connection is reused only after a complete reply."""

    def __init__(
        self, peer: Peer, conn: _Connection, timeout: float | None, head_only: bool = False
    ) -> None:
        self._peer = peer
        self._head_only = head_only
        self._conn = conn
        self._timeout = timeout
        self._parser = httptools.HttpResponseParser(self)
        self._pieces: list[bytes] = []
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive() and not self._head_only
        if self._head_only:  # a reply to HEAD has no body, whatever its length says
            self._complete = True

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def _delimited_by_close(self) -> bool:
        """A body with neither a length nor chunks ends with the connection."""
        return (
            self.header(b"content-length") is None
            and b"chunked" not in (self.header(b"transfer-encoding") or b"").lower()
        )

    @property
    def complete(self) -> bool:
        return self._complete

    async def _receive(self) -> None:
        try:
            if self._timeout is None:
                data = await self._conn.reader.read(READ_SIZE)
            else:
                async with asyncio.timeout(self._timeout):
                    data = await self._conn.reader.read(READ_SIZE)
        except TimeoutError as exc:
            raise PeerTimeout(
                f"no answer from {self._peer.address} in {self._timeout:g} s"
            ) from exc
        except OSError as exc:
            raise PeerError(f"connection to {self._peer.address} lost: {exc}") from exc
        if not data:
            if self._headers_done and self._delimited_by_close():
                self._complete = True
                self._keep_alive = False
                return
            raise PeerError(f"{self._peer.address} closed the connection")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise PeerError(f"{self._peer.address} tried to upgrade the connection") from None
        except httptools.HttpParserError as exc:
            raise PeerError(f"{self._peer.address} sent a malformed reply: {exc}") from exc

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

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; ``PeerError`` past ``limit`` bytes."""
        size = 0
        pieces = []
        async for piece in self.iter_body():
            size += len(piece)
            if limit is not None and size > limit:
                raise PeerError(f"reply from {self._peer.address} larger than {limit} bytes")
            pieces.append(piece)
        return b"".join(pieces)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._complete and self._keep_alive:
            self._peer.release(self._conn)
        else:
            self._conn.close()
        if self._peer.bound is not None:
            self._peer.bound.release()


class Peer:
    """Requests to one ``http://host:port``, ``https://host:port`` (a path prefix is kept) or
    ``unix:///path/to.sock``. With ``max_connections``, at most that many replies are open at
    once; a request beyond them waits for one to close."""

    def __init__(
        self,
        address: str,
        *,
        max_idle: int = 64,
        max_connections: int | None = None,
        spare: bool = False,
    ) -> None:
        """With ``spare``, once the peer has been seen closing kept-alive connections (the
        engine does after every stream), a connection is opened ahead, in the background,
        whenever a request takes the last idle one, so the next request finds one ready."""
        self.address = address
        self._spare = spare
        self._peer_closes = False
        self._refill: asyncio.Task[None] | None = None
        self.bound = asyncio.Semaphore(max_connections) if max_connections else None
        self._unix = address.removeprefix("unix://") if address.startswith("unix://") else None
        parts = urlsplit("http://localhost" if self._unix else address)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        default_port = (self._tls and self._port == 443) or (not self._tls and self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.host_header = (host if default_port else f"{host}:{self._port}").encode()
        self.prefix = parts.path.rstrip("/")
        self._ssl = ssl.create_default_context() if self._tls else None
        self._idle: list[_Connection] = []
        self._max_idle = max_idle

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if self._unix is not None:
                    reader, writer = await asyncio.open_unix_connection(self._unix, limit=READ_SIZE)
                else:
                    reader, writer = await asyncio.open_connection(
                        self._host, self._port, ssl=self._ssl, limit=READ_SIZE
                    )
        except (OSError, TimeoutError) as exc:
            raise PeerError(f"{self.address} unreachable: {exc or type(exc).__name__}") from exc
        return _Connection(reader, writer)

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        # the longest idle are first: all that expired are closed, not only those on top, so a
        # burst's connections (the peer closes them in time) do not stay open until reused
        expired = 0
        while expired < len(self._idle) and now - self._idle[expired].idle_since >= IDLE_EXPIRY:
            self._idle[expired].close()
            expired += 1
        del self._idle[:expired]
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_EXPIRY and not conn.reader.at_eof():
                return conn
            self._peer_closes = self._peer_closes or conn.reader.at_eof()
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        if len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _head(self, method: str, path: str, headers: Headers, length: int | None) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1".encode(), b"host: " + self.host_header]
        lines += [name + b": " + value for name, value in headers]
        if length is not None:
            lines.append(b"content-length: " + str(length).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        stream: AsyncIterator[bytes] | None = None,
        length: int | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Reply:
        """Send a request and wait for the reply's status and headers.

        ``body`` is sent whole; ``stream`` (with its ``length``) is sent as it is read, for
        uploads too large to hold. A kept-alive connection the peer closed just before it was
        reused is replaced once: the peer had received nothing, so sending again is safe.
        """
        if body is not None:
            length = len(body)
        elif stream is None and method in ("POST", "PUT", "PATCH"):
            length = 0
        head = self._head(method, path, headers, length)
        if self.bound is None:
            return await self._send(method, head, body, stream, timeout)
        await self.bound.acquire()
        try:
            return await self._send(method, head, body, stream, timeout)
        except BaseException:
            self.bound.release()
            raise

    def _keep_spare(self) -> None:
        if self._idle or (self._refill is not None and not self._refill.done()):
            return
        self._refill = asyncio.get_running_loop().create_task(self._open_spare())

    async def _open_spare(self) -> None:
        try:
            conn = await self._connect()
        except PeerError:
            return  # the request that needs it will say why
        self.release(conn)

    async def _send(
        self,
        method: str,
        head: bytes,
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
        timeout: float | None,
    ) -> Reply:
        conn = self._pooled()
        if self._spare and self._peer_closes:
            self._keep_spare()
        while True:
            fresh = conn is None
            if conn is None:
                conn = await self._connect()
            reply = Reply(self, conn, timeout, head_only=method == "HEAD")
            try:
                conn.writer.write(head + body if body else head)
                if stream is not None:
                    fresh = True  # a consumed stream cannot be sent again
                    async for piece in stream:
                        conn.writer.write(piece)
                        await conn.writer.drain()
                await conn.writer.drain()
                await reply.read_head()
                return reply
            except OSError as exc:  # PeerError included
                conn.close()
                if not fresh and not isinstance(exc, PeerTimeout):
                    conn = None
                    continue
                if isinstance(exc, PeerError):
                    raise
                raise PeerError(f"connection to {self.address} lost: {exc}") from exc
            except BaseException:
                conn.close()
                raise

    async def aclose(self) -> None:
        if self._refill is not None and not self._refill.done():
            self._refill.cancel()
            await asyncio.wait({self._refill})
        while self._idle:
            self._idle.pop().close()
