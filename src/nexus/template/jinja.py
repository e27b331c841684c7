"""Chat templates written in Jinja (a GGUF's ``tokenizer.chat_template``), rendered in this
process the way Hugging Face's ``transformers`` renders them: a sandbox, ``trim_blocks`` and
``lstrip_blocks``, loop controls, ``raise_exception``, ``strftime_now`` and a ``tojson`` that
keeps non-ASCII text as it is."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["JinjaChatTemplate", "TemplateError"]


def _raise(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


class JinjaChatTemplate:
    """One compiled template; ``TemplateError`` when it does not compile or render."""

    def __init__(self, source: str) -> None:
        self.template = _environment().from_string(source)

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        bos_token: str,
        eos_token: str,
        variables: dict[str, Any] | None = None,
    ) -> str:
        return self.template.render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            **(variables or {}),
        )
