"""HTTP/1.1 to the engine inside a runner, over its Unix socket or loopback port.

This is the hot path: every streamed token crosses it. A general client (httpx) costs about a
millisecond per request here and several layers of Python per streamed chunk; the link is the
lean client of ``nexus.net.http1`` (a few kept-alive connections, replies parsed by
``httptools``) with JSON bodies and a bound on the connections one engine gets, so no request
(an embedding of thousands of inputs, say) can take every descriptor.
"""

from __future__ import annotations

from typing import Any

from nexus.jsonio import dumpb
from nexus.net.http1 import Peer, PeerError, Reply

#: Connections open to one engine at most, idle and busy together; more requests wait for one.
MAX_CONNECTIONS = 32
_JSON = ((b"content-type", b"application/json"),)

#: The engine could not be reached, or the connection broke mid-reply.
LinkError = PeerError

__all__ = ["MAX_CONNECTIONS", "EngineLink", "LinkError", "Reply"]


class EngineLink:
    """Requests to one engine address: ``unix:///path/to.sock`` or ``http://host:port``."""

    def __init__(self, address: str, max_connections: int = MAX_CONNECTIONS) -> None:
        self.address = address
        self.max_connections = max_connections
        # the engine closes a connection after each streamed reply: keep one opened ahead
        self._peer = Peer(
            address, max_idle=max_connections, max_connections=max_connections, spare=True
        )

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        """Send a request (``body`` as JSON) and wait for the reply's status and headers.

        A kept-alive connection the engine closed just before it was reused is replaced once:
        the engine had received nothing, so sending again is safe."""
        payload = None if body is None else dumpb(body)
        return await self._peer.request(method, path, body=payload, headers=_JSON)

    async def aclose(self) -> None:
        await self._peer.aclose()
