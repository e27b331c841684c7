"""Tokens of texts far longer than a context: only a slice at the start or the end is
tokenized, and the tokens kept are the ones the whole text gives."""

from __future__ import annotations

from typing import Any, cast

from nexus.inference.long_text import MAX_TOKEN_CHARS, first_tokens, last_tokens, surely_longer
from nexus.runner.client import EngineClient


class WordEngine:
    """A token per word (a word's number), as local as real tokenizers are; records how much
    text it was given."""

    def __init__(self) -> None:
        self.given: list[int] = []

    async def tokenize(self, text: str, *, add_special: bool = False, **_: Any) -> list[int]:
        self.given.append(len(text))
        return ([0] if add_special else []) + [len(word) for word in text.split(" ")]


def text_of(words: int) -> str:
    return " ".join("x" * (1 + i % 9) for i in range(words))


async def test_the_start_and_end_of_a_long_text_are_those_of_the_whole() -> None:
    engine, whole = WordEngine(), WordEngine()
    text = text_of(200_000)  # about 1.1 million characters
    everything = await whole.tokenize(text, add_special=True)
    head, total = await first_tokens(cast(EngineClient, engine), text, 10, add_special=True)
    assert head == everything[:10] and total is None  # more than 10: not counted
    tail = await last_tokens(cast(EngineClient, engine), text, 300)
    assert tail == everything[-300:]
    assert max(engine.given) < 2 * MAX_TOKEN_CHARS * (300 + 16) + 1  # slices, never the whole


async def test_a_short_text_is_tokenized_whole_and_counted() -> None:
    engine = WordEngine()
    head, total = await first_tokens(cast(EngineClient, engine), "a bb ccc", 2, add_special=False)
    assert (head, total) == ([1, 2], 3)


def test_surely_longer_is_a_bound_whatever_the_vocabulary() -> None:
    assert not surely_longer("x" * 1000, 100)
    assert surely_longer("x" * (MAX_TOKEN_CHARS * 200), 100)
