"""``NEXUS_API_KEY``: a bearer key on every route but ``/`` and the registry's ``/v2``.

A pure ASGI middleware, so streamed answers pass through untouched. Keys are compared as
SHA-256 digests with ``hmac.compare_digest`` against every configured key (no early exit, no
length leak). ``/v2`` stays open for reads so other nodes can pull (writes need
``NEXUS_PUSH_TOKEN``, which travels in the same ``Authorization`` header).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.errors import NexusError
from nexus.server.errors import send_error

MISSING = "unauthorized: an API key is required (Authorization: Bearer <key>)"
INVALID = "unauthorized: invalid API key"


class Unauthorized(NexusError):
    """Raised (and answered) when a request carries no valid API key."""

    status = 401
    code = "invalid_api_key"


def _digest(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).digest()


def presented_keys(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """What the request offers: a ``Bearer`` credential and/or an ``x-api-key`` value."""
    found: list[bytes] = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credential = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credential.strip():
                found.append(credential.strip())
        elif name == b"x-api-key" and value.strip():
            found.append(value.strip())
    return found


def is_open(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Routes that need no key: the liveness root, CORS preflights and the registry."""
    if path == "/" and method in ("GET", "HEAD"):
        return True
    if method == "OPTIONS" and any(k == b"access-control-request-method" for k, _ in headers):
        return True
    return path == "/v2" or path.startswith("/v2/")


class ApiKeyAuth:
    """Answers 401, in the addressed API's error shape, to requests without a valid key."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("ApiKeyAuth needs at least one key")
        self.app = app
        self._digests = tuple(_digest(key) for key in keys)

    def accepts(self, candidates: list[bytes]) -> bool:
        matched = False
        for candidate in candidates:
            offered = _digest(candidate)
            for digest in self._digests:
                matched |= hmac.compare_digest(offered, digest)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        path: str = scope["path"]
        if is_open(scope["method"], path, headers):
            await self.app(scope, receive, send)
            return
        candidates = presented_keys(headers)
        if self.accepts(candidates):
            await self.app(scope, receive, send)
            return
        exc = Unauthorized(INVALID if candidates else MISSING)
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"www-authenticate", b"Bearer"),
        ]
        await send_error(send, path, exc, headers)
