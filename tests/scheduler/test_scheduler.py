"""Unit tests of the scheduler with a fake runner whose start can be held on an event.

Ordering is driven by events and by yielding to the loop (``asyncio.sleep(0)``), never by
wall-clock sleeps; the only timer is the keep-alive expiry, awaited through an event.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from nexus.errors import Busy, NexusError, RunnerFailed
from nexus.runner.spec import RunnerSpec
from nexus.scheduler import Lease, LoadedModel, Scheduler
from nexus.scheduler.fairness import current_client

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
WAIT = 10.0  # generous bound for an event that must happen; never reached when things work

_pids = itertools.count(1000)


class FakeRunner:
    """Enough of ``RunnerProcess`` for the scheduler: start, stop, alive, pid."""

    def __init__(
        self, spec: RunnerSpec, gate: asyncio.Event | None, error: Exception | None
    ) -> None:
        self.spec = spec
        self.pid: int | None = next(_pids)
        self.alive = False
        self.gate = gate
        self.error = error
        self.start_entered = asyncio.Event()
        self.stopped = asyncio.Event()
        self.start_calls = 0
        self.stop_calls = 0

    async def start(self) -> None:
        self.start_calls += 1
        self.start_entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.alive = True

    async def stop(self) -> None:
        self.stop_calls += 1
        self.alive = False
        self.stopped.set()


class FakeFactory:
    """Makes fake runners; ``hold_next()`` makes the next one's start wait on an event."""

    def __init__(self) -> None:
        self.runners: list[FakeRunner] = []
        self._gate: asyncio.Event | None = None
        self._error: Exception | None = None

    def hold_next(self) -> asyncio.Event:
        self._gate = asyncio.Event()
        return self._gate

    def fail_next(self, error: Exception) -> None:
        self._error = error

    def __call__(self, spec: RunnerSpec) -> FakeRunner:
        runner = FakeRunner(spec, self._gate, self._error)
        self._gate = None
        self._error = None
        self.runners.append(runner)
        return runner


def spec(path: str = "/models/a.gguf", *, num_ctx: int = 2048, parallel: int = 1) -> RunnerSpec:
    return RunnerSpec(model_path=path, num_ctx=num_ctx, num_parallel=parallel)


A = spec("/models/a.gguf")
B = spec("/models/b.gguf")
C = spec("/models/c.gguf")


