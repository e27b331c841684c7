"""Tool calls: describing tools to models whose template cannot, and reading calls back.

Model families write calls in different shapes:

* Hermes, Qwen 2.5, SmolLM2 and most ChatML models: ``<tool_call>{"name": ..., "arguments":
  ...}</tool_call>`` (several JSON objects, or a JSON list, may share one tag; Qwen3-Coder
  writes ``<function=name><parameter=key>value</parameter></function>`` inside instead).
  This is also what :func:`tools_system_prompt` teaches models without a tool-aware template.
* Llama 3.1/3.2: the whole reply is ``{"name": ..., "parameters": {...}}`` (more calls may
  follow, separated by ``;`` or new lines), optionally after ``<|python_tag|>``.
* Mistral: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]``, or in newer models
  ``[TOOL_CALLS]name[ARGS]{...}`` (with an optional ``[CALL_ID]id`` before ``[ARGS]``).
* Phi-4-mini (and FireFunction): ``functools[{"name": ..., "arguments": {...}}]``.
* Gemma: a ```` ```tool_code ```` block holding Python calls ``name(key=value)``.

The format is chosen per model (:func:`call_format_for`): from the text a Go template writes
before a message's tool calls, as Ollama does; else from markers in the GGUF's Jinja chat
template or the architecture; else the generic ``<tool_call>`` format.

The parser works on the stream: text that cannot be part of a call goes out at once; a call
is held until it is complete. A call that turns out malformed goes out as plain text.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import string
from dataclasses import dataclass
from functools import lru_cache
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


def _make_call(name: str, arguments: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "id": tool_call_id(),
        "function": {"index": index, "name": name, "arguments": arguments},
    }


def _as_arguments(value: Any) -> dict[str, Any] | None:
    """Arguments as an object: a JSON string holding one is decoded, nothing is ``{}``."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


# Keys a bare JSON reply may have and still be read as a call; anything else is an answer.
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "function", "id"})


