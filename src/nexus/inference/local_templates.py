"""A GGUF's Jinja chat template rendered in this process instead of by the engine, once it has
proved to render what the engine renders.

The engine renders a model's Jinja template with llama.cpp's own Jinja engine (one round trip
and about a millisecond per chat request). Here the same template renders in Python: for each
template, the first ``CHECKS`` requests are rendered both ways and the engine's text is used;
when all matched, later requests render here only. A template that does not compile, fails, or
ever rendered differently stays with the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nexus.runner.client import EngineClient
from nexus.template.jinja import JinjaChatTemplate, TemplateError

log = logging.getLogger(__name__)

CHECKS = 3
MAX_TEMPLATES = 64


@dataclass
class _Template:
    compiled: JinjaChatTemplate | None
    matched: int = 0
    refused: bool = False

    @property
    def trusted(self) -> bool:
        return not self.refused and self.matched >= CHECKS


class LocalTemplates:
    """Per template source and special tokens: whether it renders here, and how."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str, str], _Template] = {}

    def _entry(self, key: tuple[str, str, str]) -> _Template:
        entry = self._templates.get(key)
        if entry is None:
            try:
                compiled: JinjaChatTemplate | None = JinjaChatTemplate(key[0])
            except TemplateError:
                compiled = None
            entry = _Template(compiled, refused=compiled is None)
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()
            self._templates[key] = entry
        return entry

    async def render(
        self,
        source: str | None,
        client: EngineClient,
        messages: list[dict[str, Any]],
        variables: dict[str, Any] | None,
    ) -> str:
        """The prompt for ``messages``: rendered here where the template has proved itself,
        else by the engine (and compared, while the template is being checked)."""
        if not source:
            return await client.apply_template(messages, template_kwargs=variables)
        bos, eos = await client.special_tokens()
        entry = self._entry((source, bos, eos))
        local = None
        if entry.compiled is not None and not entry.refused:
            try:
                local = entry.compiled.render(
                    messages, bos_token=bos, eos_token=eos, variables=variables
                )
            except Exception:  # a template may raise anything; the engine then decides
                entry.refused = True
        if local is not None and entry.trusted:
            return local
        text = await client.apply_template(messages, template_kwargs=variables)
        if local is not None and not entry.refused:
            if local == text:
                entry.matched += 1
            else:
                entry.refused = True
                log.info("chat template rendered differently here; the engine renders it")
        return text
