"""Tool calls: describing tools to models whose template cannot, and reading calls back.

Models that know tool calling write calls as ``<tool_call>{"name": ..., "arguments": ...}
</tool_call>`` (Hermes, Qwen, SmolLM2 and most ChatML-family models). The parser works on the
stream: text that cannot be part of a call goes out at once; a call is held until it closes.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.inference.models import Model

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def tool_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def tools_system_prompt(tools: list[dict[str, Any]]) -> str:
    """A system prompt that teaches a model without native tool support the call format."""
    listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "You are a function calling AI model. You may call one or more functions to assist "
        "with the user query. The available functions are described inside <tools></tools>:\n"
        f"<tools>\n{listing}\n</tools>\n"
        "To call a function, reply with a JSON object holding the function name and its "
        "arguments inside <tool_call></tool_call> tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def parse_call(text: str, index: int) -> dict[str, Any] | None:
    """Turn one call's JSON into Ollama's tool call (arguments as an object)."""
    try:
        data = json.loads(text.strip())
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {
        "id": tool_call_id(),
        "function": {"index": index, "name": data["name"], "arguments": arguments},
    }


class ToolCallParser:
    """Feed generated text; get back (content to emit, completed tool calls)."""

    def __init__(self) -> None:
        self._pending = ""
        self._in_call = False
        self._calls = 0

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        self._pending += text
        out: list[str] = []
        calls: list[dict[str, Any]] = []
        while self._pending:
            if self._in_call:
                end = self._pending.find(CLOSE)
                if end < 0:
                    break
                body = self._pending[:end]
                self._pending = self._pending[end + len(CLOSE) :]
                self._in_call = False
                call = parse_call(body, self._calls)
                if call is None:
                    out.append(OPEN + body + CLOSE)
                else:
                    calls.append(call)
                    self._calls += 1
                continue
            start = self._pending.find(OPEN)
            if start >= 0:
                out.append(self._pending[:start])
                self._pending = self._pending[start + len(OPEN) :]
                self._in_call = True
                continue
            keep = _partial_prefix(self._pending, OPEN)
            out.append(self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return "".join(out), calls

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """End of output: an unclosed call is parsed if its JSON is whole, else kept as text."""
        rest, self._pending = self._pending, ""
        if self._in_call:
            self._in_call = False
            call = parse_call(rest, self._calls)
            if call is not None:
                self._calls += 1
                return "", [call]
            return OPEN + rest, []
        return rest, []


def _partial_prefix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def tool_parser_for(model: Model) -> ToolCallParser:
    """The parser for the tool-call format this model writes."""
    return ToolCallParser()