def _call_parts(data: Any, *, strict: bool) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of one call object, in any of the shapes models write."""
    if not isinstance(data, dict):
        return None
    if strict and not set(data) <= _CALL_KEYS:
        return None
    inner = data.get("function")
    if isinstance(inner, dict) and "name" not in data:  # OpenAI's {"function": {...}}
        data = inner
    name = data.get("name")
    if not isinstance(name, str) or not name:
        return None
    if strict and "arguments" not in data and "parameters" not in data:
        return None
    arguments = _as_arguments(data["arguments"] if "arguments" in data else data.get("parameters"))
    return None if arguments is None else (name, arguments)


def parse_call(text: str, index: int) -> dict[str, Any] | None:
    """Turn one call's JSON into Ollama's tool call (arguments as an object)."""
    try:
        data = json.loads(text.strip())
    except ValueError:
        return None
    parts = _call_parts(data, strict=False)
    return None if parts is None else _make_call(parts[0], parts[1], index)


# ----------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class Tag:
    """How one kind of call starts, ends and what it holds.

    ``close`` ends the call; without one the call ends where its body does (a JSON value,
    or Mistral's ``name[ARGS]{...}``). ``body`` is ``"json"`` (JSON objects, or lists of
    them), ``"mistral"`` (JSON, or ``name[CALL_ID]id[ARGS]{...}``) or ``"python"``
    (``name(key=value)`` lines). With ``chain``, more bare JSON calls may follow it.
    """

    open: str
    close: str | None = None
    body: str = "json"
    chain: bool = False


@dataclass(frozen=True)
class CallFormat:
    """The tags a model's calls may start with; with ``bare_json`` a reply that begins with
    a JSON object (or a list of objects) shaped like a call is read as calls too."""

    name: str
    tags: tuple[Tag, ...] = ()
    bare_json: bool = False


HERMES_TAG = Tag(OPEN, CLOSE)
PYTHON_TAG = Tag("<|python_tag|>", chain=True)
MISTRAL_TAG = Tag("[TOOL_CALLS]", body="mistral")
FUNCTOOLS_TAG = Tag("functools")
TOOL_CODE_TAG = Tag("```tool_code", "```", body="python")
PHI_TAG = Tag("<|tool_call|>", "<|/tool_call|>")

#: What Nexus's own tools prompt teaches, plus the bare JSON small models often answer with.
GENERIC = CallFormat("generic", (HERMES_TAG,), bare_json=True)
HERMES = CallFormat("hermes", (HERMES_TAG,))
LLAMA = CallFormat("llama", (PYTHON_TAG,), bare_json=True)
MISTRAL = CallFormat("mistral", (MISTRAL_TAG,))
FUNCTOOLS = CallFormat("functools", (FUNCTOOLS_TAG,))
GEMMA = CallFormat("gemma", (TOOL_CODE_TAG,), bare_json=True)
PHI = CallFormat("phi", (PHI_TAG, FUNCTOOLS_TAG))


def _with_generic(fmt: CallFormat) -> CallFormat:
    """``fmt`` that also reads the generic format (what Nexus's tools prompt asks for)."""
    tags = fmt.tags + tuple(t for t in GENERIC.tags if t not in fmt.tags)
    return CallFormat(fmt.name, tags, bare_json=True)


def _closing_tag(tag: str) -> str | None:
    """The closing tag of an XML-like tag: ``<x>`` → ``</x>``, ``<|x|>`` → ``<|/x|>``."""
    match = re.fullmatch(r"<(\|?)([A-Za-z_][\w.-]*)(\|?)>", tag)
    if match is None:
        return None
    left, name, right = match.groups()
    return f"<{left}/{name}{right}>"


@lru_cache(maxsize=64)
def format_for_tag(tag: str) -> CallFormat:
    """The format for the tag Ollama derives from a Go template (``"{"`` when the template
    writes the call's JSON with nothing before it)."""
    tag = tag.strip()
    if tag in ("{", "["):
        return LLAMA
    if "[TOOL_CALLS]" in tag:
        return MISTRAL
    if PYTHON_TAG.open in tag:
        return LLAMA
    if OPEN in tag:
        return HERMES
    if "functools" in tag:
        return FUNCTOOLS
    if "tool_code" in tag:
        return GEMMA
    if tag.endswith("["):  # the list's bracket belongs to the JSON that follows
        tag = tag[:-1].rstrip()
    return CallFormat(f"tag {tag}", (Tag(tag, _closing_tag(tag)),))


def tag_from_template_text(text: str) -> str:
    """Ollama's rule: the text before any ``{`` (the call's JSON), trimmed; ``"{"`` if none."""
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


@lru_cache(maxsize=64)
def format_for_jinja(template: str) -> CallFormat | None:
    """The format a GGUF's Jinja chat template shows its family uses, if it shows one."""
    if "[TOOL_CALLS]" in template:
        return MISTRAL
    if OPEN in template:
        return HERMES
    if "functools" in template:
        return FUNCTOOLS
    if PHI_TAG.open in template or "<|tool|>" in template:
        return PHI
    if PYTHON_TAG.open in template or "<|start_header_id|>" in template:
        return LLAMA
    if "tool_code" in template:
        return GEMMA
    return None


_ARCHITECTURES = {
    "llama": LLAMA,
    "mistral": MISTRAL,
    "mistral3": MISTRAL,
    "gemma3": GEMMA,
    "phi3": PHI,
    "qwen2": HERMES,
    "qwen3": HERMES,
}


def call_format_for(model: Model) -> CallFormat:
    """The format of the calls this model writes.

    A Go template that shows tool calls decides alone, as in Ollama. Otherwise the model's
    prompt comes from the GGUF's Jinja template with Nexus's tools prompt (which asks for
    ``<tool_call>``), so the family's own format, found from the Jinja template or else the
    architecture, is read alongside the generic one.
    """
    if model.template is not None:
        text = model.template.tool_call_text()
        if text is not None:
            return format_for_tag(tag_from_template_text(text))
    family: CallFormat | None = None
    if model.gguf.chat_template:
        family = format_for_jinja(model.gguf.chat_template)
    else:
        family = _ARCHITECTURES.get(model.gguf.architecture)
    return GENERIC if family is None else _with_generic(family)


def tool_parser_for(model: Model) -> ToolCallParser:
    """The parser for the tool-call format this model writes."""
    return ToolCallParser(call_format_for(model))


# ----------------------------------------------------------------------------- scanning

_INCOMPLETE = -1
_INVALID = -2
_PAIRS = {"{": "}", "[": "]"}


class _JsonScan:
    """Finds where the JSON object/array opening at ``text[start]`` ends.

    While a call streams in, its text only grows: the scan resumes where it stopped (same
    ``start``), so reading a long call token by token stays linear.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self, start: int = -1) -> None:
        self.start = self.pos = start
        self.stack: list[str] = []
        self.in_string = self.escaped = False

    def end(self, text: str, start: int) -> int:
        """End (exclusive) of the value; ``_INCOMPLETE`` while it is still open,
        ``_INVALID`` when its brackets do not match."""
        if start != self.start or self.pos > len(text):
            self.reset(start)
        stack = self.stack
        in_string, escaped = self.in_string, self.escaped
        for i in range(self.pos, len(text)):
            c = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in _PAIRS:
                stack.append(_PAIRS[c])
            elif c in "}]":
                if not stack or stack.pop() != c:
                    self.reset()
                    return _INVALID
                if not stack:
                    self.reset()
                    return i + 1
        self.pos, self.in_string, self.escaped = len(text), in_string, escaped
        return _INCOMPLETE


def _json_end(text: str, start: int, scan: _JsonScan | None = None) -> int:
    return (scan or _JsonScan()).end(text, start)


def _skip(text: str, i: int, chars: str = " \t\r\n") -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _could_start_call(text: str) -> bool | None:
    """Whether bare JSON ``text`` (starting with ``{`` or ``[``) can be a call: its first
    key must be one a call object has. ``None`` while too little is there to tell. Lets
    JSON that is no call go out at once."""
    i = 0
    if text[0] == "[":
        i = _skip(text, 1)
        if i == len(text):
            return None
        if text[i] != "{":
            return False
    i = _skip(text, i + 1)
    if i == len(text):
        return None
    if text[i] != '"':
        return False
    end = text.find('"', i + 1)
    if end < 0:
        key = text[i + 1 :]
        return None if any(k.startswith(key) for k in _CALL_KEYS) else False
    return text[i + 1 : end] in _CALL_KEYS


def _json_calls(text: str, *, strict: bool) -> list[tuple[str, dict[str, Any]]] | None:
    """Calls from JSON objects (or lists of objects) separated by spaces, ``,`` or ``;``."""
    decoder = json.JSONDecoder()
    calls: list[tuple[str, dict[str, Any]]] = []
    i = _skip(text, 0)
    while i < len(text):
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return None
        for item in value if isinstance(value, list) else [value]:
            parts = _call_parts(item, strict=strict)
            if parts is None:
                return None
            calls.append(parts)
        i = _skip(text, i, " \t\r\n,;")
    return calls or None


_FUNCTION_RE = re.compile(r"<function=([^>\s]+)>(.*?)</function>", re.DOTALL)
_PARAMETER_RE = re.compile(r"<parameter=([^>\s]+)>(.*?)</parameter>", re.DOTALL)


def _xml_calls(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """Calls written as ``<function=name><parameter=key>value</parameter></function>``
    (Qwen3-Coder and later Qwen models, inside ``<tool_call>``). A value that reads as JSON
    is taken as such, anything else as a string."""
    calls: list[tuple[str, dict[str, Any]]] = []
    at = 0
    for match in _FUNCTION_RE.finditer(text):
        if text[at : match.start()].strip():
            return None
        at = match.end()
        arguments: dict[str, Any] = {}
        inner = 0
        for param in _PARAMETER_RE.finditer(match.group(2)):
            if match.group(2)[inner : param.start()].strip():
                return None
            inner = param.end()
            raw = param.group(2).removeprefix("\n").removesuffix("\n")
            try:
                arguments[param.group(1)] = json.loads(raw)
            except ValueError:
                arguments[param.group(1)] = raw
        if match.group(2)[inner:].strip():
            return None
        calls.append((match.group(1), arguments))
    if text[at:].strip():
        return None
    return calls or None


def _python_calls(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """Calls from Python call expressions with keyword arguments, one per statement."""
    try:
        tree = ast.parse(text.strip())
    except (SyntaxError, ValueError):
        return None
    calls: list[tuple[str, dict[str, Any]]] = []
    for stmt in tree.body:
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        # print(default_api.f(...)) is how some Gemma prompts teach it.
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Call)
        ):
            node = node.args[0]
        if not isinstance(node, ast.Call) or node.args:
            return None
        if isinstance(node.func, ast.Name):
            name = node.func.id
        elif isinstance(node.func, ast.Attribute):
            name = node.func.attr
        else:
            return None
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                return None
            try:
                arguments[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
        calls.append((name, _jsonable(arguments)))
    return calls or None


def _jsonable(value: Any) -> Any:
    """Python literals as JSON values (tuples and sets become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, complex):
        return str(value)
    return value


_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")
_ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_ARGS = "[ARGS]"
_CALL_ID = "[CALL_ID]"


def _mistral_call(
    text: str, scan: _JsonScan | None = None
) -> tuple[int, list[tuple[str, dict[str, Any]]] | None]:
    """``name[CALL_ID]id[ARGS]{...}`` at the start of ``text``: (end, calls), with end
    ``_INCOMPLETE`` while more text is needed, ``_INVALID`` when it is not one."""
    i = _skip(text, 0)
    start = i
    while i < len(text) and text[i] in _NAME_CHARS:
        i += 1
    if i == len(text):
        return _INCOMPLETE, None
    if i == start:
        return _INVALID, None
    name = text[start:i]
    rest = text[i:]
    if rest.startswith(_CALL_ID):
        i += len(_CALL_ID)
        while i < len(text) and text[i] in _ID_CHARS:
            i += 1
        rest = text[i:]
    elif _CALL_ID.startswith(rest):
        return _INCOMPLETE, None
    if not rest.startswith(_ARGS):
        return (_INCOMPLETE if _ARGS.startswith(rest) else _INVALID), None
    i = _skip(text, i + len(_ARGS))
    if i == len(text):
        return _INCOMPLETE, None
    if text[i] != "{":
        return _INVALID, None
    end = _json_end(text, i, scan)
    if end < 0:
        return end, None
    try:
        arguments = _as_arguments(json.loads(text[i:end]))
    except ValueError:
        return _INVALID, None
    if arguments is None:
        return _INVALID, None
    return end, [(name, arguments)]


# ----------------------------------------------------------------------------- the parser

_START, _TEXT, _BODY = "start", "text", "body"


class ToolCallParser:
    """Feed generated text; get back (content to emit, completed tool calls).

    States: *start* (at the beginning, or right after a call: separators are held while it
    is open whether a call follows), *text* (plain text; only a possible tag's beginning is
    held) and *body* (inside a call, held until it ends).
    """

    def __init__(self, fmt: CallFormat = GENERIC) -> None:
        self.format = fmt
        self._pending = ""
        self._state = _START
        self._json_next = fmt.bare_json  # in *start*: may a bare JSON call come next?
        self._separators = " \t\r\n"
        self._tag: Tag | None = None  # in *body*: the tag it opened with; None: bare JSON
        self._opened = ""  # in *body*: the text that opened it, given back if it fails
        self._scan = _JsonScan()  # in *body*: how far its JSON has been scanned
        self._calls = 0

    # -- public interface

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        self._pending += text
        out: list[str] = []
        calls: list[dict[str, Any]] = []
        while self._pending and self._step(out, calls):
            pass
        return "".join(out), calls

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """End of output: an unclosed call is read if what it holds is whole, else kept as
        text; separators left after a call are dropped."""
        out: list[str] = []
        calls: list[dict[str, Any]] = []
        while self._pending and self._step(out, calls, final=True):
            pass
        rest, self._pending = self._pending, ""
        if self._state == _BODY:
            found = self._read_body(rest)
            if found is not None:
                calls.extend(self._emit(found))
            else:
                out.append(self._opened + rest)
        elif self._state == _START and not rest.strip(self._separators) and self._calls:
            pass
        else:
            out.append(rest)
        self._state = _TEXT
        return "".join(out), calls

    # -- states

    def _step(self, out: list[str], calls: list[dict[str, Any]], final: bool = False) -> bool:
        """Advance once; False when more text is needed to decide anything."""
        if self._state == _START:
            return self._step_start(final)
        if self._state == _TEXT:
            return self._step_text(out, final)
        return self._step_body(out, calls)

    def _step_start(self, final: bool) -> bool:
        text = self._pending
        i = _skip(text, 0, self._separators)
        if i == len(text):
            return False
        rest = text[i:]
        for tag in self.format.tags:
            if rest.startswith(tag.open):
                self._open_body(tag, text[:i] + tag.open, i + len(tag.open))
                return True
        if self._json_next and rest[0] in "{[":
            verdict = _could_start_call(rest)
            if verdict:
                self._open_body(None, text[:i], i)
                return True
            if verdict is None and not final:
                return False
        if not final and any(tag.open.startswith(rest) for tag in self.format.tags):
            return False
        self._state = _TEXT
        return True

    def _step_text(self, out: list[str], final: bool) -> bool:
        text = self._pending
        first: tuple[int, Tag] | None = None
        for tag in self.format.tags:
            at = text.find(tag.open)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, tag)
        if first is not None:
            at, tag = first
            out.append(text[:at])
            self._open_body(tag, tag.open, at + len(tag.open))
            return True
        keep = (
            0
            if final
            else max((_partial_prefix(text, t.open) for t in self.format.tags), default=0)
        )
        out.append(text[: len(text) - keep])
        self._pending = text[len(text) - keep :]
        return False

    def _step_body(self, out: list[str], calls: list[dict[str, Any]]) -> bool:
        tag, text = self._tag, self._pending
        if tag is not None and tag.close is not None:
            end = text.find(tag.close)
            if end < 0:
                return False
            found = self._read_body(text[:end])
            self._pending = text[end + len(tag.close) :]
            if found is None:
                out.append(self._opened + text[:end] + tag.close)
                self._state = _TEXT
                return True
            calls.extend(self._emit(found))
            self._after_call(chain=tag.chain)
            return True
        if tag is not None and tag.body == "mistral" and text.lstrip()[:1] not in ("", "{", "["):
            end, parts = _mistral_call(text, self._scan)
        else:
            end, parts = self._json_value(text, strict=tag is None)
        if end == _INCOMPLETE:
            return False
        if end == _INVALID or parts is None:
            # Not a call after all: the opening goes out as text, the rest is read again
            # (a bare JSON value that is no call goes out whole).
            if tag is None and end >= 0:
                out.append(self._opened + text[:end])
                self._pending = text[end:]
            else:
                out.append(self._opened)
            self._state = _TEXT
            return True
        self._pending = text[end:]
        calls.extend(self._emit(parts))
        self._after_call(chain=tag is None or tag.chain)
        return True

    # -- helpers

    def _json_value(
        self, text: str, *, strict: bool
    ) -> tuple[int, list[tuple[str, dict[str, Any]]] | None]:
        i = _skip(text, 0)
        if i == len(text):
            return _INCOMPLETE, None
        if text[i] not in "{[":
            return _INVALID, None
        end = _json_end(text, i, self._scan)
        if end < 0:
            return end, None
        return end, _json_calls(text[i:end], strict=strict)

    def _read_body(self, text: str) -> list[tuple[str, dict[str, Any]]] | None:
        """The calls a whole body holds (the text between a tag and its end), if any."""
        tag = self._tag
        if tag is not None and tag.body == "python":
            return _python_calls(text)
        if tag is not None and tag.body == "mistral" and text.lstrip()[:1] not in ("{", "["):
            end, parts = _mistral_call(text)
            return parts if end >= 0 and not text[end:].strip() else None
        calls = _json_calls(text, strict=tag is None)
        if calls is None and tag is not None and tag.close is not None:
            calls = _xml_calls(text)
        return calls

    def _open_body(self, tag: Tag | None, opened: str, consumed: int) -> None:
        self._scan = _JsonScan()
        self._state = _BODY
        self._tag = tag
        self._opened = opened
        self._pending = self._pending[consumed:]

    def _after_call(self, *, chain: bool) -> None:
        self._state = _START
        self._json_next = chain
        self._separators = " \t\r\n;," if chain else " \t\r\n"

    def _emit(self, found: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        calls = []
        for name, arguments in found:
            calls.append(_make_call(name, arguments, self._calls))
            self._calls += 1
        return calls


def _partial_prefix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
