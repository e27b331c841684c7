"""Anthropic's Messages API translated to the native chat service and back.

Requests become a native ``ChatRequest`` (content blocks to messages, ``tool_use`` blocks to
tool calls, ``tool_result`` blocks to ``tool`` messages); the native chat chunks become either
one ``message`` object or the Messages API's stream of typed events.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from collections.abc import AsyncIterator
from typing import Any

from nexus.api.anthropic import (
    CountTokensRequest,
    MessageParam,
    MessagesRequest,
    ToolChoiceParam,
    ToolParam,
)
from nexus.api.ollama import ChatRequest
from nexus.errors import BadRequest
from nexus.inference.service import Outcome
from nexus.streams import aclose

Chunk = dict[str, Any]
Event = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
#: Block types that carry nothing a local model can use; they are dropped, not refused.
_IGNORED_BLOCKS = frozenset({"redacted_thinking"})


def new_id(prefix: str) -> str:
    """An id in Anthropic's style: ``msg_…`` or ``toolu_…`` and 24 random letters/digits."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---- requests -----------------------------------------------------------------------------


def system_text(system: str | list[dict[str, Any]] | None) -> str:
    """The system prompt, from a string or a list of text blocks."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts: list[str] = []
    for block in system:
        if block.get("type") != "text":
            raise BadRequest(
                f"system blocks must be text blocks, not '{block.get('type')}'", param="system"
            )
        texts.append(_text_of(block, "system"))
    return "\n".join(texts)


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text", "")
    if not isinstance(text, str):
        raise BadRequest(f"{where}: a text block's text must be a string", param=where)
    return text


def image_data(block: dict[str, Any], where: str) -> str:
    """The base64 payload of an image block; only base64 sources can be read locally."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest(f"{where}: an image block needs a source", param="messages")
    kind = source.get("type")
    if kind != "base64":
        raise BadRequest(
            f"{where}: image source type '{kind}' is not supported; "
            "send the image as base64 data (source type 'base64')",
            param="messages",
        )
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise BadRequest(f"{where}: the image source has no data", param="messages")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: the image data is not valid base64", param="messages") from None
    return data


def tool_result_content(block: dict[str, Any], where: str) -> tuple[str, list[str]]:
    """A ``tool_result``'s content (a string or text and image blocks) as text plus images."""
    content = block.get("content")
    texts: list[str] = []
    images: list[str] = []
    if content is None:
        pass
    elif isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                texts.append(_text_of(item, "messages"))
            elif kind == "image":
                images.append(image_data(item, where))
            else:
                raise BadRequest(
                    f"{where}: unsupported tool_result content block type '{kind}'",
                    param="messages",
                )
    else:
        raise BadRequest(
            f"{where}: tool_result content must be a string or a list of blocks", param="messages"
        )
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return text, images


def native_messages(system: Any, messages: list[MessageParam]) -> list[dict[str, Any]]:
    """Anthropic's system prompt and turns as native messages.

    A user turn's ``tool_result`` blocks become ``tool`` messages ahead of its text, and take
    their tool's name from the ``tool_use`` block (in an earlier assistant turn) they answer.
    """
    out: list[dict[str, Any]] = []
    prompt = system_text(system)
    if prompt:
        out.append({"role": "system", "content": prompt})
    tool_names: dict[str, str] = {}
    for turn, message in enumerate(messages):
        blocks = (
            [{"type": "text", "text": message.content}]
            if isinstance(message.content, str)
            else message.content
        )
        texts: list[str] = []
        images: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for number, block in enumerate(blocks):
            where = f"messages.{turn}.content.{number}"
            if not isinstance(block, dict):
                raise BadRequest(f"{where}: a content block must be an object", param="messages")
            kind = block.get("type")
            if kind == "text":
                texts.append(_text_of(block, "messages"))
            elif kind == "image":
                images.append(image_data(block, where))
            elif kind == "tool_use":
                calls.append(_native_call(block, where, tool_names))
            elif kind == "tool_result":
                results.append(_native_result(block, where, tool_names))
            elif kind == "thinking":
                thinking.append(str(block.get("thinking") or ""))
            elif kind in _IGNORED_BLOCKS:
                continue
            else:
                raise BadRequest(
                    f"{where}: unsupported content block type '{kind}'", param="messages"
                )
        out.extend(results)
        if texts or images or calls or thinking or not results:
            native: dict[str, Any] = {"role": message.role, "content": "\n".join(texts)}
            if images:
                native["images"] = images
            if calls:
                native["tool_calls"] = calls
            if thinking:
                native["thinking"] = "".join(thinking)
            out.append(native)
    return out


