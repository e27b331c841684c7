"""A chat too long for the context drops its oldest messages, the fewest that make it fit, as
Ollama does; a history of thousands of messages takes a few renders to fit, not thousands."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from nexus.errors import ContextOverflow
from nexus.inference.prompts import PromptBuilder
from nexus.runner.client import EngineClient
from tests.inference.test_prompt_media import _Catalog, _model


class _Engine:
    """Renders each message as its words; a token per word."""

    def __init__(self) -> None:
        self.renders = 0
        self.largest = 0  # messages in the largest render

    async def apply_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        self.renders += 1
        self.largest = max(self.largest, len(messages))
        return " ".join(f"{m['role']}: {m['content']}" for m in messages)

    async def tokenize(self, text: str, **_: Any) -> list[int]:
        return [0] * len(text.split())


def _fit(messages: list[dict[str, Any]], num_ctx: int) -> tuple[Any, _Engine]:
    engine = _Engine()
    builder = PromptBuilder(cast(EngineClient, engine), catalog=cast(Any, _Catalog()))
    fitted = asyncio.run(builder.fit_chat(_model(None), messages, None, None, num_ctx))
    return fitted, engine


def _history(turns: int) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": "be brief"}]
    messages += [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"word {i}"}
        for i in range(turns)
    ]
    return messages


@pytest.mark.parametrize(("turns", "num_ctx"), [(2, 7), (5, 9), (6, 12), (40, 30), (41, 31)])
def test_the_fewest_oldest_messages_are_dropped(turns: int, num_ctx: int) -> None:
    messages = _history(turns)
    fitted, _ = _fit(messages, num_ctx)
    # each message is 3 tokens ("role:", "word", "N"), the system one too: the fewest dropped
    # that bring the count under num_ctx
    fewest = next(d for d in range(1, turns) if 3 * (turns + 1 - d) < num_ctx)
    assert fitted.dropped == fewest
    kept = [messages[0], *messages[1 + fewest :]]
    assert fitted.text == " ".join(f"{m['role']}: {m['content']}" for m in kept)


def test_thousands_of_messages_take_a_few_renders() -> None:
    fitted, engine = _fit(_history(5000), 300)
    # 99 messages of 3 tokens (the system one among them) stay under 300: 5000 + 1 - 99 dropped
    assert fitted.dropped == 4902
    assert engine.renders <= 16


def test_no_render_holds_more_messages_than_the_context_has_tokens() -> None:
    fitted, engine = _fit(_history(100_000), 300)
    assert fitted.dropped == 100_001 - 99
    assert engine.largest <= 300 + 2  # the system message and the last one besides
    assert engine.renders <= 12


def test_nothing_to_drop_is_a_context_overflow() -> None:
    with pytest.raises(ContextOverflow):
        _fit([{"role": "system", "content": "x " * 50}, {"role": "user", "content": "hi"}], 10)
    with pytest.raises(ContextOverflow):
        _fit(_history(3), 3)
