"""Chat templates written in Jinja (a GGUF's ``tokenizer.chat_template``), rendered in this
process the way Hugging Face's ``transformers`` renders them (``trim_blocks``,
``lstrip_blocks``, loop controls, ``raise_exception``, ``strftime_now``, a ``tojson`` that keeps
non-ASCII text), with bounds for templates nobody here wrote:

- the syntax is screened before compiling (``jinja_screen``);
- the sandbox reaches no attribute of Python's internals, calls only text, list and mapping
  methods that cannot blow up, and the filters listed in ``_SAFE_FILTERS`` (the ones that can grow
  text are capped); repeating text (``*``) is capped and formatting with ``%`` refused;
- a render stops past ``DEADLINE`` seconds of CPU, past ``MEMORY_GROWTH`` bytes of new memory, or
  past ``MAX_OUTPUT`` characters of prompt.

Anything a template does beyond these bounds raises ``TemplateError``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from datetime import datetime
from types import FrameType
from typing import Any

from jinja2.ext import loopcontrols
from jinja2.filters import FILTERS
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from nexus.template.errors import TemplateError
from nexus.template.jinja_screen import screen

__all__ = ["JinjaChatTemplate", "TemplateError", "TemplateRaised"]

#: Longest a render may run, in seconds of this thread's CPU time.
DEADLINE = 0.02
#: New memory (resident size) a render may take.
MEMORY_GROWTH = 16 << 20
#: Seconds between two looks at the memory while rendering: what one thread can allocate and
#: fill in that time (a few megabytes at memory bandwidth) stays well below ``MEMORY_GROWTH``.
MEMORY_LOOK = 100e-6
#: Longest prompt, in characters, a render may produce; and longest single text it may build
#: with a filter or method that grows text.
MAX_OUTPUT = 4 << 20
#: Longest template source compiled here.
MAX_SOURCE = 64 << 10
#: The file name jinja2 gives the code it compiles from a template given as text.
_TEMPLATE_FILE = "<template>"

_SAFE_FILTERS = (
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first", "float", "int",
    "items", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
    "reverse", "round", "safe", "select", "selectattr", "sort", "title", "trim", "unique",
    "upper", "wordcount",
)  # fmt: skip
_METHODS = {
    str: {
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines",
        "lower", "upper", "title", "capitalize", "find", "rfind", "count", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "replace", "join",
    },
    dict: {"items", "keys", "values", "get"},
    list: {"index", "count"},
    tuple: {"index", "count"},
    LoopContext: {"cycle", "changed"},
}  # fmt: skip


def _capped_size(size: int) -> None:
    if size > MAX_OUTPUT:
        raise TemplateError("the template built a text longer than a prompt may be")


def _capped(text: str) -> str:
    _capped_size(len(text))
    return text


class TemplateRaised(TemplateError):
    """The template refused its input itself (``raise_exception``)."""


def _raise(message: str) -> None:
    raise TemplateRaised(str(message)[:500])


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    if indent is not None and not 0 <= int(indent) <= 16:
        raise TemplateError("tojson indent out of range")
    return _capped(
        json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )
    )


def _text_filter(name: str) -> Any:
    """A filter that may grow text, with its result capped."""
    inner = FILTERS[name]

    @functools.wraps(inner)  # keeps what jinja2 passes the filter first
    def capped(*args: Any, **kwargs: Any) -> Any:
        result = inner(*args, **kwargs)
        return _capped(result) if isinstance(result, str) else result

    return capped


def _check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    """Refuse a replacement whose result would pass the cap, before building it."""
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        times = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        _capped_size(len(text) + times * (len(new) - len(old)))


def _check_join(separator: Any) -> None:
    if isinstance(separator, str) and len(separator) > 64:
        raise TemplateError("a join's separator is too long")


def _replace_filter() -> Any:
    inner = FILTERS["replace"]

    @functools.wraps(inner)
    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        _check_replace(str(s), old, new, -1 if count is None else count)
        return inner(eval_ctx, s, old, new, count)

    return replace


def _join_filter() -> Any:
    inner = FILTERS["join"]

    @functools.wraps(inner)
    def join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        _check_join(d)
        return _capped(inner(eval_ctx, value, d, attribute))

    return join


class _ChatSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "%", "**", "/", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        numbers = isinstance(left, int | float) and isinstance(right, int | float)
        if operator == "*" and not numbers:
            text, times = (left, right) if isinstance(left, str) else (right, left)
            if not (isinstance(text, str) and isinstance(times, int)):
                raise TemplateError("only text may be repeated")
            _capped_size(len(text) * max(times, 0))
            return text * times
        if not numbers:
            raise TemplateError(f"'{operator}' is for numbers here")
        if operator == "**" and abs(right) > 64:
            raise TemplateError("exponent out of range")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if obj in _GLOBALS.values():
            return obj(*args, **kwargs)
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        allowed = next((m for kind, m in _METHODS.items() if isinstance(owner, kind)), set())
        if name not in allowed:
            raise TemplateError(f"{name or type(obj).__name__}() is not available here")
        if isinstance(owner, str) and name == "replace":
            _check_replace(owner, *args[:3])
        elif isinstance(owner, str) and name == "join":
            _check_join(owner)
        result = obj(*args, **kwargs)
        return _capped(result) if isinstance(result, str) else result


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt)[:64])


_GLOBALS: dict[str, Any] = {
    "namespace": Namespace,
    "raise_exception": _raise,
    "strftime_now": _strftime_now,
}


def _environment() -> _ChatSandbox:
    env = _ChatSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters = {name: FILTERS[name] for name in _SAFE_FILTERS}
    for name in ("string", "escape", "e"):
        env.filters[name] = _text_filter(name)
    env.filters["replace"] = _replace_filter()
    env.filters["join"] = _join_filter()
    env.filters["tojson"] = _tojson
    env.globals = dict(_GLOBALS)
    return env


class _Budget:
    """A trace function that stops the render it watches past the deadline or memory bound,
    looking before lines of the template's own code run (where its loops are; a call into
    jinja2's or Python's code is not traced inside).

    The deadline is this thread's CPU time: on a busy machine the wall clock also counts the
    time other processes held the core. The wall clock, cheaper to read, says when to look:
    at the deadline, and at the memory every ``MEMORY_LOOK`` seconds (reading it is a system
    call, which on every line had cost a short render five times its own work)."""

    def __init__(self) -> None:
        self.started = time.thread_time()
        now = time.perf_counter()
        self.look = now + DEADLINE
        self.memory = _resident() + MEMORY_GROWTH
        self.memory_look = now + MEMORY_LOOK

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            now = time.perf_counter()
            if now > self.look:
                spent = time.thread_time() - self.started
                if spent > DEADLINE:
                    raise TemplateError(f"the template took longer than {DEADLINE:g} s")
                self.look = now + DEADLINE - spent
            if now > self.memory_look:
                if _resident() > self.memory:
                    raise TemplateError("the template took more memory than a prompt needs")
                self.memory_look = now + MEMORY_LOOK
        return self if frame.f_code.co_filename == _TEMPLATE_FILE else None


_STATM: int | None = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident() -> int:
    """This process's resident memory in bytes (0 where ``/proc`` is not there to say)."""
    global _STATM
    try:
        if _STATM is None:
            _STATM = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(_STATM, 64, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class JinjaChatTemplate:
    """One screened and compiled template; ``TemplateError`` when it does not compile, is
    refused, or fails or passes a bound while rendering."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_SOURCE:
            raise TemplateError("the template is too long to be rendered here")
        env = _environment()
        try:
            tree = env.parse(source)
            screen(tree)
            self.template = env.from_string(tree)
        except TemplateError:
            raise
        except Exception as exc:  # jinja2's errors, and Python's own compiling what it wrote
            raise TemplateError(str(exc)[:500] or type(exc).__name__) from None

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        bos_token: str,
        eos_token: str,
        variables: dict[str, Any] | None = None,
    ) -> str:
        pieces: list[str] = []
        size = 0
        budget = _Budget()
        previous = sys.gettrace()
        sys.settrace(budget)
        try:
            for piece in self.template.generate(
                messages=messages,
                add_generation_prompt=True,
                bos_token=bos_token,
                eos_token=eos_token,
                **(variables or {}),
            ):
                size += len(piece)
                if size > MAX_OUTPUT:
                    raise TemplateError("the template's prompt is longer than a prompt may be")
                pieces.append(piece)
        except TemplateError:
            raise
        except Exception as exc:  # jinja2's errors, and whatever the template's code raised
            raise TemplateError(str(exc)[:500] or type(exc).__name__) from None
        finally:
            sys.settrace(previous)
        return "".join(pieces)
