"""Turning a request into the prompt text the engine completes.

A model's template layer (Ollama's Go template) wins; without one, the GGUF's own Jinja chat
template renders through the engine, or in the server once it has proved to render alike
(``local_templates``). Models whose template knows no tools get them described in
the system prompt, and their calls are read back by ``toolcalls``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nexus.api.ollama import ChatRequest, GenerateRequest
from nexus.errors import ContextOverflow
from nexus.inference.long_text import surely_longer
from nexus.inference.models import Model, ModelCatalog
from nexus.inference.thinking import without_past_thinking
from nexus.inference.toolcalls import CLOSE, OPEN, tools_system_prompt
from nexus.runner.client import EngineClient


@dataclass
class RenderedPrompt:
    text: str
    dropped: int = 0
    #: Base64 images, in the order of the engine's media markers in ``text``.
    images: list[str] = field(default_factory=list)


def engine_prompt(rendered: RenderedPrompt) -> str | dict[str, Any]:
    """The engine's ``prompt``: the text, or with images the text and their data."""
    if not rendered.images:
        return rendered.text
    return {"prompt_string": rendered.text, "multimodal_data": list(rendered.images)}


_IMAGE_TAG = re.compile(r"\[img-(\d+)\]")


def _images_of(messages: list[dict[str, Any]]) -> list[str]:
    return [image for m in messages for image in m.get("images") or ()]


class PromptBuilder:
    def __init__(self, client: EngineClient, catalog: ModelCatalog) -> None:
        self.client = client
        self.catalog = catalog

    @staticmethod
    def chat_messages(model: Model, req: ChatRequest) -> list[dict[str, Any]]:
        """The request's messages after the model's seed messages and default system prompt."""
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        seeded = [dict(m) for m in model.messages] + messages
        if model.system and (not seeded or seeded[0].get("role") != "system"):
            seeded.insert(0, {"role": "system", "content": model.system})
        return seeded

    async def chat_prompt(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        think: Any,
    ) -> RenderedPrompt:
        if any(
            m.get("role") == "assistant" and "<think>" in str(m.get("content")) for m in messages
        ):
            source = model.template_text or model.gguf.chat_template or ""
            messages = without_past_thinking(messages, source)
        images = _images_of(messages)
        if images:
            from nexus.template.prompt import tag_images

            messages = tag_images(messages)
        if model.template is not None:
            from nexus.template.prompt import render_prompt

            if tools and not model.template.uses("Tools"):
                messages, tools = _with_tools_prompt(messages, tools), None
            text = render_prompt(model.template, messages=messages, tools=tools, think=think)
        else:
            if tools:
                messages = _with_tools_prompt(messages, tools)
            text = await self._jinja(model, messages, think)
        return await self._with_media(text, images)

    async def _jinja(self, model: Model, messages: list[dict[str, Any]], think: Any) -> str:
        """The GGUF's own chat template, rendered for ``messages``."""
        return await self.catalog.jinja.render(
            model.gguf.chat_template,
            self.client,
            _to_engine_messages(messages),
            _thinking_kwargs(think),
        )

    async def _with_media(self, text: str, images: list[str]) -> RenderedPrompt:
        """Each ``[img-N]`` tag of a rendered prompt as the engine's media marker, with the
        images in marker order (Ollama's runner splits its prompts at the same tags)."""
        if not images:
            return RenderedPrompt(text)
        props = await self.client.props()
        marker = str(props.get("media_marker") or "<__media__>")
        ordered: list[str] = []

        def to_marker(match: re.Match[str]) -> str:
            index = int(match.group(1))
            if index >= len(images):
                return match.group(0)
            ordered.append(images[index])
            return marker

        return RenderedPrompt(_IMAGE_TAG.sub(to_marker, text), images=ordered)

    async def fit_chat(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        think: Any,
        num_ctx: int,
    ) -> RenderedPrompt:
        """Drop the oldest non-system messages until the prompt fits, as Ollama does: the
        fewest that make it fit, found by halving (a prompt only shortens as more are dropped),
        so a history of thousands of messages costs a few renders, not thousands, none of more
        than ``num_ctx`` messages."""
        droppable = [i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"]
        tried: dict[int, RenderedPrompt | None] = {}

        async def fitting(dropped: int) -> RenderedPrompt | None:
            gone = set(droppable[:dropped])
            kept = [m for i, m in enumerate(messages) if i not in gone]
            rendered = await self.chat_prompt(model, kept, tools, think)
            fits = not surely_longer(rendered.text, num_ctx) and (
                len(await self.client.tokenize(rendered.text, add_special=True)) < num_ctx
            )
            tried[dropped] = rendered if fits else None
            return tried[dropped]

        # every message kept takes a token at least: keeping num_ctx of them cannot fit, so no
        # render need hold more (a client's 100,000 messages cost renders of num_ctx at most)
        low, high = max(1, len(droppable) - num_ctx + 1), len(droppable)
        if not droppable or await fitting(high) is None:
            raise ContextOverflow(
                f"the input length exceeds the context length ({num_ctx} tokens), even with "
                "only the system prompt and the last message"
            )
        while low < high:  # the answer lies in [low, high]; ``high`` fits
            middle = (low + high) // 2
            if await fitting(middle) is None:
                low = middle + 1
            else:
                high = middle
        rendered = tried[high]
        assert rendered is not None
        rendered.dropped = high
        return rendered

    async def generate_prompt(self, model: Model, req: GenerateRequest) -> RenderedPrompt:
        if req.raw:
            return RenderedPrompt(req.prompt)
        system = req.system if req.system is not None else model.system
        template = self.catalog.template(req.template) if req.template else model.template
        images = list(req.images or ())
        prompt = req.prompt
        if images:
            from nexus.template.prompt import tag_images

            prompt = tag_images([{"role": "user", "content": prompt, "images": images}])[0][
                "content"
            ]
        if template is not None:
            from nexus.template.prompt import render_generate

            text = render_generate(
                template,
                system=system,
                prompt=prompt,
                suffix=req.suffix,
                think=req.think,
                messages=None if req.context else model.messages,
            )
            return await self._with_media(text, images)
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        if not req.context:
            messages.extend(model.messages)
        messages.append({"role": "user", "content": prompt})
        text = await self._jinja(model, messages, req.think)
        return await self._with_media(text, images)


def _thinking_kwargs(think: Any) -> dict[str, Any] | None:
    """``think`` for a Jinja template: ``enable_thinking``, as Qwen3's and others' read it."""
    return None if think is None else {"enable_thinking": think is not False}


def _with_tools_prompt(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    instructions = tools_system_prompt(tools)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content', '')}\n\n{instructions}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]


def _to_engine_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's messages as the engine's Jinja renderer takes them (calls shown as text)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content", "") or ""
        calls = message.get("tool_calls") or []
        if calls:
            rendered = "".join(
                f"{OPEN}\n"
                + json.dumps(
                    {"name": c["function"]["name"], "arguments": c["function"].get("arguments", {})}
                )
                + f"\n{CLOSE}"
                for c in calls
            )
            content = f"{content}\n{rendered}".strip()
        out.append({"role": message.get("role", "user"), "content": content})
    return out