async def settle(rounds: int = 50) -> None:
    """Let every ready callback and task run (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], rounds: int = 200) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def stopped(runner: FakeRunner) -> None:
    await asyncio.wait_for(runner.stopped.wait(), WAIT)


def model_for(scheduler: Scheduler, runner_spec: RunnerSpec) -> LoadedModel:
    matches = [m for m in scheduler.loaded() if m.spec.model_path == runner_spec.model_path]
    assert len(matches) == 1, scheduler.loaded()
    return matches[0]


SchedulerMaker = Callable[..., tuple[Scheduler, FakeFactory]]


@pytest.fixture
async def make() -> AsyncIterator[SchedulerMaker]:
    made: list[Scheduler] = []

    def _make(
        *, keep_alive: float = 300.0, max_loaded: int = 3, max_queue: int = 512
    ) -> tuple[Scheduler, FakeFactory]:
        factory = FakeFactory()
        scheduler = Scheduler(
            factory, default_keep_alive=keep_alive, max_loaded=max_loaded, max_queue=max_queue
        )
        made.append(scheduler)
        return scheduler, factory

    yield _make
    for scheduler in made:
        await scheduler.shutdown()
    await settle()


# ---- loading and reuse -----------------------------------------------------------------------


async def test_first_acquire_loads_and_returns_a_lease(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    lease = await scheduler.acquire(A)
    assert isinstance(lease, Lease)
    assert len(factory.runners) == 1
    runner = factory.runners[0]
    assert lease.runner is runner
    assert runner.start_calls == 1 and runner.alive
    model = model_for(scheduler, A)
    assert model.refcount == 1
    assert lease.load_duration >= 0
    lease.release()
    assert model.refcount == 0


async def test_second_acquire_of_same_spec_reuses_runner(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    async with await scheduler.acquire(A) as first:
        pass
    async with await scheduler.acquire(A) as second:
        assert second.runner is first.runner
    assert len(factory.runners) == 1
    assert factory.runners[0].start_calls == 1
    assert factory.runners[0].stop_calls == 0
    assert len(scheduler.loaded()) == 1


async def test_concurrent_acquires_during_a_load_share_one_runner(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    gate = factory.hold_next()
    first = asyncio.ensure_future(scheduler.acquire(spec(parallel=2)))
    await until(lambda: bool(factory.runners) and factory.runners[0].start_entered.is_set())
    second = asyncio.ensure_future(scheduler.acquire(spec(parallel=2)))
    await settle()
    assert scheduler.waiting == 1  # the loading request is served, not queued; the second waits
    gate.set()
    lease1, lease2 = await asyncio.wait_for(asyncio.gather(first, second), WAIT)
    assert lease1.runner is lease2.runner
    assert len(factory.runners) == 1
    assert scheduler.waiting == 0
    lease1.release()
    lease2.release()


async def test_release_is_idempotent(make: SchedulerMaker) -> None:
    scheduler, _ = make()
    lease = await scheduler.acquire(spec(parallel=2))
    other = await scheduler.acquire(spec(parallel=2))
    lease.release()
    lease.release()
    model = model_for(scheduler, A)
    assert model.refcount == 1
    other.release()
    assert model.refcount == 0


async def test_different_spec_for_same_path_reloads_after_release(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    old_lease = await scheduler.acquire(spec(num_ctx=2048))
    old = factory.runners[0]
    new_acquire = asyncio.ensure_future(scheduler.acquire(spec(num_ctx=4096)))
    await settle()
    # The old runner is in use: it must not be stopped, and nothing new may start yet.
    assert not new_acquire.done()
    assert old.stop_calls == 0 and old.alive
    assert len(factory.runners) == 1
    # A request for the old spec does not attach to a runner that is being replaced.
    assert model_for(scheduler, A).evicting
    old_lease.release()
    new_lease = await asyncio.wait_for(new_acquire, WAIT)
    await settle()
    assert old.stop_calls == 1, "the replaced runner must be stopped exactly once"
    assert len(factory.runners) == 2
    new = factory.runners[1]
    assert new_lease.runner is new and new.alive
    assert new.spec.num_ctx == 4096
    assert [m.runner for m in scheduler.loaded()] == [new]
    new_lease.release()


async def test_reload_of_idle_runner_stops_it_before_starting_new(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    (await scheduler.acquire(spec(num_ctx=2048))).release()
    old = factory.runners[0]
    gate = factory.hold_next()
    pending = asyncio.ensure_future(scheduler.acquire(spec(num_ctx=1024)))
    await until(lambda: len(factory.runners) == 2 and factory.runners[1].start_entered.is_set())
    assert old.stop_calls == 1 and not old.alive
    gate.set()
    lease = await asyncio.wait_for(pending, WAIT)
    assert lease.runner is factory.runners[1]
    lease.release()
    await settle()
    assert old.stop_calls == 1


async def test_load_failure_propagates_and_next_acquire_retries(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_queue=1)
    factory.fail_next(RunnerFailed("llama runner process has terminated: exit status 1"))
    with pytest.raises(RunnerFailed, match="terminated"):
        await scheduler.acquire(A)
    assert scheduler.loaded() == []
    assert scheduler.waiting == 0
    lease = await scheduler.acquire(A)
    assert lease.runner is factory.runners[1]
    assert factory.runners[1].alive
    lease.release()


# ---- max loaded ------------------------------------------------------------------------------


async def test_max_loaded_evicts_least_recently_used_idle(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_loaded=2)
    lease_a = await scheduler.acquire(A)
    lease_b = await scheduler.acquire(B)
    runner_a, runner_b = factory.runners
    lease_a.release()
    lease_b.release()
    # Use A again: B is now the least recently used.
    (await scheduler.acquire(A)).release()
    lease_c = await scheduler.acquire(C)
    assert runner_b.stop_calls == 1 and not runner_b.alive
    assert runner_a.stop_calls == 0 and runner_a.alive
    paths = sorted(m.spec.model_path for m in scheduler.loaded())
    assert paths == [A.model_path, C.model_path]
    lease_c.release()


async def test_max_loaded_prefers_idle_victim_over_busy_one(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_loaded=2)
    lease_a = await scheduler.acquire(A)
    lease_b = await scheduler.acquire(B)
    lease_b.release()
    # A is least recently used by start time but busy; B is idle, so B goes.
    lease_c = await scheduler.acquire(C)
    runner_a, runner_b, _ = factory.runners
    assert runner_b.stop_calls == 1
    assert runner_a.stop_calls == 0 and runner_a.alive
    lease_a.release()
    lease_c.release()


async def test_max_loaded_waits_for_busy_runner_to_be_released(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_loaded=1)
    lease_a = await scheduler.acquire(A)
    runner_a = factory.runners[0]
    pending_b = asyncio.ensure_future(scheduler.acquire(B))
    await settle()
    assert not pending_b.done()
    assert runner_a.stop_calls == 0 and runner_a.alive
    assert len(factory.runners) == 1
    assert scheduler.waiting == 0  # the request being loaded is served, not queued
    lease_a.release()
    lease_b = await asyncio.wait_for(pending_b, WAIT)
    await settle()
    assert runner_a.stop_calls == 1, "the evicted runner must be stopped exactly once"
    assert lease_b.runner is factory.runners[1]
    assert [m.spec.model_path for m in scheduler.loaded()] == [B.model_path]
    lease_b.release()


# ---- slots and queue -------------------------------------------------------------------------


async def test_third_acquire_waits_for_a_free_slot(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    two = spec(parallel=2)
    lease1 = await scheduler.acquire(two)
    lease2 = await scheduler.acquire(two)
    third = asyncio.ensure_future(scheduler.acquire(two))
    await settle()
    assert not third.done()
    assert scheduler.waiting == 1
    lease1.release()
    lease3 = await asyncio.wait_for(third, WAIT)
    assert lease3.runner is lease2.runner
    assert len(factory.runners) == 1
    assert scheduler.waiting == 0
    assert model_for(scheduler, two).refcount == 2
    lease2.release()
    lease3.release()
    assert model_for(scheduler, two).refcount == 0


async def test_queue_full_while_a_load_is_blocked(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_queue=1)
    gate = factory.hold_next()
    loading = asyncio.ensure_future(scheduler.acquire(A))
    await until(lambda: bool(factory.runners) and factory.runners[0].start_entered.is_set())
    assert scheduler.waiting == 0  # as in Ollama, the request being loaded is not queued
    queued = asyncio.ensure_future(scheduler.acquire(A))
    await until(lambda: scheduler.waiting == 1)
    with pytest.raises(Busy) as info:
        await scheduler.acquire(A)
    assert info.value.status == 503
    assert info.value.message == BUSY_MESSAGE
    assert str(info.value) == BUSY_MESSAGE
    # A different model waits for the same load: also refused.
    with pytest.raises(Busy):
        await scheduler.acquire(B)
    gate.set()
    lease = await asyncio.wait_for(loading, WAIT)
    lease.release()
    (await asyncio.wait_for(queued, WAIT)).release()
    assert scheduler.waiting == 0
    # With nothing waiting any more, requests are accepted again.
    (await scheduler.acquire(A)).release()


async def test_queue_full_while_waiting_for_a_slot(make: SchedulerMaker) -> None:
    scheduler, _ = make(max_queue=1)
    holder = await scheduler.acquire(A)
    waiter = asyncio.ensure_future(scheduler.acquire(A))
    await settle()
    assert scheduler.waiting == 1
    with pytest.raises(Busy) as info:
        await scheduler.acquire(A)
    assert info.value.status == 503
    assert info.value.message == BUSY_MESSAGE
    holder.release()
    lease = await asyncio.wait_for(waiter, WAIT)
    lease.release()
    assert model_for(scheduler, A).refcount == 0


async def test_max_queue_zero_still_serves_an_idle_server(make: SchedulerMaker) -> None:
    """OLLAMA_MAX_QUEUE=0 leaves no room to queue, but a lone request on an idle server
    (nothing loading, nothing waiting) is not queued behind anyone: it must load and run."""
    scheduler, factory = make(max_queue=0)
    lease = await scheduler.acquire(A)
    assert lease.runner is factory.runners[0]
    # The slot is taken now, so a second request would have to queue: refused.
    with pytest.raises(Busy):
        await scheduler.acquire(A)
    lease.release()
    (await scheduler.acquire(A)).release()


async def test_busy_error_is_a_nexus_error_with_status_503() -> None:
    err = Busy()
    assert isinstance(err, NexusError)
    assert err.status == 503
    assert err.message == BUSY_MESSAGE


async def test_cancelled_slot_waiter_frees_its_queue_place(make: SchedulerMaker) -> None:
    scheduler, _ = make(max_queue=1)
    holder = await scheduler.acquire(A)
    model = model_for(scheduler, A)
    waiter = asyncio.ensure_future(scheduler.acquire(A))
    await settle()
    assert scheduler.waiting == 1
    assert model.refcount == 2
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert scheduler.waiting == 0
    assert model.refcount == 1, "a cancelled waiter must not keep a reference"
    # Its queue place is free again: the next request waits instead of being refused.
    second = asyncio.ensure_future(scheduler.acquire(A))
    await settle()
    assert not second.done()
    assert scheduler.waiting == 1
    holder.release()
    lease = await asyncio.wait_for(second, WAIT)
    lease.release()
    assert model.refcount == 0
    assert model.idle.is_set()
    assert not model.slots.locked()


async def test_cancelled_waiter_does_not_keep_model_from_keep_alive_zero_unload(
    make: SchedulerMaker,
) -> None:
    scheduler, factory = make()
    holder = await scheduler.acquire(A, keep_alive=0)
    waiter = asyncio.ensure_future(scheduler.acquire(A))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    holder.release()
    await stopped(factory.runners[0])
    assert scheduler.loaded() == []


async def test_cancelled_load_frees_its_queue_place(make: SchedulerMaker) -> None:
    scheduler, factory = make(max_queue=1)
    factory.hold_next()
    loading = asyncio.ensure_future(scheduler.acquire(A))
    await until(lambda: bool(factory.runners) and factory.runners[0].start_entered.is_set())
    loading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loading
    assert scheduler.waiting == 0
    assert scheduler.loaded() == []
    lease = await asyncio.wait_for(scheduler.acquire(A), WAIT)
    assert lease.runner is factory.runners[1]
    assert model_for(scheduler, A).refcount == 1
    lease.release()


# ---- keep-alive, unload ----------------------------------------------------------------------


async def test_keep_alive_zero_unloads_when_last_lease_released(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    two = spec(parallel=2)
    lease1 = await scheduler.acquire(two, keep_alive=0)
    lease2 = await scheduler.acquire(two)
    runner = factory.runners[0]
    lease1.release()
    await settle()
    assert runner.stop_calls == 0, "still in use by another request"
    lease2.release()
    await stopped(runner)
    assert scheduler.loaded() == []
    await settle()
    assert runner.stop_calls == 1


async def test_keep_alive_from_request_updates_loaded_runner(make: SchedulerMaker) -> None:
    scheduler, _ = make(keep_alive=300.0)
    (await scheduler.acquire(A)).release()
    model = model_for(scheduler, A)
    assert model.keep_alive == 300.0
    (await scheduler.acquire(A, keep_alive=60.0)).release()
    assert model.keep_alive == 60.0
    # Absent keep_alive keeps the previous duration.
    (await scheduler.acquire(A)).release()
    assert model.keep_alive == 60.0
    (await scheduler.acquire(A, keep_alive=math.inf)).release()
    assert model.keep_alive == math.inf
    assert model.expires_at == math.inf
    assert model.timer is None


async def test_expiry_timer_runs_only_while_idle(make: SchedulerMaker) -> None:
    scheduler, _ = make(keep_alive=300.0)
    lease = await scheduler.acquire(A)
    model = model_for(scheduler, A)
    assert model.timer is None, "no expiry while a request holds the runner"
    lease.release()
    assert model.timer is not None
    lease = await scheduler.acquire(A)
    assert model.timer is None, "a new request stops the expiry timer"
    lease.release()
    assert model.timer is not None


async def test_keep_alive_expiry_stops_idle_runner(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    lease = await scheduler.acquire(A, keep_alive=0.01)
    runner = factory.runners[0]
    lease.release()
    await stopped(runner)
    assert scheduler.loaded() == []
    assert runner.stop_calls == 1


async def test_keep_alive_expiry_does_not_stop_a_runner_in_use(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    two = spec(parallel=2)
    lease1 = await scheduler.acquire(two, keep_alive=0.01)
    lease1.release()
    lease2 = await scheduler.acquire(two)  # re-attached before the timer could fire
    model = model_for(scheduler, two)
    assert model.timer is None
    assert factory.runners[0].stop_calls == 0
    lease2.release()
    await stopped(factory.runners[0])


async def test_unload_idle_model_stops_it_at_once(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    (await scheduler.acquire(A)).release()
    runner = factory.runners[0]
    await scheduler.unload(A.model_path)
    assert runner.stop_calls == 1 and not runner.alive
    assert scheduler.loaded() == []


async def test_unload_busy_model_stops_it_when_released(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    lease = await scheduler.acquire(A)
    runner = factory.runners[0]
    await scheduler.unload(A.model_path)
    await settle()
    assert runner.stop_calls == 0 and runner.alive
    lease.release()
    await stopped(runner)
    assert scheduler.loaded() == []


async def test_unload_of_unknown_model_is_a_no_op(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    await scheduler.unload("/models/never-loaded.gguf")
    assert factory.runners == []


async def test_dead_runner_is_replaced_on_next_acquire(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    (await scheduler.acquire(A)).release()
    dead = factory.runners[0]
    dead.alive = False  # the process died while idle
    lease = await scheduler.acquire(A)
    assert len(factory.runners) == 2
    assert lease.runner is factory.runners[1]
    assert lease.runner.alive
    assert dead.stop_calls >= 1, "the dead runner must be cleaned up"
    assert [m.runner for m in scheduler.loaded()] == [factory.runners[1]]
    lease.release()


async def test_runner_dying_during_request_is_dropped_on_release(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    lease = await scheduler.acquire(A)
    runner = factory.runners[0]
    runner.alive = False
    lease.release()
    await stopped(runner)
    assert scheduler.loaded() == []
    lease = await scheduler.acquire(A)
    assert lease.runner is factory.runners[1]
    lease.release()


async def test_abandoned_runner_stops_at_once_and_the_next_acquire_loads_afresh(
    make: SchedulerMaker,
) -> None:
    """A runner stuck on work only stopping it ends is stopped while its leases are held; their
    releases are harmless, and the next request gets a new runner."""
    scheduler, factory = make()
    two = spec("/models/a.gguf", parallel=2)
    stuck = await scheduler.acquire(two)
    other = await scheduler.acquire(two)
    runner = factory.runners[0]
    await scheduler.abandon(stuck)
    assert runner.stop_calls == 1 and not runner.alive
    assert scheduler.loaded() == []
    fresh = await scheduler.acquire(two)
    assert fresh.runner is factory.runners[1]
    stuck.release()
    other.release()
    await settle()
    assert runner.stop_calls == 1
    assert [m.runner for m in scheduler.loaded()] == [factory.runners[1]]
    fresh.release()


async def test_shutdown_stops_everything(make: SchedulerMaker) -> None:
    scheduler, factory = make()
    (await scheduler.acquire(A)).release()
    busy = await scheduler.acquire(B)
    await scheduler.shutdown()
    assert len(factory.runners) == 2
    for runner in factory.runners:
        assert runner.stop_calls >= 1
        assert not runner.alive
    assert scheduler.loaded() == []
    busy.release()  # a late release after shutdown is harmless
    await settle()
    assert scheduler.loaded() == []


# ---- turns between clients ----------------------------------------------------------------


def as_client(client: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """``work`` as a request from ``client`` (what the server's middleware sets)."""
    context = contextvars.copy_context()
    context.run(current_client.set, client)
    return asyncio.get_running_loop().create_task(work, context=context)


async def test_another_clients_request_is_served_before_the_rest_of_a_burst(
    make: SchedulerMaker,
) -> None:
    scheduler, _ = make()
    holder = await scheduler.acquire(A)
    served: list[str] = []

    async def request(name: str) -> None:
        lease: Lease = await scheduler.acquire(A)
        served.append(name)
        lease.release()

    burst = [as_client("10.0.0.1", request(f"burst{n}")) for n in range(20)]
    await settle()
    other = as_client("10.0.0.2", request("other"))
    await settle()
    holder.release()
    await asyncio.gather(*burst, other)
    assert served.index("other") == 1  # after the one burst request whose turn it was
    assert scheduler.waiting == 0


async def test_one_client_cannot_fill_the_whole_queue(make: SchedulerMaker) -> None:
    scheduler, _ = make(max_queue=16)
    assert scheduler.max_client_queue == 14
    holder = await scheduler.acquire(A)
    burst = [as_client("10.0.0.1", scheduler.acquire(A)) for _ in range(15)]
    await settle()
    refused = [t for t in burst if t.done()]
    assert len(refused) == 1 and isinstance(refused[0].exception(), Busy)
    others = [as_client("10.0.0.2", scheduler.acquire(A)) for _ in range(2)]
    await settle()
    assert not any(t.done() for t in others) and scheduler.waiting == 16
    with pytest.raises(Busy):  # the queue is full now, for everyone
        await as_client("10.0.0.3", scheduler.acquire(A))
    holder.release()
    pending = {*burst[:14], *others}
    while pending:  # each holds the one slot until released
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result().release()
    assert scheduler.waiting == 0
