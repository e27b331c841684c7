"""Keep-alive, max loaded models, parallel slots and a bounded queue, as Ollama schedules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nexus.errors import Busy
from nexus.runner.spec import RunnerSpec
from nexus.scheduler.fairness import FairSlots, current_client

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the scheduler needs of a runner; the real one is ``RunnerProcess``."""

    spec: RunnerSpec
    pid: int | None

    @property
    def alive(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


RunnerFactory = Callable[[RunnerSpec], Runner]


@dataclass
class LoadedModel:
    """A loaded runner with its bookkeeping; ``info`` is whatever the caller attached at load."""

    runner: Runner
    spec: RunnerSpec
    keep_alive: float
    slots: FairSlots
    info: dict[str, Any] = field(default_factory=dict)
    refcount: int = 0
    expires_at: float = math.inf
    #: Set when the runner must go (eviction, reload, crash): no new request attaches.
    evicting: bool = False
    stopped: bool = False
    last_used: float = field(default_factory=time.monotonic)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None
    load_duration: float = 0.0
    #: Slots held by requests now (at most ``spec.num_parallel``).
    busy: int = 0
    #: Of those, slots held by generations (not embeddings).
    generating: int = 0

    def __post_init__(self) -> None:
        self.idle.set()


class Lease:
    """A request's hold on a runner slot; release it exactly once (``async with`` does)."""

    def __init__(
        self,
        scheduler: Scheduler,
        model: LoadedModel,
        load_duration: float,
        generating: bool = True,
    ) -> None:
        self.scheduler = scheduler
        self.model = model
        self.load_duration = load_duration
        self.generating = generating
        self._released = False
        if generating:
            model.generating += 1

    @property
    def runner(self) -> Runner:
        return self.model.runner

    def release(self) -> None:
        if not self._released:
            self._released = True
            if self.generating:
                self.model.generating -= 1
            self.scheduler._release(self.model)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Scheduler:
    """Loads runners one at a time, attaches requests to loaded ones, unloads idle ones."""

    def __init__(
        self,
        factory: RunnerFactory,
        *,
        default_keep_alive: float,
        max_loaded: int,
        max_queue: int,
    ) -> None:
        self.factory = factory
        self.default_keep_alive = default_keep_alive
        self.max_loaded = max(1, max_loaded)
        self.max_queue = max_queue
        self._loaded: dict[tuple[str, bool], LoadedModel] = {}
        self._load_lock = asyncio.Lock()
        self._waiting = 0
        #: waiting requests per client: one client may fill all of the queue but an eighth
        self._waiting_by: dict[str, int] = {}
        self.max_client_queue = max(1, max_queue - max_queue // 8)
        self._changed = asyncio.Event()
        #: Called with each model once it has loaded (metrics: load time and count).
        self.load_listeners: list[Callable[[LoadedModel], None]] = []

    @property
    def waiting(self) -> int:
        return self._waiting

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    async def acquire(
        self,
        spec: RunnerSpec,
        *,
        keep_alive: float | None = None,
        info: dict[str, Any] | None = None,
        generating: bool = True,
    ) -> Lease:
        """Return a lease on a slot of a runner for ``spec``, loading it if need be
        (``generating``: for a generation, not an embedding).

        A request that has to wait (for a load or for a free slot) counts against the queue;
        past ``max_queue`` waiting requests, or ``max_client_queue`` from its client, it fails at
        once with ``Busy``. Slots are handed out in turn to the clients waiting for them.
        """
        started = time.monotonic()
        client = current_client.get()
        model = self._attachable(spec)
        if model is not None and not model.slots.locked():
            self._attach(model, keep_alive, info)
            await model.slots.acquire(client)  # a free slot: returns without suspending
            model.busy += 1
            return Lease(self, model, time.monotonic() - started, generating)
        must_wait = model is not None or self._load_lock.locked()
        waiting = self._waiting_by.get(client, 0)
        if must_wait and (self._waiting >= self.max_queue or waiting >= self.max_client_queue):
            raise Busy()
        if must_wait:
            self._waiting += 1
            self._waiting_by[client] = waiting + 1
        try:
            if model is None:
                async with self._load_lock:
                    model = self._attachable(spec) or await self._load(spec, info)
            self._attach(model, keep_alive, info)
            try:
                await model.slots.acquire(client)
            except BaseException:
                model.refcount -= 1
                self._after_release(model)
                raise
            model.busy += 1
            return Lease(self, model, time.monotonic() - started, generating)
        finally:
            if must_wait:
                self._waiting -= 1
                left = self._waiting_by[client] - 1
                if left:
                    self._waiting_by[client] = left
                else:
                    del self._waiting_by[client]

    def _attachable(self, spec: RunnerSpec) -> LoadedModel | None:
        model = self._loaded.get(spec.key)
        if model is None or model.evicting or model.spec != spec or not model.runner.alive:
            return None
        return model

    def _attach(
        self, model: LoadedModel, keep_alive: float | None, info: dict[str, Any] | None
    ) -> None:
        model.refcount += 1
        model.idle.clear()
        if model.timer is not None:
            model.timer.cancel()
            model.timer = None
        if keep_alive is not None:
            model.keep_alive = keep_alive
        if info:
            model.info.update(info)
        model.expires_at = time.time() + model.keep_alive

    async def _load(self, spec: RunnerSpec, info: dict[str, Any] | None) -> LoadedModel:
        old = self._loaded.get(spec.key)
        if old is not None:
            await self._unload_when_idle(old)
        while len(self._loaded) >= self.max_loaded:
            victim = self._pick_victim()
            if victim is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            await self._unload_when_idle(victim)
        runner = self.factory(spec)
        started = time.monotonic()
        await runner.start()
        model = LoadedModel(
            runner=runner,
            spec=spec,
            keep_alive=self.default_keep_alive,
            slots=FairSlots(spec.num_parallel),
            info=dict(info or {}),
            load_duration=time.monotonic() - started,
        )
        self._loaded[spec.key] = model
        log.info(
            "loaded %s%s (pid %s) in %.2fs",
            spec.model_path,
            " for embeddings" if spec.embeddings_only else "",
            runner.pid,
            model.load_duration,
        )
        for listener in self.load_listeners:
            listener(model)
        return model

    def _pick_victim(self) -> LoadedModel | None:
        idle = [m for m in self._loaded.values() if m.refcount == 0]
        if idle:
            return min(idle, key=lambda m: m.last_used)
        busy = sorted(self._loaded.values(), key=lambda m: m.last_used)
        if busy:
            busy[0].evicting = True
        return None

    async def _unload_when_idle(self, model: LoadedModel) -> None:
        model.evicting = True
        await model.idle.wait()
        await self._stop(model)

    async def _stop(self, model: LoadedModel) -> None:
        if model.stopped:
            return
        model.stopped = True
        if self._loaded.get(model.spec.key) is model:
            del self._loaded[model.spec.key]
        if model.timer is not None:
            model.timer.cancel()
            model.timer = None
        await model.runner.stop()
        self._changed.set()
        log.info("unloaded %s", model.spec.model_path)

    def _release(self, model: LoadedModel) -> None:
        model.slots.release()
        model.busy -= 1
        model.refcount -= 1
        self._after_release(model)

    def _after_release(self, model: LoadedModel) -> None:
        model.last_used = time.monotonic()
        if model.refcount > 0:
            return
        model.idle.set()
        self._changed.set()
        if self._loaded.get(model.spec.key) is not model:
            return
        if model.evicting or model.keep_alive == 0 or not model.runner.alive:
            asyncio.get_running_loop().create_task(self._stop(model))
        elif math.isfinite(model.keep_alive):
            model.expires_at = time.time() + model.keep_alive
            loop = asyncio.get_running_loop()
            model.timer = loop.call_later(
                model.keep_alive, lambda: loop.create_task(self._expire(model))
            )
        else:
            model.expires_at = math.inf

    async def _expire(self, model: LoadedModel) -> None:
        if model.refcount == 0 and self._loaded.get(model.spec.key) is model:
            await self._stop(model)

    async def abandon(self, lease: Lease) -> None:
        """Stop ``lease``'s runner now, whatever it is doing (it is stuck on work that only
        stopping it ends): the requests on it fail, the next one loads a fresh runner."""
        lease.model.evicting = True
        await self._stop(lease.model)

    async def unload(self, model_path: str) -> None:
        """Unload now if idle, else as soon as its requests finish (``keep_alive: 0``); the
        weights' embeddings runner too."""
        for model in [m for m in self._loaded.values() if m.spec.model_path == model_path]:
            model.keep_alive = 0
            if model.refcount == 0:
                await self._stop(model)

    def generating(self, spec: RunnerSpec) -> bool:
        """Whether the runner for ``spec`` is loaded and generating now."""
        model = self._loaded.get(spec.key)
        return model is not None and model.spec == spec and model.generating > 0

    def has(self, spec: RunnerSpec) -> bool:
        """Whether a runner for exactly ``spec`` is loaded and usable."""
        return self._attachable(spec) is not None

    async def shutdown(self) -> None:
        for model in list(self._loaded.values()):
            with contextlib.suppress(Exception):
                await self._stop(model)
