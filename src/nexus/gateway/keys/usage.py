"""Recording requests and tokens per key, model and UTC minute without touching the database
on the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from nexus.gateway.keys.store import KeyStore, UsageKey, minute_start

log = logging.getLogger(__name__)


class UsageRecorder:
    """Buffers usage in memory, summed per (key, model, minute), and writes it in one
    transaction from a worker thread every ``flush_interval`` seconds, or sooner once
    ``max_batch`` rows wait. When a write fails the rows are kept for the next try; at most
    ``max_pending`` rows are kept (ten batches unless given), the oldest going first.
    ``key_id`` must be a key that exists in the store.
    """

    def __init__(
        self,
        store: KeyStore,
        flush_interval: float = 1.0,
        max_batch: int = 1000,
        *,
        max_pending: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_pending = max_pending or 10 * max_batch
        self._now = clock or (lambda: datetime.now(UTC))
        self._rows: dict[UsageKey, list[int]] = {}
        self._last_used: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # rows given up because the database stayed unwritable

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._rows)

    def _trim(self) -> None:
        while len(self._rows) > self.max_pending:
            del self._rows[next(iter(self._rows))]
            self.dropped += 1

    def record(self, key_id: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one request; never blocks and never touches the database."""
        now = self._now()
        key = (key_id, model, minute_start(now))
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = [0, 0, 0]
                self._trim()
            row[0] += 1
            row[1] += max(0, prompt_tokens)
            row[2] += max(0, completion_tokens)
            last = self._last_used.get(key_id)
            if last is None or now > last:
                self._last_used[key_id] = now
            full = len(self._rows) >= self.max_batch
        if full and self._wake is not None:
            self._wake.set()

    def flush(self) -> int:
        """Write what is buffered (blocking; runs in a worker thread); returns the rows written.
        On failure the rows go back into the buffer and the error is raised."""
        with self._lock:
            rows, self._rows = self._rows, {}
            last_used, self._last_used = self._last_used, {}
        if not rows and not last_used:
            return 0
        try:
            self.store.add_usage({k: (v[0], v[1], v[2]) for k, v in rows.items()}, last_used)
        except BaseException:
            with self._lock:
                for key, counts in self._rows.items():
                    row = rows.setdefault(key, [0, 0, 0])
                    for i in range(3):
                        row[i] += counts[i]
                self._rows = rows
                self._trim()
                for key_id, when in self._last_used.items():
                    if key_id not in last_used or when > last_used[key_id]:
                        last_used[key_id] = when
                self._last_used = last_used
            raise
        return len(rows)

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="gateway-usage-flush")

    async def stop(self) -> None:
        """Stop the background task and write what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_logged()
        if self._rows:
            log.warning("usage of %d key/model/minute rows could not be written", len(self._rows))

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self._flush_logged()

    async def _flush_logged(self) -> None:
        try:
            await asyncio.to_thread(self.flush)
        except Exception as exc:
            log.warning(
                "could not write usage (%d rows kept for the next try): %s",
                len(self._rows),
                type(exc).__name__,
            )
