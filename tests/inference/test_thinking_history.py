"""Reasoning of earlier assistant turns left out of the prompt, as Ollama leaves it out."""

from __future__ import annotations

from typing import Any

from nexus.inference.thinking import without_past_thinking

THINK_TEMPLATE = "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}"


def _history(answer: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": answer},
    ]


def test_earlier_reasoning_is_removed() -> None:
    out = without_past_thinking(_history("<think>\nTwo and two.\n</think>\n\n4"), THINK_TEMPLATE)
    assert out[1]["content"] == "4"
    assert out[0] == {"role": "user", "content": "What is 2+2?"}


def test_turns_after_the_last_user_message_are_kept() -> None:
    out = without_past_thinking(_history("<think>Two and two.</think>4"), THINK_TEMPLATE)
    assert out[3]["content"] == "<think>Two and two.</think>4"


def test_text_that_does_not_open_with_reasoning_is_kept() -> None:
    out = without_past_thinking(_history("4, see <think>x</think>"), THINK_TEMPLATE)
    assert out[1]["content"] == "4, see <think>x</think>"


def test_templates_with_other_tags_keep_the_text() -> None:
    messages = _history("<think>Two and two.</think>4")
    assert without_past_thinking(messages, "{{ .Content }}") == messages
    harmony = "<|channel|>analysis<|message|>{{ .Thinking }}"
    assert without_past_thinking(messages, harmony) == messages


def test_messages_are_not_changed_in_place() -> None:
    messages = _history("<think>Two and two.</think>4")
    without_past_thinking(messages, THINK_TEMPLATE)
    assert messages[1]["content"] == "<think>Two and two.</think>4"
