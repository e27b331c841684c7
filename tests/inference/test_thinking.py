"""Reasoning parsers driven by scripted engine streams: every split of the text into pieces
gives the same reasoning and answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus.inference.thinking import (
    HarmonyParser,
    TagParser,
    ThinkingParser,
    infer_tags,
    parser_for,
    split_thinking,
    staged,
)


def _events(text: str, size: int) -> list[dict[str, Any]]:
    """The engine's stream for ``text`` in pieces of ``size`` characters, the last one with
    ``stop`` (and no text, as the engine ends a stream)."""
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return [{"content": p} for p in pieces] + [{"content": "", "stop": True}]


def _run(parser: ThinkingParser, text: str, size: int) -> tuple[str, str, list[tuple[str, str]]]:
    pieces = [split_thinking(parser, event) for event in _events(text, size)]
    return "".join(t for t, _ in pieces), "".join(c for _, c in pieces), pieces


TAG_CASES = [
    ("<think>Two and two.</think>Four.", "Two and two.", "Four."),
    ("  <think>\n  Two and two.  \n</think>\n\nFour.", "Two and two.", "Four."),
    ("Four, no reasoning.", "", "Four, no reasoning."),
    ("<think>never closed", "never closed", ""),
    ("<think></think>Four.", "", "Four."),
    (
        "<think>a < b and </thin is not the end</think> done",
        "a < b and </thin is not the end",
        "done",
    ),
    ("<thinking>x</thinking>y", "", "<thinking>x</thinking>y"),
    ("<thi", "", "<thi"),
]


@pytest.mark.parametrize(("text", "thinking", "content"), TAG_CASES)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_tag_parser_any_split(text: str, thinking: str, content: str, size: int) -> None:
    got_thinking, got_content, _ = _run(TagParser("<think>", "</think>"), text, size)
    assert (got_thinking, got_content) == (thinking, content)


def test_reasoning_streams_before_the_closing_tag() -> None:
    _, _, pieces = _run(TagParser("<think>", "</think>"), "<think>one two three</think>four", 4)
    thinking_pieces = [t for t, _ in pieces if t]
    assert len(thinking_pieces) >= 3  # streamed as it comes, not held to the end
    first_content = next(i for i, (_, c) in enumerate(pieces) if c)
    assert all(not t for t, _ in pieces[first_content:])


def test_prompt_ending_in_the_opening_tag() -> None:
    template = "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    parser = parser_for(template, "<|im_start|>assistant\n<think>\n", True)
    assert parser is not None
    thinking, content, _ = _run(parser, "Four is 2+2.</think>\n4", 2)
    assert (thinking, content) == ("Four is 2+2.", "4")


def test_no_parser_when_not_thinking() -> None:
    template = "<think>{{ .Thinking }}</think>"
    assert parser_for(template, "", False) is None
    assert parser_for(template, "", None) is None
    assert parser_for("{{ .Prompt }}", "", True) is None
    assert parser_for(template, "", "high") is not None


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        ("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}", ("<think>", "</think>")),
        ("<reasoning>{{- .Thinking -}}</reasoning>", ("<reasoning>", "</reasoning>")),
        (
            "{% if reasoning %}<think>\n{{ reasoning }}\n</think>{% endif %}",
            ("<think>", "</think>"),
        ),
        ("{{ .Prompt }}", None),
    ],
)
def test_infer_tags(template: str, tags: tuple[str, str] | None) -> None:
    assert infer_tags(template) == tags


HARMONY = (
    "<|channel|>analysis<|message|>User asks 2+2. Answer 4.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>4"
)


@pytest.mark.parametrize("size", [1, 3, 8, 1000])
def test_harmony_channels(size: int) -> None:
    thinking, content, _ = _run(HarmonyParser(), HARMONY, size)
    assert (thinking, content) == ("User asks 2+2. Answer 4.", "4")


def test_harmony_plain_text_is_the_answer() -> None:
    assert _run(HarmonyParser(), "just text", 2)[:2] == ("", "just text")


def test_harmony_from_a_template() -> None:
    template = "<|start|>assistant<|channel|>analysis<|message|>{{ .Thinking }}<|end|>"
    assert isinstance(parser_for(template, "", True), HarmonyParser)


def test_without_parser_text_passes() -> None:
    assert split_thinking(None, {"content": "x"}) == ("", "x")


class _ScriptedEngine:
    """Answers each request with the next scripted list of events, recording the bodies."""

    def __init__(self, *scripts: list[dict[str, Any]]) -> None:
        self.scripts = list(scripts)
        self.bodies: list[dict[str, Any]] = []

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.bodies.append(body)
        for event in self.scripts.pop(0):
            yield event


def _collect(engine: _ScriptedEngine, body: dict[str, Any]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        parser = TagParser("<think>", "</think>")
        parser.feed("<think>")
        return [e async for e in staged(engine.stream, body, parser)]

    return asyncio.run(run())


BODY = {"prompt": "Q<think>", "grammar": "root ::= x", "n_predict": 50, "stop": ["END"]}


def test_staged_reasons_free_then_answers_constrained() -> None:
    engine = _ScriptedEngine(
        [
            {"content": "hmm"},
            {
                "content": "",
                "stop": True,
                "stop_type": "word",
                "stopping_word": "</think>",
                "timings": {"predicted_n": 10},
                "tokens_evaluated": 7,
            },
        ],
        [
            {"content": "x"},
            {
                "content": "",
                "stop": True,
                "stop_type": "eos",
                "timings": {"predicted_n": 2},
                "tokens_evaluated": 1,
            },
        ],
    )
    events = _collect(engine, BODY)
    free, constrained = engine.bodies
    assert "grammar" not in free and free["stop"] == ["END", "</think>"]
    assert constrained["grammar"] == "root ::= x"
    assert constrained["prompt"] == "Q<think>hmm</think>"
    assert constrained["n_predict"] == 40
    assert [e["content"] for e in events] == ["hmm", "</think>", "x", ""]
    assert events[-1]["timings"]["predicted_n"] == 12
    assert events[-1]["tokens_evaluated"] == 7


@pytest.mark.parametrize(
    "ending",
    [{"stop_type": "limit"}, {"stop_type": "word", "stopping_word": "END"}],
)
def test_staged_stops_where_the_reasoning_stopped(ending: dict[str, Any]) -> None:
    engine = _ScriptedEngine([{"content": "hmm"}, {"content": "", "stop": True, **ending}])
    events = _collect(engine, BODY)
    assert len(engine.bodies) == 1 and events[-1]["stop"]


def test_staged_without_constraint_is_the_plain_stream() -> None:
    engine = _ScriptedEngine([{"content": "a"}, {"content": "", "stop": True}])
    body = {"prompt": "Q"}

    async def run() -> list[dict[str, Any]]:
        return [e async for e in staged(engine.stream, body, TagParser("<think>", "</think>"))]

    assert [e["content"] for e in asyncio.run(run())] == ["a", ""]
    assert engine.bodies == [body]
