"""PromptGate: prompts enter one engine first come, first served, a batch's worth at once, one
long prompt (over half a batch) at most."""

from __future__ import annotations

import asyncio

import pytest

from nexus.runner.prompt_gate import SPECIALS, PromptGate, prompt_bound


def test_prompt_bounds() -> None:
    # a token a byte at most, besides the specials: bytes, not characters
    assert prompt_bound("a" * 300) == 300 + SPECIALS
    assert prompt_bound("é" * 300) == 600 + SPECIALS
    assert prompt_bound([1, 2, 3]) == 3
    assert prompt_bound({"prompt_string": "a", "multimodal_data": ["x"]}) is None


def test_what_is_worth_counting_exactly() -> None:
    gate = PromptGate(batch=512, parallel=4)
    assert (gate.room, gate.half) == (508, 254)
    assert gate.worth_counting(200)  # short: maybe shorter still
    assert gate.worth_counting(1000)  # maybe short
    assert not gate.worth_counting(10_000)  # long for sure
    assert not gate.worth_counting(None)


async def enter_in_order(gate: PromptGate, sizes: list[int | None]) -> list[asyncio.Task[None]]:
    """One task per prompt, each let in or queued before the next starts."""
    tasks = []
    for size in sizes:
        tasks.append(asyncio.create_task(gate.enter(size)))
        await asyncio.sleep(0)  # the task runs up to its wait
    return tasks


def done(tasks: list[asyncio.Task[None]]) -> list[bool]:
    return [t.done() for t in tasks]


async def test_short_prompts_that_fit_one_batch_enter_together() -> None:
    gate = PromptGate(batch=100, parallel=4)  # room 96, half 48
    tasks = await enter_in_order(gate, [30, 30, 30, 30])
    assert done(tasks) == [True, True, True, False]
    assert gate.entered == 3
    gate.leave(30)
    await asyncio.sleep(0)
    assert tasks[3].done() and gate.entered == 3


async def test_a_prompt_alone_enters_whatever_its_size() -> None:
    gate = PromptGate(batch=100, parallel=4)
    for size in (10_000, None):
        assert gate.fits(size)
        await gate.enter(size)
        assert gate.entered == 1
        gate.leave(size)
        assert gate.entered == 0


async def test_one_long_prompt_at_a_time_beside_half_a_batch_of_short_ones() -> None:
    gate = PromptGate(batch=100, parallel=4)
    tasks = await enter_in_order(gate, [500, 20, 20, 20])
    assert done(tasks) == [True, True, True, False]  # the long one counts 48: 48 + 40 <= 96
    later_long = await enter_in_order(gate, [None])
    gate.leave(20)
    await asyncio.sleep(0)
    assert tasks[3].done() and not later_long[0].done()  # a second long one waits
    gate.leave(500)
    await asyncio.sleep(0)
    assert later_long[0].done()


async def test_later_prompts_never_pass_a_waiting_one() -> None:
    """A short prompt that would fit waits behind an earlier long one that does not."""
    gate = PromptGate(batch=100, parallel=4)
    first_long, second_long, short = await enter_in_order(gate, [500, 500, 5])
    assert done([first_long, second_long, short]) == [True, False, False]
    gate.leave(500)
    await asyncio.sleep(0)
    assert second_long.done() and short.done()


async def test_a_prompt_abandoned_while_waiting_gives_way() -> None:
    gate = PromptGate(batch=100, parallel=4)
    first, waiting, behind = await enter_in_order(gate, [500, 500, 10])
    assert first.done() and not waiting.done() and not behind.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert behind.done()  # the cancelled one's turn is not kept for it
    assert gate.entered == 2


async def test_a_prompt_abandoned_as_it_was_let_in_gives_its_turn_back() -> None:
    gate = PromptGate(batch=100, parallel=4)
    _, second = await enter_in_order(gate, [500, 500])
    gate.leave(500)  # lets the second in: its wait is over, not yet resumed
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert gate.entered == 0
    assert gate.fits(500) and gate.fits(None)  # nothing left held
