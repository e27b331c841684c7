"""Embeddings of any number of inputs, a window at a time.

Only one window's inputs are tokenized and embedded at once, and its vectors go out before the
next window's are computed: memory holds a window whatever the count (before, 1,000,000 short
inputs, a 7 MB body, took the server to 1.6 GB within seconds, one task and one token list per
input). With truncation off, every input that could be too long is checked before the first
window, so that refusal is still a 400 and not a reply cut short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from nexus.errors import ContextOverflow
from nexus.inference.long_text import first_tokens
from nexus.runner.client import EngineClient, Vector
from nexus.runner.prompt_gate import prompt_bound

log = logging.getLogger(__name__)

#: Inputs per engine request (a window), and tokenizations of a window in flight at once: one
#: request with thousands of inputs must not hold thousands of runner connections.
EMBED_BATCH = 64
EMBED_TOKENIZE_CONCURRENCY = 4

T = TypeVar("T")
Item = str | list[int]


@dataclass
class EmbedTally:
    """What an embedding counted: complete once its last window is out."""

    started: float
    load_duration: float = 0.0
    #: Tokens embedded.
    count: int = 0
    truncated: bool = False


async def _tokens(client: EngineClient, item: Item, limit: int) -> tuple[list[int], int | None]:
    """An input's tokens, at most ``limit`` of them, and how many it has in all (``None``:
    more than ``limit``, not counted; a long text is tokenized only as far as that)."""
    if isinstance(item, list):
        return item[:limit], len(item)
    return await first_tokens(client, item, limit, add_special=True)


async def _bounded(
    items: list[Item], work: Callable[[Item], Awaitable[T]], at_once: int
) -> list[T]:
    """``work`` for each of ``items`` (a window's worth), ``at_once`` in flight."""
    gate = asyncio.Semaphore(at_once)

    async def one(item: Item) -> T:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(one(item) for item in items))


def _too_long(tokens: int | None, limit: int) -> ContextOverflow:
    count = f"{tokens} > {limit}" if tokens is not None else f"more than {limit}"
    return ContextOverflow(
        f"the input length exceeds the context length ({count} tokens)", param="input"
    )


async def check_fit(client: EngineClient, inputs: list[Item], limit: int) -> None:
    """Raise unless every input fits ``limit`` tokens; only texts that could be longer (more
    bytes than that) are tokenized, a window at a time."""
    unsure = [item for item in inputs if (prompt_bound(item) or 0) > limit]
    for start in range(0, len(unsure), EMBED_BATCH):
        window = unsure[start : start + EMBED_BATCH]

        async def count(item: Item) -> int | None:
            return (await _tokens(client, item, limit))[1]

        for n in await _bounded(window, count, EMBED_TOKENIZE_CONCURRENCY):
            if n is None or n > limit:
                raise _too_long(n, limit)


async def embed_windows(
    client: EngineClient,
    inputs: list[Item],
    limit: int,
    *,
    truncate: bool,
    normalize: bool,
    tally: EmbedTally,
    model_name: str,
) -> AsyncIterator[list[Vector]]:
    """The inputs' vectors, a window at a time, as the engine computes them; inputs longer than
    ``limit`` tokens are cut to it (``truncate``) or refused before the first window."""
    if not truncate:
        await check_fit(client, inputs, limit)

    async def tokens_of(item: Item) -> tuple[list[int], int | None]:
        return await _tokens(client, item, limit)

    for start in range(0, len(inputs), EMBED_BATCH):
        window = await _bounded(
            inputs[start : start + EMBED_BATCH], tokens_of, EMBED_TOKENIZE_CONCURRENCY
        )
        fitted: list[list[int]] = []
        for tokens, total in window:
            if total is None or total > limit:
                if not truncate:
                    raise _too_long(total, limit)
                if not tally.truncated:
                    log.warning("embed for %s: input truncated to %d tokens", model_name, limit)
                tally.truncated = True
            fitted.append(tokens or [0])
        vectors = await client.embeddings(fitted, normalize=normalize)
        tally.count += sum(len(t) for t in fitted)
        yield vectors


def shortened(vector: Vector, dimensions: int | None) -> Vector:
    """The vector cut to ``dimensions`` and normalised again (as Ollama does), or as it is."""
    if not dimensions:
        return vector
    part = vector[:dimensions]
    norm = float(np.linalg.norm(part))
    return part / np.float32(norm) if norm > 0 else part
