"""Slots handed out in turn to the clients waiting for them, and one client's share of the queue.

Driven by yielding to the loop, never by wall-clock time."""

from __future__ import annotations

import asyncio

from nexus.scheduler.fairness import FairSlots
from tests.scheduler.test_scheduler import settle


async def test_a_freed_slot_goes_to_each_waiting_client_in_turn() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    served: list[str] = []

    async def request(client: str, name: str) -> None:
        await slots.acquire(client)
        served.append(name)

    tasks = [asyncio.ensure_future(request("a", f"a{n}")) for n in range(4)]
    await settle()
    tasks += [asyncio.ensure_future(request("b", "b0")), asyncio.ensure_future(request("c", "c0"))]
    await settle()
    tasks.append(asyncio.ensure_future(request("b", "b1")))
    await settle()
    for _ in range(7):
        slots.release()
        await settle()
    assert served == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert slots.free == 0 and slots.locked() is not False
    slots.release()
    assert slots.free == 1 and not slots.locked()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_leaves_its_turn_and_a_handed_slot_goes_on() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    first = asyncio.ensure_future(slots.acquire("b"))
    second = asyncio.ensure_future(slots.acquire("c"))
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    slots.release()  # to c: b left
    await settle()
    assert second.done()
    late = asyncio.ensure_future(slots.acquire("d"))
    await settle()
    slots.release()  # handed to d ...
    late.cancel()  # ... which is cancelled before it runs: the slot is free again
    await settle()
    assert late.cancelled() and slots.free == 1 and not slots.locked()
