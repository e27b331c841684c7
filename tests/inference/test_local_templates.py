"""A GGUF's Jinja chat template renders in this process only after it rendered what the engine
renders, request after request; any difference, failure, compile error or passed bound keeps
the engine, and a template's own refusal of an input leaves that request to the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import pytest

from nexus.inference.local_templates import CHECKS, MAX_TEXT, RECHECK_EVERY, LocalTemplates
from nexus.runner.process import RunnerProcess
from nexus.runner.spec import RunnerSpec
from nexus.template.jinja import JinjaChatTemplate

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
HI = [{"role": "user", "content": "Hi"}]


class Engine:
    """Stands in for the runner's engine: renders with ``render`` and counts the calls."""

    def __init__(self, render: Any = None) -> None:
        self.calls = 0
        self._render = render or (lambda messages: JinjaChatTemplate(CHATML).render(
            messages, bos_token="<s>", eos_token="</s>"))  # fmt: skip

    async def special_tokens(self) -> tuple[str, str]:
        return "<s>", "</s>"

    async def apply_template(
        self, messages: list[dict[str, Any]], template_kwargs: dict[str, Any] | None = None
    ) -> str:
        self.calls += 1
        return str(self._render(messages))


async def test_after_matching_checks_the_template_renders_here() -> None:
    local, engine = LocalTemplates(), Engine()
    texts = [await local.render(CHATML, engine, HI, None) for _ in range(CHECKS + 2)]  # type: ignore[arg-type]
    assert engine.calls == CHECKS
    assert len(set(texts)) == 1
    assert texts[0] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


async def test_one_difference_keeps_the_engine_for_good() -> None:
    local = LocalTemplates()
    differs = Engine(lambda messages: "something else")
    for _ in range(CHECKS + 3):
        assert await local.render(CHATML, differs, HI, None) == "something else"  # type: ignore[arg-type]
    assert differs.calls == CHECKS + 3


@pytest.mark.parametrize(
    "source",
    [
        "{% for m in messages %}{{ m.content }",  # does not compile
        "{{ raise_exception('no system role') }}",  # refuses its input
        "{{ messages[5].content }}",  # fails while rendering
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",  # refused by the screen
        "{% for a in messages %}{% for b in 'x' * 4000 %}{% for c in 'y' * 4000 %}"
        "{% endfor %}{% endfor %}{% endfor %}",  # passes the deadline
    ],
)
async def test_a_template_that_fails_here_stays_with_the_engine(source: str) -> None:
    local, engine = LocalTemplates(), Engine(lambda messages: "engine")
    for _ in range(CHECKS + 1):
        assert await local.render(source, engine, HI, None) == "engine"  # type: ignore[arg-type]
    assert engine.calls == CHECKS + 1


async def test_a_template_refusing_one_input_still_renders_others_here() -> None:
    source = "{% if messages[0].content == 'no' %}{{ raise_exception('no') }}{% endif %}" + CHATML
    local, engine = LocalTemplates(), Engine()
    for _ in range(CHECKS):
        await local.render(source, engine, HI, None)  # type: ignore[arg-type]
    refused = [{"role": "user", "content": "no"}]
    await local.render(source, engine, refused, None)  # type: ignore[arg-type]
    calls = engine.calls
    assert await local.render(source, engine, HI, None) == Engine()._render(HI)  # type: ignore[arg-type]
    assert engine.calls == calls


async def test_each_shape_of_conversation_is_checked_and_rechecked() -> None:
    local, engine = LocalTemplates(), Engine()
    system = [{"role": "system", "content": "Be brief."}, *HI]
    for _ in range(CHECKS):
        await local.render(CHATML, engine, HI, None)  # type: ignore[arg-type]
    assert engine.calls == CHECKS
    await local.render(CHATML, engine, system, None)  # type: ignore[arg-type]
    assert engine.calls == CHECKS + 1  # a system message first: a shape of its own
    for _ in range(RECHECK_EVERY):
        await local.render(CHATML, engine, HI, None)  # type: ignore[arg-type]
    assert engine.calls == CHECKS + 2  # compared once more along the way


async def test_a_large_conversation_goes_to_the_engine() -> None:
    local, engine = LocalTemplates(), Engine()
    large = [{"role": "user", "content": "x" * (MAX_TEXT + 1)}]
    for _ in range(CHECKS + 2):
        await local.render(CHATML, engine, large, None)  # type: ignore[arg-type]
    assert engine.calls == CHECKS + 2


async def test_no_template_means_the_engine_default() -> None:
    local, engine = LocalTemplates(), Engine(lambda messages: "default")
    for _ in range(CHECKS + 1):
        assert await local.render(None, engine, HI, None) == "default"  # type: ignore[arg-type]
    assert engine.calls == CHECKS + 1


CONVERSATIONS: list[tuple[list[dict[str, str]], dict[str, Any] | None]] = [
    (HI, None),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], None),
    (
        [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another, in français: « vert » ?"},
        ],
        None,
    ),
    ([{"role": "user", "content": "Think first."}], {"enable_thinking": False}),
    ([{"role": "user", "content": "  spaces\n\nand lines  "}], {"enable_thinking": True}),
]


@pytest.mark.integration
async def test_the_default_models_template_renders_as_the_engine_does(default_gguf: Path) -> None:
    """The real engine against this process, for the default model's own template and for a
    Qwen3-style one reading ``enable_thinking``."""
    from tests.server.test_capabilities_gaps import JINJA

    reader = gguf.GGUFReader(str(default_gguf), "r")
    own = str(reader.get_field(gguf.Keys.Tokenizer.CHAT_TEMPLATE).contents())
    spec = RunnerSpec(model_path=str(default_gguf), num_ctx=512, num_parallel=1, num_thread=2)
    runner = RunnerProcess(spec, load_timeout=120.0)
    await runner.start()
    try:
        client = runner.client
        assert client is not None
        bos, eos = await client.special_tokens()
        compiled = JinjaChatTemplate(own)
        for messages, variables in CONVERSATIONS:
            engine = await client.apply_template(messages, template_kwargs=variables)
            here = compiled.render(messages, bos_token=bos, eos_token=eos, variables=variables)
            assert here == engine
        qwen = JinjaChatTemplate(JINJA)
        for messages, variables in CONVERSATIONS:
            text = qwen.render(messages, bos_token=bos, eos_token=eos, variables=variables)
            assert ("<think>\n\n</think>" in text) == (variables == {"enable_thinking": False})
        local = LocalTemplates()
        for messages, variables in CONVERSATIONS:  # the checks, then rendered here
            expected = await client.apply_template(messages, template_kwargs=variables)
            assert await local.render(own, client, messages, variables) == expected
    finally:
        await runner.stop()
