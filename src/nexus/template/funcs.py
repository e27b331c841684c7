"""Builtin template functions: Go's text/template set plus the ones Ollama adds."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from nexus.template.values import (
    PropertyType,
    Struct,
    sprint,
    sprintf,
    sprintln,
    to_json,
    truth,
    type_name,
)


class ExecError(Exception):
    """A failure while executing; the executor adds the template line."""


# ----------------------------------------------------------------------------- comparison


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if value is True or value is False:
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(arg1: Any, *others: Any) -> bool:
    k1 = _kind(arg1)
    for arg in others:
        k2 = _kind(arg)
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise ExecError("incompatible types for comparison")
            continue
        if arg1 is arg or arg1 == arg:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordered(a: Any, b: Any) -> None:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise ExecError("invalid type for comparison")
    if ka != kb:
        raise ExecError("incompatible types for comparison")


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a >= b)


def _not(a: Any) -> bool:
    return not truth(a)


# ----------------------------------------------------------------------------- containers


def _int_arg(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExecError(f"cannot {what} with type {type_name(value)}")
    return value


def _len(item: Any) -> int:
    if item is None:
        return 0
    if isinstance(item, str):
        return len(item) if item.isascii() else len(item.encode())
    if isinstance(item, Struct):
        raise ExecError(f"len of type {item.kind}")
    if isinstance(item, list | tuple | dict):
        return len(item)
    raise ExecError(f"len of type {type_name(item)}")


def _index(item: Any, *indices: Any) -> Any:
    for index in indices:
        if item is None:
            return None
        if isinstance(item, Struct):
            raise ExecError(f"can't index item of type {item.kind}")
        if isinstance(item, dict):
            item = item.get(index)
        elif isinstance(item, list | tuple | str):
            i = _int_arg(index, "index slice")
            seq: Any = item if not isinstance(item, str) or item.isascii() else item.encode()
            if not 0 <= i < len(seq):
                raise ExecError(f"error calling index: index out of range: {i}")
            item = ord(seq[i]) if isinstance(seq, str) else seq[i]
        else:
            raise ExecError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indices: Any) -> Any:
    if item is None:
        return None
    if len(indices) > 3:
        raise ExecError(f"too many slice indexes: {len(indices)}")
    if isinstance(item, str):
        if len(indices) == 3:
            raise ExecError("cannot 3-index slice a string")
        seq: Any = item if item.isascii() else item.encode()
    elif isinstance(item, list | tuple):
        seq = item
    else:
        raise ExecError(f"can't slice item of type {type_name(item)}")
    bounds = [_int_arg(i, "slice") for i in indices]
    cap = len(seq)
    for b in bounds:
        if not 0 <= b <= cap:
            raise ExecError(f"error calling slice: index out of range: {b}")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else cap
    if start > end or (len(bounds) == 3 and end > bounds[2]):
        raise ExecError(f"error calling slice: invalid slice index: {start} > {end}")
    out = seq[start:end]
    if isinstance(out, bytes):
        return out.decode("utf-8", "replace")
    return out


# ----------------------------------------------------------------------------- escaping


def _text_arg(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(args)


_HTML = {"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "\0": "\ufffd"}
_JS = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _html(*args: Any) -> str:
    s = _text_arg(args)
    if not any(c in s for c in _HTML):
        return s
    return "".join(_HTML.get(c, c) for c in s)


def _js(*args: Any) -> str:
    out = []
    for c in _text_arg(args):
        if c in _JS:
            out.append(_JS[c])
        elif c < " " or (c >= "\x80" and not c.isprintable()):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return quote_plus(_text_arg(args), safe="")


# ----------------------------------------------------------------------------- printing


def _print(*args: Any) -> str:
    return sprint(args)


def _println(*args: Any) -> str:
    return sprintln(args)


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise ExecError(f"printf: format must be a string, got {type_name(fmt)}")
    return sprintf(fmt, args)


def _call(*args: Any) -> Any:
    raise ExecError("call is not supported: template data holds no functions")


# ----------------------------------------------------------------------------- Ollama's


def _json(value: Any) -> str:
    try:
        return to_json(value)
    except ValueError:
        return ""


def _current_date(*_args: Any) -> str:
    return _dt.date.today().isoformat()


def _yesterday_date(*_args: Any) -> str:
    return (_dt.date.today() - _dt.timedelta(days=1)).isoformat()


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def typescript_type(prop: Any) -> str:
    """The TypeScript spelling of a tool property's JSON-schema type."""
    if isinstance(prop, Struct):
        any_of, types = prop.get("AnyOf"), prop.get("Type")
    elif isinstance(prop, dict):
        any_of, types = prop.get("anyOf"), prop.get("type")
    else:
        return "any"
    if any_of:
        return " | ".join(typescript_type(p) for p in any_of)
    if isinstance(types, str):
        types = PropertyType([types])
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _to_typescript_type(value: Any) -> str:
    if isinstance(value, Struct) and value.kind != "ToolProperty":
        return "any"
    return typescript_type(value)


#: name -> (function, minimum args, maximum args or None). ``and``/``or`` are evaluated
#: lazily by the executor, but are listed so the parser knows them.
FUNCS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "and": (lambda *a: a[-1], 1, None),
    "or": (lambda *a: a[-1], 1, None),
    "not": (_not, 1, 1),
    "eq": (_eq, 2, None),
    "ne": (_ne, 2, 2),
    "lt": (_lt, 2, 2),
    "le": (_le, 2, 2),
    "gt": (_gt, 2, 2),
    "ge": (_ge, 2, 2),
    "len": (_len, 1, 1),
    "index": (_index, 1, None),
    "slice": (_slice, 1, None),
    "print": (_print, 0, None),
    "printf": (_printf, 1, None),
    "println": (_println, 0, None),
    "html": (_html, 0, None),
    "js": (_js, 0, None),
    "urlquery": (_urlquery, 0, None),
    "call": (_call, 1, None),
    "json": (_json, 1, 1),
    "currentDate": (_current_date, 0, None),
    "yesterdayDate": (_yesterday_date, 0, None),
    "toTypeScriptType": (_to_typescript_type, 1, 1),
}
