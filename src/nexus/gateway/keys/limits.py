"""Per-key requests-per-minute and tokens-per-minute limits, shared by gateway replicas.

Counting happens in memory in fixed UTC minutes, O(1) per request. A background task writes
this replica's new counts to the ``gateway_rate`` table every ``sync_interval`` seconds (adding
them to the row of that key and minute) and reads back every key's totals for the current
minute. Each replica therefore sees the others' traffic within one sync interval: with several
replicas a key can go over its limit by what the others admitted since their last sync, and no
further.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nexus.gateway.errors import RateLimited
from nexus.gateway.keys.records import KeyRecord
from nexus.gateway.keys.store import KeyStore

log = logging.getLogger(__name__)


@dataclass
class _Window:
    """One key's counts in one minute: totals last read from the database, counts being
    written now, and counts made here since."""

    minute: int
    synced_requests: int = 0
    synced_tokens: int = 0
    sending_requests: int = 0
    sending_tokens: int = 0
    pending_requests: int = 0
    pending_tokens: int = 0

    @property
    def requests(self) -> int:
        return self.synced_requests + self.sending_requests + self.pending_requests

    @property
    def tokens(self) -> int:
        return self.synced_tokens + self.sending_tokens + self.pending_tokens


class Limiter:
    """Enforces each key's ``rpm`` and ``tpm``; a key with neither costs nothing.

    ``clock`` returns seconds since the epoch (``time.time`` unless a test passes another).
    """

    def __init__(
        self,
        store: KeyStore,
        sync_interval: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sync_interval = sync_interval
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def _window(self, key_id: str, minute: int) -> _Window:
        window = self._windows.get(key_id)
        if window is None or window.minute != minute:
            window = self._windows[key_id] = _Window(minute)
        return window

    def check(self, key: KeyRecord) -> None:
        """Count one request of ``key`` in the current minute, or raise
        :class:`~nexus.gateway.errors.RateLimited` (not counted) when the key is over its
        requests, or its tokens already used, in this minute."""
        if key.rpm is None and key.tpm is None:
            return
        now = self._clock()
        minute = int(now // 60)
        with self._lock:
            window = self._window(key.id, minute)
            if key.rpm is not None and window.requests >= key.rpm:
                raise RateLimited(
                    f"rate limit exceeded: {key.rpm} requests per minute for key {key.name}",
                    retry_after=(minute + 1) * 60 - now,
                )
            if key.tpm is not None and window.tokens >= key.tpm:
                raise RateLimited(
                    f"rate limit exceeded: {key.tpm} tokens per minute for key {key.name}",
                    retry_after=(minute + 1) * 60 - now,
                )
            window.pending_requests += 1

    def add_tokens(self, key: KeyRecord, tokens: int) -> None:
        """Count the tokens of a finished request against ``key``'s tokens per minute."""
        if key.tpm is None or tokens <= 0:
            return
        minute = int(self._clock() // 60)
        with self._lock:
            self._window(key.id, minute).pending_tokens += tokens

    def sync(self) -> None:
        """Write the counts made here since the last sync and read back all replicas' totals
        of the current minute (blocking: runs in a worker thread)."""
        minute = int(self._clock() // 60)
        with self._lock:
            sending = []
            for key_id, window in self._windows.items():
                if window.pending_requests or window.pending_tokens:
                    sending.append(
                        (key_id, window.minute, window.pending_requests, window.pending_tokens)
                    )
                    window.sending_requests += window.pending_requests
                    window.sending_tokens += window.pending_tokens
                    window.pending_requests = window.pending_tokens = 0
        try:
            totals = self.store.sync_rates(sending, minute)
        except BaseException:
            with self._lock:
                for key_id, at, requests, tokens in sending:
                    failed = self._windows.get(key_id)
                    if failed is not None and failed.minute == at:
                        failed.sending_requests -= requests
                        failed.sending_tokens -= tokens
                        failed.pending_requests += requests
                        failed.pending_tokens += tokens
            raise
        with self._lock:
            for key_id, at, requests, tokens in sending:
                sent = self._windows.get(key_id)
                if sent is not None and sent.minute == at:
                    sent.sending_requests -= requests
                    sent.sending_tokens -= tokens
            for key_id, (requests, tokens) in totals.items():
                window = self._window(key_id, minute)
                window.synced_requests = requests
                window.synced_tokens = tokens
            for key_id in [k for k, w in self._windows.items() if w.minute < minute]:
                del self._windows[key_id]

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-rate-sync")

    async def stop(self) -> None:
        """Stop syncing after writing the counts not yet written."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sync_logged()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            await self._sync_logged()

    async def _sync_logged(self) -> None:
        try:
            await asyncio.to_thread(self.sync)
        except Exception as exc:  # limits keep working from local counts
            log.warning("could not share rate-limit counts: %s", type(exc).__name__)
