"""Go's view of Python values: truth, printing (fmt), and JSON (encoding/json).

Data handed to a template is plain Python. A few wrapper types reproduce how Ollama's
Go structs behave:

- :class:`Struct`: a Go struct. Fields are looked up by their Go name; it is always true;
  it can't be ranged over; it marshals to JSON in field order. If it has a ``wire`` form
  (its JSON shape, with JSON key names), it prints and marshals as that.
- :class:`JSONMap`: a Go map whose String() is its JSON (tool-call arguments, tool
  properties); keys come out sorted, as Go sorts map keys.
- :class:`JSONList`: a slice whose String() is its JSON (``.Tools``).
- :class:`PropertyType`: a JSON-schema ``type``, one name or several.

A plain ``dict`` is a Go map (keys sorted when printed, ranged over or marshalled).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any


class Struct(dict[str, Any]):
    """A Go struct value: a dict of fields kept in declaration order."""

    __slots__ = ("kind", "wire")

    def __init__(
        self,
        fields: Iterable[tuple[str, Any]] | dict[str, Any] = (),
        *,
        kind: str = "struct",
        wire: Any = None,
    ) -> None:
        super().__init__(fields)
        self.kind = kind
        self.wire = wire


class JSONMap(dict[str, Any]):
    """A map that prints as compact JSON."""

    __slots__ = ()


class JSONList(list[Any]):
    """A list that prints as compact JSON."""

    __slots__ = ()


class PropertyType(list[str]):
    """A JSON-schema type: prints as the name when there is one, else as a Go list."""

    __slots__ = ()

    def go_string(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return self[0]
        return "[" + " ".join(self) + "]"


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings/lists/maps are false."""
    if value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    if isinstance(value, Struct):
        return True
    if isinstance(value, dict):
        return len(value) > 0
    if isinstance(value, int | float):
        return value != 0
    return True


def type_name(value: Any) -> str:
    """A Go-like type name, for error messages."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Struct):
        return value.kind
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def sorted_keys(mapping: dict[Any, Any]) -> list[Any]:
    """Map keys in Go's order: numbers and strings ascending."""
    try:
        return sorted(mapping)
    except TypeError:
        return sorted(mapping, key=lambda k: (type(k).__name__, str(k)))


# ----------------------------------------------------------------------------- floats


def _float_digits(x: float) -> tuple[str, int]:
    """Shortest decimal digits of abs(x) (which must be finite and non-zero) and the
    position of the decimal point: x = 0.DIGITS * 10**point."""
    _, digits, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    text = "".join(map(str, digits))
    assert isinstance(exponent, int)
    return text, len(text) + exponent


