"""Prompts take turns into the engine (``nexus.runner.prompt_gate``): clients that leave at
any point, waiting for a slot, for their prompt's turn or after their first token, leave no
turn held, against a real server with four slots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess, metric_total, start_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def four_slots(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("prompt-turns") / "server.log"
    srv = start_server(models_dir, log, OLLAMA_NUM_PARALLEL="4", OLLAMA_CONTEXT_LENGTH="2048")
    yield srv
    srv.stop()


def long_prompt(i: int) -> str:
    """About 330 tokens: more than half of a 512-token batch, so such prompts go one by one."""
    return f"Note {i}. " + " ".join(f"item {i}-{k} is on shelf {k % 7}" for k in range(40))


async def in_flight(url: str) -> float:
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        text = (await http.get("/metrics")).text
    return metric_total(text, "nexus_requests_in_flight")


async def test_clients_leaving_at_any_point_leave_no_turn_held(four_slots: ServerProcess) -> None:
    client = ollama.AsyncClient(host=four_slots.url)
    await client.generate(model=DEFAULT_MODEL, prompt="hi", options={"num_predict": 1})

    async def leave_after_first_chunk(i: int) -> None:
        messages = [{"role": "user", "content": long_prompt(i)}]
        stream = await client.chat(model=DEFAULT_MODEL, messages=messages, stream=True)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    tasks = [asyncio.create_task(leave_after_first_chunk(i)) for i in range(8)]
    async with asyncio.timeout(120):
        while await in_flight(four_slots.url) < 8 and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)  # four in slots (one of them in the engine), four queued
    for task in tasks:  # the rest leave before their first token, wherever they wait
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results
    # a turn left held would keep this long prompt out of the engine for good
    async with asyncio.timeout(60):
        reply = await client.chat(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": long_prompt(99)}],
            options={"num_predict": 4},
        )
    assert reply.message.content
    assert reply.prompt_eval_count and reply.prompt_eval_count > 250
    log = four_slots.log.read_text()
    assert "Traceback" not in log, log[-3000:]
