"""Backends as the gateway sees them, and the discovery loop that keeps that view fresh.

Each backend is polled in the background: ``/api/tags`` and ``/api/ps`` for ``ollama``
backends, ``/v1/models`` for ``openai`` ones. A poll that fails marks it down; so does a
request that cannot reach it (the next successful poll brings it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nexus.gateway.config import BackendConfig
from nexus.gateway.models import canonical
from nexus.net.http1 import Peer, PeerError

log = logging.getLogger(__name__)

POLL_TIMEOUT = 5.0


@dataclass
class Backend:
    config: BackendConfig
    peer: Peer
    up: bool = False
    #: canonical model name -> the name this backend knows it by
    models: dict[str, str] = field(default_factory=dict)
    #: canonical names of the models loaded now (``ollama`` backends)
    loaded: set[str] = field(default_factory=set)
    #: the raw model entries of the last poll (``/api/tags`` rows or ``/v1/models`` data)
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: ``/api/ps`` rows of the last poll
    running: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    last_error: str = ""
    checked_at: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.kind

    def auth_headers(self) -> list[tuple[bytes, bytes]]:
        key = self.config.api_key
        return [(b"authorization", f"Bearer {key}".encode())] if key else []

    def mark_down(self, why: str) -> None:
        if self.up:
            log.warning("backend %s is down: %s", self.name, why)
        self.up = False
        self.last_error = why


class Discovery:
    """The backends and the task that polls them every ``interval`` seconds."""

    def __init__(self, configs: tuple[BackendConfig, ...], interval: float) -> None:
        self.backends = [Backend(c, Peer(c.url)) for c in configs]
        self.by_name = {b.name: b for b in self.backends}
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self, first_wait: float = 3.0) -> None:
        """Poll once (waiting up to ``first_wait`` seconds), then keep polling."""
        first = asyncio.ensure_future(self.poll_all())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), first_wait)
        self._task = asyncio.create_task(self._loop(first))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for backend in self.backends:
            await backend.peer.aclose()

    def poll_soon(self) -> None:
        """Ask for a poll now (after a request found a backend down)."""
        self._wake.set()

    async def _loop(self, first: asyncio.Future[None]) -> None:
        await first
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.poll_all()

    async def poll_all(self) -> None:
        await asyncio.gather(*(self.poll(b) for b in self.backends))

    async def poll(self, backend: Backend) -> None:
        try:
            if backend.kind == "openai":
                data = await _get_json(backend, "/v1/models")
                entries = [m for m in data.get("data") or [] if isinstance(m, dict)]
                backend.models = {canonical(str(m.get("id"))): str(m.get("id")) for m in entries}
                backend.entries = entries
                backend.loaded = set()
            else:
                tags, ps = await asyncio.gather(
                    _get_json(backend, "/api/tags"), _get_json(backend, "/api/ps")
                )
                entries = [m for m in tags.get("models") or [] if isinstance(m, dict)]
                running = [m for m in ps.get("models") or [] if isinstance(m, dict)]
                backend.models = {canonical(_row_name(m)): _row_name(m) for m in entries}
                backend.entries = entries
                backend.running = running
                backend.loaded = {canonical(_row_name(m)) for m in running}
        except (PeerError, ValueError, TimeoutError) as exc:
            backend.mark_down(str(exc) or type(exc).__name__)
        else:
            if not backend.up:
                log.info("backend %s is up with %d models", backend.name, len(backend.models))
            backend.up = True
            backend.last_error = ""
        backend.checked_at = time.time()


def _row_name(row: dict[str, Any]) -> str:
    return str(row.get("model") or row.get("name") or "")


async def _get_json(backend: Backend, path: str) -> dict[str, Any]:
    async with asyncio.timeout(POLL_TIMEOUT):
        reply = await backend.peer.request(
            "GET", path, headers=backend.auth_headers(), timeout=POLL_TIMEOUT
        )
        body = await reply.read(limit=32 * 1024 * 1024)
    if reply.status != 200:
        raise ValueError(f"GET {path} answered {reply.status}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"GET {path} answered something other than an object")
    return data
