"""Checking API keys on the request path against an in-memory snapshot of the key table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from nexus.gateway.errors import Unauthorized
from nexus.gateway.keys import tokens
from nexus.gateway.keys.records import KeyRecord, StoredKey
from nexus.gateway.keys.store import KeyStore

MISSING = "missing API key (send Authorization: Bearer <key>)"
INVALID = "invalid API key"
REVOKED = "API key revoked"
EXPIRED = "API key expired"
MIN_UNKNOWN_REFRESH_GAP = 0.25  # seconds between refreshes caused by unknown key ids

log = logging.getLogger(__name__)


def token_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>`` (any case of ``Bearer``),
    else ``x-api-key: <key>`` as the Anthropic SDK sends it, else whatever ``Authorization``
    holds (refused later as an invalid key)."""
    auth = (authorization or "").strip()
    if auth.lower().startswith("bearer "):
        return auth
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return auth or None


def _strip_scheme(token: str) -> str:
    scheme, _, rest = token.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return token.strip()


class Authenticator:
    """Verifies keys against a snapshot of all keys, reloaded in a worker thread every
    ``refresh_interval`` seconds, so revocation and expiry take effect within that interval.

    A well-formed key whose id is not in the snapshot (created since) triggers one immediate
    reload; at most one reload runs at a time and such reloads start at most every 0.25 s, so a
    flood of made-up keys costs the database almost nothing.
    """

    def __init__(
        self,
        store: KeyStore,
        refresh_interval: float,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self._now = clock or (lambda: datetime.now(UTC))
        self._keys: dict[str, StoredKey] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._last_unknown_refresh = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0  # completed reloads, for metrics and tests

    async def start(self) -> None:
        """Load the keys (failing if the database cannot be read) and keep them fresh."""
        await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-key-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception as exc:  # keep serving from the last snapshot
                log.warning("could not reload API keys: %s", type(exc).__name__)

    async def refresh(self) -> None:
        """Reload the snapshot, or wait for the reload already running."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._load())
        await asyncio.shield(self._refreshing)

    async def _load(self) -> None:
        stored = await asyncio.to_thread(self.store.load_keys)
        self._keys = {key.record.id: key for key in stored}
        self.refreshes += 1

    async def _refresh_for_unknown(self) -> None:
        try:
            if self._refreshing is not None and not self._refreshing.done():
                await asyncio.shield(self._refreshing)
                return
            started = time.monotonic()
            if started - self._last_unknown_refresh < MIN_UNKNOWN_REFRESH_GAP:
                return
            self._last_unknown_refresh = started
            await self.refresh()
        except Exception as exc:  # answer from the snapshot we have
            log.warning("could not reload API keys: %s", type(exc).__name__)

    async def authenticate(self, token: str | None) -> KeyRecord:
        """The key ``token`` presents (``<key>`` or ``Bearer <key>``); raises
        :class:`~nexus.gateway.errors.Unauthorized` when there is none or it may not be used."""
        if token is None or not token.strip():
            raise Unauthorized(MISSING)
        parsed = tokens.parse(_strip_scheme(token))
        if parsed is None:
            raise Unauthorized(INVALID)
        key_id, secret = parsed
        stored = self._keys.get(key_id)
        if stored is None:
            await self._refresh_for_unknown()
            stored = self._keys.get(key_id)
            if stored is None:
                raise Unauthorized(INVALID)
        if not tokens.verify(secret, stored.salt, stored.hash):
            raise Unauthorized(INVALID)
        if stored.revoked_at is not None:
            raise Unauthorized(REVOKED)
        expires = stored.record.expires_at
        if expires is not None and expires <= self._now():
            raise Unauthorized(EXPIRED)
        return stored.record
