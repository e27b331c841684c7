"""A GGUF's Jinja chat template rendered in this process instead of by the engine, once it has
proved to render what the engine renders.

The engine renders a model's Jinja template with llama.cpp's own Jinja engine: a round trip of
about a millisecond before every chat request's first token. Here the same template renders
with ``jinja2`` inside the bounds of ``nexus.template.jinja`` (a screened syntax, a sandbox, a
deadline, memory and output caps), and only for conversations up to ``MAX_TEXT`` characters
and ``MAX_MESSAGES`` messages. For each template and shape of conversation (the roles first
and last, the roles present, the template variables), the first ``CHECKS`` requests render
both ways and the engine's text is used; when all matched, later ones render here only, and
every ``RECHECK_EVERY``-th is compared again. A template that does not compile, passes a
bound, fails, or ever renders differently stays with the engine; one that refuses its input
(``raise_exception``) leaves that request to the engine, which then says why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from nexus.runner.client import EngineClient
from nexus.template.jinja import JinjaChatTemplate, TemplateError, TemplateRaised

log = logging.getLogger(__name__)

CHECKS = 3
RECHECK_EVERY = 64
MAX_TEXT = 64 << 10
MAX_MESSAGES = 256
MAX_TEMPLATES = 64

Key = tuple[str, str, str]


@dataclass
class _Checks:
    matched: int = 0
    used: int = 0


def _shape(messages: list[dict[str, Any]], variables: dict[str, Any] | None) -> str:
    roles = [str(m.get("role", "")) for m in messages]
    ends = [roles[0], roles[-1]] if roles else []
    return json.dumps([ends, sorted(set(roles)), variables], sort_keys=True, default=str)


def _small(messages: list[dict[str, Any]]) -> bool:
    if len(messages) > MAX_MESSAGES:
        return False
    size = 0
    for message in messages:
        for value in message.values():
            size += len(value) if isinstance(value, str) else MAX_TEXT + 1
    return size <= MAX_TEXT


class LocalTemplates:
    """Per template source and special tokens: whether it renders here, and how."""

    def __init__(self) -> None:
        #: Compiled templates; ``None`` for one that stays with the engine.
        self._templates: dict[Key, JinjaChatTemplate | None] = {}
        self._checks: dict[tuple[Key, str], _Checks] = {}

    def _template(self, key: Key) -> JinjaChatTemplate | None:
        if key in self._templates:
            return self._templates[key]
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()
            self._checks.clear()
        try:
            compiled: JinjaChatTemplate | None = JinjaChatTemplate(key[0])
        except TemplateError as exc:
            self._refuse(key, str(exc))
            return None
        self._templates[key] = compiled
        return compiled

    def _refuse(self, key: Key, why: str) -> None:
        self._templates[key] = None
        log.info("chat template stays with the engine: %s", why)

    def _checks_for(self, key: Key, shape: str) -> _Checks:
        checks = self._checks.get((key, shape))
        if checks is None:
            if len(self._checks) >= MAX_TEMPLATES * 16:
                self._checks.clear()
            checks = self._checks[(key, shape)] = _Checks()
        return checks

    async def render(
        self,
        source: str | None,
        client: EngineClient,
        messages: list[dict[str, Any]],
        variables: dict[str, Any] | None,
    ) -> str:
        """The prompt for ``messages``: rendered here where the template has proved itself,
        else by the engine (and compared, while the template is being checked)."""
        if not source or not _small(messages):
            return await client.apply_template(messages, template_kwargs=variables)
        bos, eos = await client.special_tokens()
        key = (source, bos, eos)
        compiled = self._template(key)
        if compiled is None:
            return await client.apply_template(messages, template_kwargs=variables)
        checks = self._checks_for(key, _shape(messages, variables))
        local: str | None = None
        try:
            local = compiled.render(messages, bos_token=bos, eos_token=eos, variables=variables)
        except TemplateRaised:
            pass  # this input is refused: the engine says how
        except TemplateError as exc:  # a bound passed, or the template failed
            self._refuse(key, str(exc))
        if local is not None and checks.matched >= CHECKS:
            checks.used += 1
            if checks.used % RECHECK_EVERY:
                return local
        text = await client.apply_template(messages, template_kwargs=variables)
        if local is not None:
            if local == text:
                checks.matched += 1
            else:
                self._refuse(key, "it renders differently here")
        return text
