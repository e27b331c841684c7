"""A conversation with one model: its settings, and the requests that stream answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.display import AnswerWriter
from nexus.cli.errors import CLIError
from nexus.cli.interrupt import StopOnInterrupt
from nexus.cli.stats import summary_lines

Think = bool | str | None


@dataclass
class Session:
    """What ``run`` and the interactive chat send with each request."""

    model: str
    parent_model: str = ""
    #: The model's own MESSAGE lines, kept so that ``/save`` writes them back.
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    #: ``""``, ``"json"`` or a JSON schema as text.
    format: str = ""
    keep_alive: str | None = None
    think: Think = None
    think_set: bool = False
    hide_thinking: bool = False
    word_wrap: bool = True
    verbose: bool = False
    multimodal: bool = False

    def copy(self) -> Session:
        return replace(
            self,
            loaded_messages=list(self.loaded_messages),
            messages=list(self.messages),
            options=dict(self.options),
        )

    def apply_show(self, info: dict[str, Any]) -> None:
        """Take what the session needs from /api/show: parent, messages, capabilities."""
        details = info.get("details") or {}
        self.parent_model = str(details.get("parent_model") or "")
        self.loaded_messages = list(info.get("messages") or [])
        capabilities = info.get("capabilities") or []
        self.multimodal = "vision" in capabilities or bool(info.get("projector_info"))
        if not self.think_set:
            self.think = True if "thinking" in capabilities else None

    def base_request(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.options:
            body["options"] = dict(self.options)
        if self.format:
            body["format"] = parse_format(self.format)
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.think is not None:
            body["think"] = self.think
        return body


def parse_format(text: str) -> str | dict[str, Any]:
    """``json``, or a JSON schema given as text."""
    if text == "json":
        return "json"
    try:
        schema = json.loads(text)
    except ValueError:
        raise CLIError(f'invalid format "{text}": use "json" or a JSON schema') from None
    if not isinstance(schema, dict):
        raise CLIError(f'invalid format "{text}": use "json" or a JSON schema')
    return schema


def load_model(client: Client, ui: Consoles, session: Session) -> None:
    """Load (or, with keep_alive 0, unload) the model, a spinner on stderr meanwhile."""
    wanted = ("model", "keep_alive", "think")
    body = {k: v for k, v in session.base_request().items() if k in wanted}
    with ui.spinner():
        for _ in client.generate(body):
            pass


Picker = Callable[[dict[str, Any]], tuple[str, str]]


def _from_generate(event: dict[str, Any]) -> tuple[str, str]:
    return str(event.get("response") or ""), str(event.get("thinking") or "")


def _from_chat(event: dict[str, Any]) -> tuple[str, str]:
    message = event.get("message") or {}
    return str(message.get("content") or ""), str(message.get("thinking") or "")


@dataclass
class Answer:
    content: str
    thinking: str
    final: dict[str, Any] | None
    cancelled: bool


def stream_answer(
    ui: Consoles, session: Session, events: Iterator[dict[str, Any]], pick: Picker
) -> Answer:
    """Write a streamed answer as it comes; Ctrl-C stops it (the stream is closed)."""
    writer = AnswerWriter(ui, wrap=session.word_wrap, hide_thinking=session.hide_thinking)
    content: list[str] = []
    thinking: list[str] = []
    final: dict[str, Any] | None = None
    with StopOnInterrupt() as guard:
        waiting = ui.start_spinner()
        try:
            while not guard.stopped:
                try:
                    with guard.waiting():
                        event = next(events)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    break
                text, thought = pick(event)
                if text or (thought and not session.hide_thinking):
                    waiting.stop()
                writer.thinking(thought)
                writer.content(text)
                content.append(text)
                thinking.append(thought)
                if event.get("done"):
                    final = event
        finally:
            waiting.stop()
            close = getattr(events, "close", None)
            if close is not None:
                close()
        cancelled = guard.stopped
    writer.close_thinking()
    return Answer("".join(content), "".join(thinking), final, cancelled)


def print_stats(ui: Consoles, final: dict[str, Any] | None) -> None:
    if final is not None:
        for line in summary_lines(final):
            ui.note(line)


def generate_once(client: Client, ui: Consoles, session: Session, prompt: str) -> None:
    """One answer to ``prompt`` from /api/generate (``run MODEL PROMPT``)."""
    body = session.base_request()
    body["prompt"] = prompt
    if session.system:
        body["system"] = session.system
    if session.multimodal:
        from nexus.cli.attachments import attach_images

        body["prompt"], images = attach_images(prompt, ui)
        if images:
            body["images"] = images
    answer = stream_answer(ui, session, client.generate(body), _from_generate)
    if answer.cancelled:
        return
    if prompt:
        ui.write("\n\n")
    if answer.final is not None and session.verbose:
        print_stats(ui, answer.final)


def chat_turn(client: Client, ui: Consoles, session: Session) -> dict[str, Any] | None:
    """Send the conversation to /api/chat; the assistant's message, or ``None`` if stopped."""
    body = session.base_request()
    body["messages"] = session.messages
    answer = stream_answer(ui, session, client.chat(body), _from_chat)
    if answer.cancelled:
        ui.write("\n")
        return None
    if session.messages:
        ui.write("\n\n")
    if session.verbose:
        print_stats(ui, answer.final)
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.thinking:
        message["thinking"] = answer.thinking
    return message
