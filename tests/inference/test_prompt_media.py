"""Images in prompts: each ``[img-N]`` tag of the rendered prompt becomes the engine's media
marker, with the images in marker order (a stand-in engine answers ``/props``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from nexus.inference.local_templates import LocalTemplates
from nexus.inference.models import Model
from nexus.inference.prompts import PromptBuilder, RenderedPrompt, engine_prompt
from nexus.runner.client import EngineClient
from nexus.template import parse

MARKER = "<__media_test__>"


class _Engine:
    async def props(self) -> dict[str, Any]:
        return {"media_marker": MARKER}

    async def special_tokens(self) -> tuple[str, str]:
        return "", ""

    async def apply_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)


class _Catalog:
    jinja = LocalTemplates()


def _model(template: str | None) -> Model:
    model = cast(Model, object.__new__(Model))
    model.template = parse(template) if template else None
    model.gguf = cast(Any, SimpleNamespace(chat_template=None))  # the engine's own default
    return model


def _builder() -> PromptBuilder:
    return PromptBuilder(cast(EngineClient, _Engine()), catalog=cast(Any, _Catalog()))


def test_go_template_markers_in_order() -> None:
    model = _model("{{ range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}")
    messages = [
        {"role": "user", "content": "first", "images": ["AAA"]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "compare [img] with this", "images": ["BBB", "CCC"]},
    ]
    rendered = asyncio.run(_builder().chat_prompt(model, messages, None, None))
    assert rendered.text == (
        f"[user] {MARKER}first\n[assistant] ok\n[user] {MARKER}compare {MARKER} with this\n"
    )
    # "[img]" takes the message's first image, the others go before the text (as Ollama tags
    # them): markers in text order are AAA, CCC, BBB
    assert rendered.images == ["AAA", "CCC", "BBB"]
    assert engine_prompt(rendered) == {
        "prompt_string": rendered.text,
        "multimodal_data": ["AAA", "CCC", "BBB"],
    }


def test_engine_template_markers() -> None:
    messages = [{"role": "user", "content": "what is this?", "images": ["AAA"]}]
    rendered = asyncio.run(_builder().chat_prompt(_model(None), messages, None, None))
    assert rendered.text == f"<user>{MARKER}what is this?"
    assert rendered.images == ["AAA"]


def test_without_images_the_prompt_is_text() -> None:
    rendered = RenderedPrompt("plain")
    assert engine_prompt(rendered) == "plain"