def _native_call(block: dict[str, Any], where: str, tool_names: dict[str, str]) -> dict[str, Any]:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}: a tool_use block needs an id", param="messages")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}: a tool_use block needs a name", param="messages")
    arguments = block.get("input")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}: a tool_use block's input must be an object", param="messages")
    tool_names[call_id] = name
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


def _native_result(block: dict[str, Any], where: str, tool_names: dict[str, str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}: a tool_result block needs a tool_use_id", param="messages")
    text, images = tool_result_content(block, where)
    native: dict[str, Any] = {"role": "tool", "content": text, "tool_call_id": call_id}
    if call_id in tool_names:
        native["tool_name"] = tool_names[call_id]
    if images:
        native["images"] = images
    return native


def native_tools(tools: list[ToolParam] | None) -> list[dict[str, Any]] | None:
    """Anthropic's client tools as native (OpenAI-style) function tools."""
    if not tools:
        return None
    out = []
    for tool in tools:
        if tool.type not in (None, "custom"):
            raise BadRequest(
                f"tool '{tool.name}': server tool type '{tool.type}' is not supported",
                param="tools",
            )
        function: dict[str, Any] = {
            "name": tool.name,
            "parameters": tool.input_schema or {"type": "object", "properties": {}},
        }
        if tool.description:
            function["description"] = tool.description
        out.append({"type": "function", "function": function})
    return out


def tool_choice(choice: ToolChoiceParam | None) -> str | None:
    """Anthropic's ``tool_choice`` as the service's: ``any`` forces some tool, ``tool`` one."""
    if choice is None or choice.type == "auto":
        return None
    if choice.type == "none":
        return "none"
    if choice.type == "any":
        return "required"
    if not choice.name:
        raise BadRequest("tool_choice of type 'tool' needs a name", param="tool_choice")
    return choice.name


EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}


def asks_for_thinking(req: CountTokensRequest | MessagesRequest) -> bool:
    """Whether ``thinking`` or ``output_config.effort`` says anything about reasoning."""
    effort = req.output_config.effort if req.output_config else None
    return req.thinking is not None or (effort or "").strip().lower() in EFFORTS


def think_value(req: CountTokensRequest | MessagesRequest, can_think: bool) -> bool | str | None:
    """``thinking`` (or else ``output_config.effort``) as native ``think``. Honoured only by
    models that can think, as Ollama relaxes it for this API: clients such as Claude Code send
    it to every model."""
    if not can_think:
        return None
    if req.thinking is not None:
        return req.thinking.type != "disabled"
    effort = req.output_config.effort if req.output_config else None
    return EFFORTS.get((effort or "").strip().lower())


def to_native(req: MessagesRequest, *, can_think: bool = False) -> ChatRequest:
    options: dict[str, Any] = dict(req.options or {})
    options["num_predict"] = req.max_tokens
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if req.stop_sequences:
        options["stop"] = list(req.stop_sequences)
    return ChatRequest.model_validate(
        {
            "model": req.model,
            "messages": native_messages(req.system, req.messages),
            "tools": native_tools(req.tools),
            "options": options,
            "stream": True,
            "keep_alive": req.keep_alive,
            "think": think_value(req, can_think),
            "truncate": False,  # an oversized prompt is a 400, never silently cut
        }
    )


def count_request_to_native(req: CountTokensRequest, *, can_think: bool = False) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": req.model,
            "messages": native_messages(req.system, req.messages),
            "tools": native_tools(req.tools),
            "options": req.options,
            "keep_alive": req.keep_alive,
            "think": think_value(req, can_think),
        }
    )


