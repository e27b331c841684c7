"""Embeddings a window at a time (``nexus.inference.embedding``), against a stand-in engine
client that counts what it is asked (the real engine is in the server tests)."""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
import pytest

from nexus.errors import ContextOverflow
from nexus.inference.embedding import (
    EMBED_BATCH,
    EmbedTally,
    check_fit,
    embed_windows,
    shortened,
)
from nexus.runner.client import EngineClient, Vector


class CountingEngine:
    """A token per character; a vector per input holding its length."""

    def __init__(self) -> None:
        self.tokenized: list[str] = []
        self.embedded: list[int] = []  # inputs per embeddings call

    async def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        self.tokenized.append(text)
        return [ord(c) for c in text]

    async def embeddings(self, inputs: list[list[int]], *, normalize: bool) -> list[Vector]:
        self.embedded.append(len(inputs))
        return [np.array([len(t), 0], dtype=np.float32) for t in inputs]


def client(engine: CountingEngine) -> EngineClient:
    return cast(EngineClient, engine)


async def test_inputs_go_a_window_at_a_time() -> None:
    engine = CountingEngine()
    inputs: list[Any] = [f"w{i}" for i in range(3 * EMBED_BATCH + 5)]
    tally = EmbedTally(time.monotonic())
    sizes: list[int] = []
    windows = embed_windows(
        client(engine), inputs, 100, truncate=True, normalize=True, tally=tally, model_name="m"
    )
    async for vectors in windows:
        # the next window is not tokenized before this one is taken
        assert len(engine.tokenized) == sum(sizes) + len(vectors)
        sizes.append(len(vectors))
    assert sizes == [EMBED_BATCH, EMBED_BATCH, EMBED_BATCH, 5]
    assert engine.embedded == sizes
    assert tally.count == sum(len(text) for text in inputs)
    assert not tally.truncated


async def test_long_inputs_are_cut_to_the_limit_and_counted_so() -> None:
    engine = CountingEngine()
    tally = EmbedTally(time.monotonic())
    windows = embed_windows(
        client(engine), ["abc", "x" * 50], 10, truncate=True, normalize=True, tally=tally,
        model_name="m",
    )  # fmt: skip
    vectors = [v async for window in windows for v in window]
    assert [float(v[0]) for v in vectors] == [3.0, 10.0]
    assert tally.truncated and tally.count == 13


async def test_without_truncation_a_long_input_is_refused_before_any_window() -> None:
    engine = CountingEngine()
    inputs: list[Any] = ["short"] * (2 * EMBED_BATCH) + ["y" * 50]
    windows = embed_windows(
        client(engine), inputs, 10, truncate=False, normalize=True,
        tally=EmbedTally(time.monotonic()), model_name="m",
    )  # fmt: skip
    with pytest.raises(ContextOverflow, match=r"50 > 10"):
        await anext(windows)
    assert engine.embedded == []
    # only the text that could be too long (more bytes than the limit) was tokenized
    assert engine.tokenized == ["y" * 50]


async def test_token_lists_are_checked_without_the_tokenizer() -> None:
    engine = CountingEngine()
    with pytest.raises(ContextOverflow):
        await check_fit(client(engine), [[1] * 11], 10)
    # a text of 6 bytes is at most 6 tokens and the specials: not worth tokenizing
    await check_fit(client(engine), [[1] * 10, "012345"], 10)
    assert engine.tokenized == []


def test_shortened_vectors_are_normalised_again() -> None:
    vector = np.array([3.0, 4.0, 12.0], dtype=np.float32)
    assert shortened(vector, None) is vector
    cut = shortened(vector, 2)
    assert cut.dtype == np.float32
    assert np.allclose(cut, [0.6, 0.8])
