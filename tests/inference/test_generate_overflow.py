"""Which generate prompts are tokenized before they go to the engine: those that could be more
tokens than a slot holds, judged by their bytes (no token is shorter than a byte)."""

from __future__ import annotations

import pytest

from nexus.inference.service import _may_overflow
from nexus.runner.spec import RunnerSpec

SPEC = RunnerSpec(model_path="m.gguf", num_ctx=2048)


@pytest.mark.parametrize(
    ("text", "may"),
    [
        ("Why is the sky blue?", False),
        ("a" * 2045, False),  # with BOS and EOS: 2047 tokens at most
        ("a" * 2046, True),
        ("漢" * 700, True),  # 2,100 bytes: could be a token each
        ("漢" * 500, False),  # 1,500 bytes
        ("🙂" * 511, False),  # 2,044 bytes
        ("🙂" * 512, True),
    ],
)
def test_only_a_prompt_of_as_many_bytes_as_the_context_may_overflow(text: str, may: bool) -> None:
    assert _may_overflow(text, SPEC) is may