def estimate_input_tokens(native: ChatRequest) -> int:
    """A rough count (four characters a token) for ``message_start``, sent before the prompt
    has been evaluated; ``message_delta`` carries the exact count."""
    chars = sum(len(m.content) + len(m.thinking or "") for m in native.messages)
    for message in native.messages:
        for call in message.tool_calls or ():
            chars += len(call.function.name) + len(json.dumps(call.function.arguments))
    if native.tools:
        chars += len(json.dumps(native.tools))
    return max(1, chars // 4)


# ---- responses ----------------------------------------------------------------------------


def usage(final: Chunk) -> dict[str, int]:
    return {
        "input_tokens": int(final.get("prompt_eval_count", 0)),
        "output_tokens": int(final.get("eval_count", 0)),
    }


def stop_reason(
    final: Chunk, had_calls: bool, stop_word: str, stop_sequences: list[str]
) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence``; only the caller's own stop sequences count as
    ``stop_sequence`` (a model's built-in stop words end a turn normally)."""
    if had_calls:
        return "tool_use", None
    if final.get("done_reason") == "length":
        return "max_tokens", None
    if stop_word and stop_word in stop_sequences:
        return "stop_sequence", stop_word
    return "end_turn", None


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": new_id("toolu"),
        "name": function.get("name", ""),
        "input": function.get("arguments") or {},
    }


async def message_reply(
    model: str, chunks: AsyncIterator[Chunk], outcome: Outcome, stop_sequences: list[str]
) -> dict[str, Any]:
    """The whole answer as one ``message`` object."""
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    final: Chunk = {}
    try:
        async for chunk in chunks:
            message = chunk.get("message") or {}
            text.append(message.get("content") or "")
            thinking.append(message.get("thinking") or "")
            calls.extend(message.get("tool_calls") or ())
            if chunk.get("done"):
                final = chunk
    finally:
        await aclose(chunks)
    content: list[dict[str, Any]] = []
    if "".join(thinking):
        content.append({"type": "thinking", "thinking": "".join(thinking), "signature": ""})
    body = "".join(text)
    if body or not calls:
        content.append({"type": "text", "text": body})
    content.extend(tool_use_block(call) for call in calls)
    reason, sequence = stop_reason(final, bool(calls), outcome.stop_word, stop_sequences)
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(final),
    }


class MessageStream:
    """Native chat chunks in, the Messages API's stream events out (each a dict whose
    ``type`` is also its SSE event name).

    Content blocks open as output arrives: thinking, then text, and each tool call as a
    ``tool_use`` block whose whole input comes in one ``input_json_delta``.
    """

    def __init__(
        self, model: str, outcome: Outcome, stop_sequences: list[str], input_estimate: int
    ) -> None:
        self.id = new_id("msg")
        self.model = model
        self.outcome = outcome
        self.stop_sequences = stop_sequences
        self.input_estimate = input_estimate
        self.index = -1
        self.open: str | None = None  # the kind of the block now open, if any
        self.pinged = False
        self.calls = 0

    def start(self) -> Event:
        return {
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": self.input_estimate, "output_tokens": 0},
            },
        }

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self.index += 1
        self.open = kind
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        if not self.pinged:
            self.pinged = True
            events.append({"type": "ping"})
        return events

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def feed(self, chunk: Chunk) -> list[Event]:
        events: list[Event] = []
        message = chunk.get("message") or {}
        thinking = message.get("thinking") or ""
        if thinking:
            if self.open != "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
                events += self._begin("thinking", block)
            events.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        text = message.get("content") or ""
        if text:
            if self.open != "text":
                events += self._begin("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": text}))
        for call in message.get("tool_calls") or ():
            block = tool_use_block(call)
            arguments = block["input"]
            events += self._begin("tool_use", {**block, "input": {}})
            partial = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
            events.append(self._delta({"type": "input_json_delta", "partial_json": partial}))
            events += self._close()
            self.calls += 1
        if chunk.get("done"):
            events += self.finish(chunk)
        return events

    def finish(self, final: Chunk) -> list[Event]:
        events: list[Event] = []
        if self.index < 0:  # nothing was generated: still answer with one (empty) text block
            events += self._begin("text", {"type": "text", "text": ""})
        events += self._close()
        reason, sequence = stop_reason(
            final, self.calls > 0, self.outcome.stop_word, self.stop_sequences
        )
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage(final),
            }
        )
        events.append({"type": "message_stop"})
        return events

    async def events(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Event]:
        yield self.start()
        try:
            async for chunk in chunks:
                for event in self.feed(chunk):
                    yield event
        finally:
            await aclose(chunks)
