"""The lean HTTP/1.1 client against a scripted server on a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from nexus.net.http1 import Peer, PeerError, PeerTimeout
from tests.gateway.harness import read_request

Script = Callable[[bytes], bytes | None]


class Scripted:
    """A loopback server that answers each request with ``script(request_bytes)``; ``None``
    closes the connection without answering."""

    def __init__(self, script: Script, *, close_after: bool = False) -> None:
        self.script = script
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await read_request(reader)
                self.requests.append(request)
                answer = self.script(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def serve(scripted: Scripted) -> AsyncIterator[str]:
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_reuses_its_connection_and_sends_headers() -> None:
    scripted = Scripted(lambda req: ok(b'{"a":1}', b"X-Thing: yes\r\n"))
    async for url in serve(scripted):
        peer = Peer(url + "/prefix")
        for _ in range(3):
            reply = await peer.request(
                "POST", "/v1/x", body=b"{}", headers=[(b"content-type", b"application/json")]
            )
            assert reply.status == 200 and reply.header(b"x-thing") == b"yes"
            assert await reply.read() == b'{"a":1}'
        await peer.aclose()
    assert scripted.connections == 1
    assert scripted.requests[0].startswith(b"POST /prefix/v1/x HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"content-type: application/json" in scripted.requests[0]


async def test_chunked_stream_arrives_in_pieces() -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    async for url in serve(Scripted(lambda req: body)):
        reply = await Peer(url).request("GET", "/s")
        pieces = [piece async for piece in reply.iter_body()]
        assert b"".join(pieces) == b"abcde"


async def test_a_body_delimited_by_close_is_read_to_the_end() -> None:
    scripted = Scripted(lambda req: b"HTTP/1.1 200 OK\r\n\r\nuntil close", close_after=True)
    async for url in serve(scripted):
        reply = await Peer(url).request("GET", "/")
        assert await reply.read() == b"until close"


async def test_a_kept_alive_connection_closed_by_the_peer_is_replaced() -> None:
    scripted = Scripted(lambda req: ok(b"x", b"Connection: keep-alive\r\n"), close_after=True)
    async for url in serve(scripted):
        peer = Peer(url)
        for _ in range(3):
            reply = await peer.request("GET", "/")
            assert await reply.read() == b"x"
    assert scripted.connections == 3


async def test_every_expired_idle_connection_is_closed_on_the_next_request() -> None:
    scripted = Scripted(lambda req: ok(b"x"))
    async for url in serve(scripted):
        peer = Peer(url)
        replies = await asyncio.gather(*(peer.request("GET", "/") for _ in range(5)))
        for reply in replies:
            assert await reply.read() == b"x"
        pooled = list(peer._idle)
        assert len(pooled) == 5
        for conn in pooled[:4]:
            conn.idle_since -= 60  # long idle; the last one, on top, is still fresh
        reply = await peer.request("GET", "/")
        assert await reply.read() == b"x"
        assert peer._idle == [pooled[4]]
        assert all(conn.writer.is_closing() for conn in pooled[:4])
        await peer.aclose()
    assert scripted.connections == 5


async def test_unreachable_closed_early_and_too_slow() -> None:
    with pytest.raises(PeerError, match="unreachable"):
        await Peer("http://127.0.0.1:9").request("GET", "/")
    async for url in serve(Scripted(lambda req: None)):
        with pytest.raises(PeerError, match="closed"):
            await Peer(url).request("GET", "/")
    never = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await never.wait()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(PeerTimeout):
        await Peer(f"http://127.0.0.1:{port}").request("GET", "/", timeout=0.2)
    never.set()
    server.close()


async def test_a_reply_larger_than_the_limit_is_refused() -> None:
    async for url in serve(Scripted(lambda req: ok(b"x" * 1000))):
        reply = await Peer(url).request("GET", "/")
        with pytest.raises(PeerError, match="larger"):
            await reply.read(limit=100)


async def test_a_spare_connection_is_ready_when_the_peer_closes_after_each_reply() -> None:
    """Like the engine after a stream: every reply ends its connection (with no word of it in
    the reply). Once that was seen, with ``spare`` the next request finds a connection opened
    ahead in the background; without it, none."""
    for spare in (False, True):
        scripted = Scripted(lambda req: ok(b"x"), close_after=True)
        async for url in serve(scripted):
            peer = Peer(url, spare=spare)
            for i in range(3):
                reply = await peer.request("GET", "/")
                assert await reply.read() == b"x"
                ready = spare and i > 0  # the first close is seen by the second request
                for _ in range(200):  # the background connect, and the close, on loopback
                    live = [c for c in peer._idle if not c.reader.at_eof()]
                    if bool(live) == ready:
                        break
                    await asyncio.sleep(0.01)
                assert bool(live) == ready
            await peer.aclose()
            assert not peer._idle
        assert len(scripted.requests) == 3
        assert scripted.connections == (4 if spare else 3)