def _special_float(x: float, *, plus_inf: str) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return plus_inf if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    return None


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exp(digits: str, point: int, min_exp_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = point - 1
    return f"{mantissa}e{'-' if e < 0 else '+'}{abs(e):0{min_exp_digits}d}"


def format_float(x: float) -> str:
    """A float as Go's fmt prints it with %v: shortest digits, in exponent form from 1e+06
    up and below 1e-04."""
    special = _special_float(x, plus_inf="+Inf")
    if special is not None:
        return special
    digits, point = _float_digits(x)
    sign = "-" if x < 0 else ""
    e = point - 1
    if e < -4 or e >= 6:
        return sign + _exp(digits, point, 2)
    return sign + _fixed(digits, point)


def json_float(x: float) -> str:
    """A float as Go's encoding/json writes it."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"json: unsupported value: {format_float(x)}")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    digits, point = _float_digits(x)
    sign = "-" if x < 0 else ""
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        return sign + _exp(digits, point, 1)
    return sign + _fixed(digits, point)


# ----------------------------------------------------------------------------- printing


def format_value(value: Any) -> str:
    """``fmt.Sprint(value)`` for one value (Go's %v)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, Struct):
        if value.wire is not None:
            return to_json(value.wire)
        return "{" + " ".join(format_value(v) for v in value.values()) + "}"
    if isinstance(value, JSONMap | JSONList):
        return to_json(value)
    if isinstance(value, PropertyType):
        return value.go_string()
    if isinstance(value, dict):
        items = (f"{format_value(k)}:{format_value(value[k])}" for k in sorted_keys(value))
        return "map[" + " ".join(items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    go_string = getattr(value, "go_string", None)
    if callable(go_string):
        return str(go_string())
    return str(value)


def print_value(value: Any) -> str:
    """What ``{{ value }}`` writes. Unlike Go, a missing value (nil) writes nothing."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return format_value(value)


def sprint(args: Sequence[Any]) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(format_value(arg))
        prev_string = is_string
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """``fmt.Sprintln``: operands joined by spaces, then a newline."""
    return " ".join(format_value(a) for a in args) + "\n"


# ----------------------------------------------------------------------------- JSON

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_SPECIAL = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029]')


def _json_escape(match: re.Match[str]) -> str:
    c = match.group()
    return _JSON_ESCAPES.get(c) or f"\\u{ord(c):04x}"


def json_string(s: str) -> str:
    """A JSON string literal as Go writes it (with HTML-safe escapes)."""
    return '"' + _JSON_SPECIAL.sub(_json_escape, s) + '"'


def _json(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(json_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(json_float(value))
    elif isinstance(value, Struct):
        if value.wire is not None:
            _json(value.wire, out)
        else:
            _json_object(value, list(value), out)
    elif isinstance(value, PropertyType):
        _json(value[0] if len(value) == 1 else list(value), out)
    elif isinstance(value, dict):
        _json_object(value, sorted_keys(value), out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _json(item, out)
        out.append("]")
    else:
        out.append(json_string(str(value)))


def _json_object(mapping: dict[Any, Any], keys: list[Any], out: list[str]) -> None:
    out.append("{")
    for i, key in enumerate(keys):
        if i:
            out.append(",")
        out.append(json_string(key if isinstance(key, str) else format_value(key)))
        out.append(":")
        _json(mapping[key], out)
    out.append("}")


def to_json(value: Any) -> str:
    """Compact JSON as Go's json.Marshal writes it: map keys sorted, struct fields in
    order, ``<``, ``>`` and ``&`` escaped."""
    out: list[str] = []
    _json(value, out)
    return "".join(out)


# ----------------------------------------------------------------------------- printf

_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.S)
_QUOTE_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(s: str) -> str:
    """``strconv.Quote``: a double-quoted Go string literal."""
    out = ['"']
    for c in s:
        if c in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[c])
        elif c.isprintable() or c == " ":
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def _bad_verb(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={format_value(arg)})"


def _pad(text: str, flags: str, width: int | None) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    return text.rjust(width)


def _format_one(verb: str, flags: str, width: int | None, prec: int | None, arg: Any) -> str:
    if isinstance(arg, list | tuple) and verb in "sqxXdfeEgGtc":
        # Go applies the verb to each element of a slice.
        inner = " ".join(_format_one(verb, flags, None, prec, a) for a in arg)
        return _pad("[" + inner + "]", flags, width)
    if verb == "T":
        return _pad(type_name(arg) if arg is not None else "<nil>", flags, width)
    is_num = isinstance(arg, int | float) and not isinstance(arg, bool)
    spec = "%" + flags + (str(width) if width is not None else "")
    if prec is not None:
        spec += "." + str(prec)
    if verb in "vs":
        if verb == "s" and (arg is None or is_num or isinstance(arg, bool)):
            return _bad_verb(verb, arg)
        text = format_value(arg)
        if prec is not None and (verb == "s" or isinstance(arg, str)):
            text = text[:prec]
        return _pad(text, flags, width)
    if verb == "d":
        if isinstance(arg, int) and not isinstance(arg, bool):
            return (spec + "d") % arg
        return _bad_verb(verb, arg)
    if verb in "feEgG":
        if not is_num:
            return _bad_verb(verb, arg)
        if verb in "gG" and prec is None:
            return _pad(format_float(float(arg)), flags, width)
        return (spec + verb) % float(arg)
    if verb == "t":
        if isinstance(arg, bool):
            return _pad("true" if arg else "false", flags, width)
        return _bad_verb(verb, arg)
    if verb == "q":
        if isinstance(arg, str):
            return _pad(go_quote(arg), flags, width)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad("'" + go_quote(chr(arg))[1:-1].replace("'", "\\'") + "'", flags, width)
        return _bad_verb(verb, arg)
    if verb in "xX":
        if isinstance(arg, str):
            text = arg.encode().hex()
            return _pad(text.upper() if verb == "X" else text, flags, width)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return (spec + verb) % arg
        return _bad_verb(verb, arg)
    if verb in "ob":
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad(format(arg, verb), flags, width)
        return _bad_verb(verb, arg)
    if verb == "c":
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad(chr(arg), flags, width)
        return _bad_verb(verb, arg)
    return _bad_verb(verb, arg)


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """``fmt.Sprintf`` for the verbs templates use: %v %s %d %q %f %e %g %t %x %X %c %o %b %T."""
    out: list[str] = []
    pos = 0
    argi = 0
    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            width = args[argi] if argi < len(args) and isinstance(args[argi], int) else None
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec = args[argi] if argi < len(args) and isinstance(args[argi], int) else None
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(verb, flags, width, prec, args[argi]))
        argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{type_name(a)}={format_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
