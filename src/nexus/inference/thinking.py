"""Reasoning split from the answer, as Ollama's thinking parsers split it.

A thinking model writes its reasoning first, between an opening and a closing tag (``<think>``
and ``</think>`` for Qwen3, DeepSeek-R1 and most others), or in the analysis channel of the
Harmony format (gpt-oss). The parsers here take the engine's text piece by piece and hand back
``(thinking, content)`` pieces; whatever follows the reasoning is the answer, where the tool-call
parser and the output format take over.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from nexus.inference.models import Model
    from nexus.inference.prompts import RenderedPrompt

#: ``{{ .Thinking }}`` in a Go template, with the text around it.
_GO_THINKING = re.compile(r"([^\s{}]*)\s*\{\{-?\s*\.Thinking\s*-?\}\}\s*([^\s{}]*)")
_KNOWN_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))
HARMONY_MARKERS = ("<|channel|>", "<|message|>")


class ThinkingParser(Protocol):
    def feed(self, text: str) -> tuple[str, str]: ...

    def finish(self) -> tuple[str, str]: ...


def infer_tags(template_text: str) -> tuple[str, str] | None:
    """The opening and closing tags a template writes around ``.Thinking`` (a Go template) or
    the well-known tags it mentions (a Go or Jinja template), or ``None``."""
    for match in _GO_THINKING.finditer(template_text):
        opening, closing = match.group(1), match.group(2)
        if opening.startswith("<") and closing.startswith("</"):
            return opening, closing
    for opening, closing in _KNOWN_TAGS:
        if opening in template_text and closing in template_text:
            return opening, closing
    return None


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that begins ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


@dataclass
class TagParser:
    """Ollama's ``thinking.Parser``: reasoning between ``opening`` and ``closing``.

    Output that does not open with the tag (after whitespace) is all answer. Whitespace right
    after either tag is dropped, and whitespace before the closing tag is held back until it
    is known not to end the reasoning.
    """

    opening: str
    closing: str
    state: str = "looking"  # looking, thinking, done
    buffer: str = ""
    _eat_space: bool = field(default=False, repr=False)

    def feed(self, text: str) -> tuple[str, str]:
        self.buffer += text
        thinking: list[str] = []
        content: list[str] = []
        while True:
            if self.state == "looking":
                stripped = self.buffer.lstrip()
                if stripped.startswith(self.opening):
                    self.buffer = stripped[len(self.opening) :]
                    self.state, self._eat_space = "thinking", True
                    continue
                if not stripped or self.opening.startswith(stripped):
                    break  # not yet known
                self.state = "done"
                continue
            if self.state == "thinking":
                if self._eat_space:
                    self.buffer = self.buffer.lstrip()
                    if not self.buffer:
                        break
                    self._eat_space = False
                at = self.buffer.find(self.closing)
                if at >= 0:
                    thinking.append(self.buffer[:at].rstrip())
                    self.buffer = self.buffer[at + len(self.closing) :].lstrip()
                    self.state, self._eat_space = "done", not self.buffer
                    continue
                keep = _partial_suffix(self.buffer, self.closing)
                body = self.buffer[: len(self.buffer) - keep]
                trailing = len(body) - len(body.rstrip())
                keep += trailing
                thinking.append(self.buffer[: len(self.buffer) - keep])
                self.buffer = self.buffer[len(self.buffer) - keep :]
                break
            # done
            if self._eat_space:
                self.buffer = self.buffer.lstrip()
                if not self.buffer:
                    break
                self._eat_space = False
            content.append(self.buffer)
            self.buffer = ""
            break
        return "".join(thinking), "".join(content)

    def finish(self) -> tuple[str, str]:
        rest, self.buffer = self.buffer, ""
        if self.state == "thinking":
            return rest.rstrip(), ""
        return "", rest if self.state == "done" or rest.strip() else ""


@dataclass
class HarmonyParser:
    """gpt-oss's Harmony format: the ``analysis`` channel is reasoning, ``final`` (and
    ``commentary``) the answer; headers and control tokens are dropped. Output with no Harmony
    header at all is answer."""

    buffer: str = ""
    channel: str = ""  # "" while a header is read
    header_seen: bool = False

    def feed(self, text: str) -> tuple[str, str]:
        self.buffer += text
        thinking: list[str] = []
        content: list[str] = []
        while self.buffer:
            if self.channel:
                hits = [i for i in (self.buffer.find(t) for t in _HARMONY_TOKENS) if i >= 0]
                end = min(hits) if hits else len(self.buffer)
                if not hits:
                    end -= max(_partial_suffix(self.buffer, t) for t in _HARMONY_TOKENS)
                (thinking if self.channel == "analysis" else content).append(self.buffer[:end])
                self.buffer = self.buffer[end:]
                if not hits:
                    break
                self.channel = ""
                continue
            at = self.buffer.find("<|message|>")
            if at < 0:
                if (
                    not self.header_seen
                    and "<|" not in self.buffer
                    and not self.buffer.endswith("<")
                ):
                    self.channel = "final"  # plain text: no Harmony at all
                    self.header_seen = True
                    continue
                break
            header, self.buffer = self.buffer[:at], self.buffer[at + len("<|message|>") :]
            self.header_seen = True
            name = header.rsplit("<|channel|>", 1)[-1] if "<|channel|>" in header else "final"
            self.channel = re.split(r"[\s<]", name.strip() or "final", maxsplit=1)[0] or "final"
        return "".join(thinking), "".join(content)

    def finish(self) -> tuple[str, str]:
        rest, self.buffer = self.buffer, ""
        if self.channel == "analysis":
            return rest, ""
        return "", rest if self.channel else ""


_HARMONY_TOKENS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>")


def parser_for(template_text: str, prompt: str, think: Any) -> ThinkingParser | None:
    """The reasoning parser for a model's template and the rendered prompt, or ``None`` when
    the request does not think (``think`` false) or the template shows no reasoning format.

    A prompt that already ends with the opening tag (templates that start the reply in
    reasoning) counts as if the model had written it.
    """
    if think is False or think is None:
        return None
    if all(marker in template_text for marker in HARMONY_MARKERS) and "analysis" in template_text:
        return HarmonyParser()
    tags = infer_tags(template_text)
    if tags is None:
        return None
    parser = TagParser(*tags)
    if prompt.rstrip().endswith(tags[0]):
        parser.feed(tags[0])
    return parser


def without_past_thinking(
    messages: list[dict[str, Any]], template_text: str
) -> list[dict[str, Any]]:
    """``messages`` with the ``<think>`` reasoning an assistant message opens with removed, for
    the assistant messages before the last user message of a template that thinks in those
    tags; Ollama leaves earlier reasoning out of the prompt the same way."""
    if infer_tags(template_text) != _KNOWN_TAGS[0]:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if i < last_user and message.get("role") == "assistant" and message.get("content"):
            _, content = TagParser(*_KNOWN_TAGS[0]).feed(str(message["content"]))
            message = {**message, "content": content}
        out.append(message)
    return out


def default_think(model: Model, think: Any) -> Any:
    """A request's ``think`` with Ollama's default: on for models that can think."""
    if think is None and "thinking" in model.capabilities:
        return True
    return think


def thinking_parser(
    model: Model,
    template_text: str | None,
    rendered: RenderedPrompt,
    think: Any,
    body: dict[str, Any],
) -> ThinkingParser | None:
    """The parser for one generation: ``template_text`` (a request's own template) or the
    model's template decides the format. With a constrained output (a format or a forced
    call) there is reasoning only where the prompt opens it (see :func:`staged`); otherwise
    the grammar applies from the first token and the output is all answer."""
    source = template_text or model.template_text or model.gguf.chat_template or ""
    parser = parser_for(source, rendered.text, think)
    if _constrained(body) and not (isinstance(parser, TagParser) and parser.state == "thinking"):
        return None
    return parser


def _constrained(body: dict[str, Any]) -> bool:
    return "grammar" in body or "json_schema" in body


Events = AsyncIterator[dict[str, Any]]


def staged(stream: Callable[[dict[str, Any]], Events], body: dict[str, Any], parser: Any) -> Events:
    """The engine's events for ``body``: as they come, or, for a constrained output after
    reasoning the prompt opened, reasoning first with no constraint (up to the closing tag),
    then the answer under the constraint. Ollama applies a format after thinking the same way.
    """
    if not (_constrained(body) and isinstance(parser, TagParser)):
        return stream(body)
    return _reason_then_answer(stream, body, parser.closing)


async def _reason_then_answer(
    stream: Callable[[dict[str, Any]], Events], body: dict[str, Any], closing: str
) -> Events:
    free = {k: v for k, v in body.items() if k not in ("grammar", "json_schema")}
    free["stop"] = [*(body.get("stop") or ()), closing]
    texts: list[str] = []
    last: dict[str, Any] = {}
    async for event in stream(free):
        texts.append(str(event.get("content", "")))
        if event.get("stop"):
            last = event
            break
        yield event
    closed = last.get("stop_type") == "word" and last.get("stopping_word") == closing
    if not closed and last.get("stop_type") != "eos":
        yield last  # the reasoning took every token, or a request's stop word came
        return
    # reasoning done (or ended without its tag: the constrained answer is still owed)
    reasoned = int((last.get("timings") or {}).get("predicted_n", last.get("tokens_predicted", 0)))
    yield {"content": str(last.get("content", "")) + closing, "tokens": []}
    answer = dict(body)
    answer["prompt"] = _continued(body["prompt"], "".join(texts) + closing)
    limit = int(body.get("n_predict", -1))
    if limit > 0:
        answer["n_predict"] = max(1, limit - reasoned)
    async for event in stream(answer):
        if event.get("stop"):
            event = dict(event)
            timings = dict(event.get("timings") or {})
            timings["predicted_n"] = int(timings.get("predicted_n", 0)) + reasoned
            event["timings"] = timings
            event["tokens_evaluated"] = last.get("tokens_evaluated", event.get("tokens_evaluated"))
        yield event


def _continued(prompt: Any, text: str) -> Any:
    """``prompt`` followed by what the model wrote (llama.cpp reads a list of token ids and
    strings as one prompt)."""
    if isinstance(prompt, str):
        return prompt + text
    if isinstance(prompt, dict):
        return {**prompt, "prompt_string": str(prompt.get("prompt_string", "")) + text}
    return [*prompt, text]


def split_thinking(parser: ThinkingParser | None, event: dict[str, Any]) -> tuple[str, str]:
    """One engine event's text as ``(thinking, content)``; the last event flushes the parser."""
    text = str(event.get("content", ""))
    if parser is None:
        return "", text
    thinking, content = parser.feed(text)
    if event.get("stop"):
        more_thinking, more_content = parser.finish()
        thinking, content = thinking + more_thinking, content + more_content
    return thinking, content


__all__ = [
    "HarmonyParser",
    "TagParser",
    "ThinkingParser",
    "default_think",
    "infer_tags",
    "parser_for",
    "split_thinking",
    "staged",
    "thinking_parser",
    "without_past_thinking",
]
