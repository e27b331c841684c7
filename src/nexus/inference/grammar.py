"""JSON schemas as GBNF grammars, with the semantics of llama.cpp's own converter.

Ollama turns a ``format`` schema into a grammar with llama.cpp's ``json_schema_to_grammar``:
an object schema admits only its declared keys unless ``additionalProperties`` allows more, and
whitespace between tokens is bounded. The engine wheel would hand a ``json_schema`` to
LLGuidance instead (plain JSON Schema: any extra key, unbounded whitespace), so Nexus converts
schemas here and sends the engine a ``grammar``: the same constraint on every engine build.

This is a port of ``common/json-schema-to-grammar.cpp`` and ``common/json-schema.cpp`` (MIT,
the ggml authors); rule names and rule text match the C++ output. Regular-expression
``pattern`` keywords are not ported: :class:`UnsupportedSchema` tells the caller to let the
engine convert such a schema itself.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from nexus.errors import BadRequest
from nexus.inference.schemas import Recent, SchemaTooLarge, schema_bounds, schema_digest

INT_MAX = 2**31 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

SPACE_RULE = '| " " | "\\n"{1,2} [ \\t]{0,20}'


class SchemaError(ValueError):
    """A schema llama.cpp's converter refuses."""


class UnsupportedSchema(SchemaError):
    """A valid schema using a keyword this port leaves to the engine (``pattern``)."""


@dataclass(frozen=True)
class _Builtin:
    content: str
    deps: tuple[str, ...] = ()


PRIMITIVE_RULES: dict[str, _Builtin] = {
    "boolean": _Builtin('("true" | "false")'),
    "decimal-part": _Builtin("[0-9]{1,16}"),
    "integral-part": _Builtin("[0] | [1-9] [0-9]{0,15}"),
    "number": _Builtin(
        '("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?',
        ("integral-part", "decimal-part"),
    ),
    "integer": _Builtin('("-"? integral-part)', ("integral-part",)),
    "value": _Builtin(
        "object | array | string | number | boolean | null",
        ("object", "array", "string", "number", "boolean", "null"),
    ),
    "object": _Builtin(
        '"{" space ( string ":" space value ("," space string ":" space value)* )? space "}"',
        ("string", "value"),
    ),
    "array": _Builtin('"[" space ( value ("," space value)* )? space "]"', ("value",)),
    "uuid": _Builtin(
        '"\\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} '
        '"-" [0-9a-fA-F]{12} "\\""'
    ),
    "char": _Builtin('[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\bfnrt] | "u" [0-9a-fA-F]{4})'),
    "string": _Builtin('"\\"" char* "\\""', ("char",)),
    "null": _Builtin('"null"'),
}

STRING_FORMAT_RULES: dict[str, _Builtin] = {
    "date": _Builtin(
        '[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )'
    ),
    "time": _Builtin(
        '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
        '( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )'
    ),
    "date-time": _Builtin('date "T" time', ("date", "time")),
    "date-string": _Builtin('"\\"" date "\\""', ("date",)),
    "time-string": _Builtin('"\\"" time "\\""', ("time",)),
    "date-time-string": _Builtin('"\\"" date-time "\\""', ("date-time",)),
}

RESERVED_NAMES = {"root", *PRIMITIVE_RULES, *STRING_FORMAT_RULES}
_INVALID_RULE_CHARS = re.compile(r"[^a-zA-Z0-9-]+")
_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}
_LITERAL_ESCAPE_RE = re.compile(r'[\r\n"\\]')
_UUID_FORMAT = re.compile(r"uuid[1-5]?")


def format_literal(literal: str) -> str:
    return '"' + _LITERAL_ESCAPE_RE.sub(lambda m: _LITERAL_ESCAPES[m.group(0)], literal) + '"'


def _dump(value: Any) -> str:
    """JSON text as nlohmann's ``dump()`` writes it: compact, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_repetition(item: str, min_items: int, max_items: int, separator: str = "") -> str:
    has_max = max_items != INT_MAX
    if max_items == 0:
        return ""
    if min_items == 0 and max_items == 1:
        return item + "?"
    if not separator:
        if min_items == 1 and not has_max:
            return item + "+"
        if min_items == 0 and not has_max:
            return item + "*"
        return f"{item}{{{min_items},{max_items if has_max else ''}}}"
    result = (
        item
        + " "
        + build_repetition(
            f"({separator} {item})",
            0 if min_items == 0 else min_items - 1,
            max_items - 1 if has_max else max_items,
        )
    )
    return f"({result})?" if min_items == 0 else result


def _min_max_int(
    min_value: int, max_value: int, out: list[str], decimals_left: int = 16, top_level: bool = True
) -> None:
    has_min = min_value != I64_MIN
    has_max = max_value != I64_MAX

    def digit_range(lo: str, hi: str) -> None:
        out.append(f"[{lo}]" if lo == hi else f"[{lo}-{hi}]")

    def more_digits(lo: int, hi: int) -> None:
        out.append("[0-9]")
        if lo == hi == 1:
            return
        out.append("{" + str(lo))
        if hi != lo:
            out.append("," + (str(hi) if hi != INT_MAX else ""))
        out.append("}")

    def uniform_range(frm: str, to: str) -> None:
        i = 0
        while i < len(frm) and i < len(to) and frm[i] == to[i]:
            i += 1
        if i > 0:
            out.append(f'"{frm[:i]}"')
        if i < len(frm) and i < len(to):
            if i > 0:
                out.append(" ")
            sub_len = len(frm) - i - 1
            if sub_len > 0:
                from_sub, to_sub = frm[i + 1 :], to[i + 1 :]
                zeros, nines = "0" * sub_len, "9" * sub_len
                to_reached = False
                out.append("(")
                if from_sub == zeros:
                    digit_range(frm[i], chr(ord(to[i]) - 1))
                    out.append(" ")
                    more_digits(sub_len, sub_len)
                else:
                    out.append(f"[{frm[i]}] (")
                    uniform_range(from_sub, nines)
                    out.append(")")
                    if ord(frm[i]) < ord(to[i]) - 1:
                        out.append(" | ")
                        if to_sub == nines:
                            digit_range(chr(ord(frm[i]) + 1), to[i])
                            to_reached = True
                        else:
                            digit_range(chr(ord(frm[i]) + 1), chr(ord(to[i]) - 1))
                        out.append(" ")
                        more_digits(sub_len, sub_len)
                if not to_reached:
                    out.append(" | ")
                    digit_range(to[i], to[i])
                    out.append(" ")
                    uniform_range(zeros, to_sub)
                out.append(")")
            else:
                out.append(f"[{frm[i]}-{to[i]}]")

    if has_min and has_max:
        if min_value < 0 and max_value < 0:
            out.append('"-" (')
            _min_max_int(-max_value, -min_value, out, decimals_left, True)
            out.append(")")
            return
        if min_value < 0:
            out.append('"-" (')
            _min_max_int(0, -min_value, out, decimals_left, True)
            out.append(") | ")
            min_value = 0
        min_s, max_s = str(min_value), str(max_value)
        for digits in range(len(min_s), len(max_s)):
            uniform_range(min_s, "9" * digits)
            min_s = "1" + "0" * digits
            out.append(" | ")
        uniform_range(min_s, max_s)
        return

    less_decimals = max(decimals_left - 1, 1)
    if has_min:
        if min_value < 0:
            out.append('"-" (')
            _min_max_int(I64_MIN, -min_value, out, decimals_left, False)
            out.append(") | [0] | [1-9] ")
            more_digits(0, decimals_left - 1)
        elif min_value == 0:
            if top_level:
                out.append("[0] | [1-9] ")
                more_digits(0, less_decimals)
            else:
                more_digits(1, decimals_left)
        elif min_value <= 9:
            c = str(min_value)
            start = "1" if top_level else "0"
            if c > start:
                digit_range(start, chr(ord(c) - 1))
                out.append(" ")
                more_digits(1, less_decimals)
                out.append(" | ")
            digit_range(c, "9")
            out.append(" ")
            more_digits(0, less_decimals)
        else:
            min_s = str(min_value)
            c = min_s[0]
            if c > "1":
                digit_range("1" if top_level else "0", chr(ord(c) - 1))
                out.append(" ")
                more_digits(len(min_s), less_decimals)
                out.append(" | ")
            digit_range(c, c)
            out.append(" (")
            _min_max_int(int(min_s[1:]), I64_MAX, out, less_decimals, False)
            out.append(")")
            if c < "9":
                out.append(" | ")
                digit_range(chr(ord(c) + 1), "9")
                out.append(" ")
                more_digits(len(min_s) - 1, less_decimals)
        return
    if has_max:
        if max_value >= 0:
            if top_level:
                out.append('"-" [1-9] ')
                more_digits(0, less_decimals)
                out.append(" | ")
            _min_max_int(0, max_value, out, decimals_left, True)
        else:
            out.append('"-" (')
            _min_max_int(-max_value, I64_MAX, out, decimals_left, False)
            out.append(")")
        return
    raise SchemaError("At least one of min_value or max_value must be set")


def _count(schema: dict[str, Any], key: str, default: int) -> int:
    if key not in schema:
        return default
    value = schema[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SchemaError(f"{key} must be a non-negative integer")
    return value


def _bound(schema: dict[str, Any], key: str, round_up: bool) -> int:
    value = schema[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"{key} must be a number")
    if isinstance(value, int):
        return value
    return int(math.ceil(value) if round_up else math.floor(value))


def _string_format(schema: dict[str, Any]) -> str:
    if "format" not in schema:
        return ""
    value = schema["format"]
    if not isinstance(value, str):
        raise SchemaError("format must be a string")
    if value in ("date", "time", "date-time"):
        return value
    return "uuid" if _UUID_FORMAT.fullmatch(value) else ""


@dataclass
class _Trie:
    children: dict[str, _Trie] = field(default_factory=dict)
    end: bool = False

    def insert(self, word: str) -> None:
        node = self
        for ch in word:
            node = node.children.setdefault(ch, _Trie())
        node.end = True


class _Converter:
    """One conversion: rules by name, as ``common_chat_schema_converter`` keeps them."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.rules: dict[str, str] = {"space": SPACE_RULE}
        self.resolving: set[str] = set()

    # ---- rules --------------------------------------------------------------------------

    def add_rule(self, name: str, rule: str) -> str:
        esc = _INVALID_RULE_CHARS.sub("-", name)
        if esc not in self.rules or self.rules[esc] == rule:
            self.rules[esc] = rule
            return esc
        i = 0
        while f"{esc}{i}" in self.rules and self.rules[f"{esc}{i}"] != rule:
            i += 1
        self.rules[f"{esc}{i}"] = rule
        return f"{esc}{i}"

    def add_primitive(self, name: str, rule: _Builtin) -> str:
        n = self.add_rule(name, rule.content)
        for dep in rule.deps:
            dep_rule = PRIMITIVE_RULES.get(dep) or STRING_FORMAT_RULES[dep]
            if dep not in self.rules:
                self.add_primitive(dep, dep_rule)
        return n

    def primitive(self, rule_name: str, kind: str) -> str:
        return self.add_primitive("root" if rule_name == "root" else kind, PRIMITIVE_RULES[kind])

    def format_grammar(self) -> str:
        return "".join(f"{name} ::= {rule}\n" for name, rule in sorted(self.rules.items()))

    # ---- schemas ------------------------------------------------------------------------

    def visit(self, schema: Any, name: str) -> str:
        rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
        sub_name = name + ("-" if name else "")
        if not isinstance(schema, dict):
            raise SchemaError("schema must be an object")
        if "$ref" in schema:
            return self.add_rule(rule_name, self.resolve_ref(schema["$ref"]))
        if "oneOf" in schema or "anyOf" in schema:
            alts = _alternatives(schema["oneOf"] if "oneOf" in schema else schema["anyOf"])
            return self.add_rule(rule_name, self.union(name, alts))
        kind = schema.get("type")
        if isinstance(kind, list):
            if not kind:
                raise SchemaError("type must not be empty")
            return self.add_rule(rule_name, self.union(name, [{**schema, "type": t} for t in kind]))
        if "const" in schema:
            return self.add_rule(rule_name, format_literal(_dump(schema["const"])))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaError("enum must be a non-empty array")
            return self.add_rule(
                rule_name, "(" + " | ".join(format_literal(_dump(v)) for v in values) + ")"
            )
        if kind is not None and not isinstance(kind, str):
            raise SchemaError("type must be a string or an array of strings")
        has_properties = "properties" in schema or (
            "additionalProperties" in schema and schema["additionalProperties"] is not True
        )
        if not kind:
            if has_properties:
                return self.object(schema, name, rule_name)
            if "allOf" in schema:
                return self.all_of(schema["allOf"], name, rule_name)
            if "items" in schema or "prefixItems" in schema:
                return self.array(schema, sub_name, rule_name)
            if any(k in schema for k in ("pattern", "minLength", "maxLength")) or _string_format(
                schema
            ):
                return self.string(schema, rule_name)
            return self.add_rule(rule_name, self.add_primitive("value", PRIMITIVE_RULES["value"]))
        if kind == "object":
            if not has_properties and "allOf" in schema:
                return self.all_of(schema["allOf"], name, rule_name)
            return self.object(schema, name, rule_name)
        if kind == "string":
            if "allOf" in schema:
                return self.all_of(schema["allOf"], name, rule_name)
            return self.string(schema, rule_name)
        if kind == "array":
            return self.array(schema, sub_name, rule_name)
        if kind == "integer":
            return self.integer(schema, rule_name)
        if kind in ("number", "boolean", "null"):
            return self.primitive(rule_name, kind)
        raise SchemaError(f"unrecognized type {kind}")

    def union(self, name: str, alts: list[Any]) -> str:
        prefix = name + ("-" if name else "alternative-")
        return " | ".join(self.visit(alt, f"{prefix}{i}") for i, alt in enumerate(alts))

    def resolve_ref(self, ref: Any) -> str:
        if not isinstance(ref, str):
            raise SchemaError("$ref must be a string")
        if not ref.startswith("#/"):
            raise SchemaError(
                f"unsupported $ref {ref}, only references into the same document are supported"
            )
        ref_name = "ref" + _INVALID_RULE_CHARS.sub("-", ref[1:])
        if ref_name not in self.rules and ref not in self.resolving:
            target = self.root
            for sel in ref[1:].split("/")[1:]:
                if isinstance(target, dict) and sel in target:
                    target = target[sel]
                elif isinstance(target, list) and sel.isdigit() and int(sel) < len(target):
                    target = target[int(sel)]
                else:
                    raise SchemaError(f"cannot resolve $ref {ref}, {sel} not found")
            self.resolving.add(ref)
            ref_name = self.visit(target, ref_name)
            self.resolving.discard(ref)
        return ref_name

    def object(self, schema: dict[str, Any], name: str, rule_name: str) -> str:
        required = {r for r in schema.get("required") or () if isinstance(r, str)}
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError("properties must be an object")
        additional: Any = None  # None: no other keys; {}: any value; else a schema
        if "additionalProperties" in schema:
            extra = schema["additionalProperties"]
            if isinstance(extra, bool):
                additional = {} if extra else None
            elif isinstance(extra, dict):
                additional = extra
            else:
                raise SchemaError("additionalProperties must be a boolean or a schema")
        elif "properties" not in schema:
            additional = {}
        if not properties and additional is not None and _is_any(additional):
            return self.add_rule(rule_name, self.add_primitive("object", PRIMITIVE_RULES["object"]))
        props = list(properties.items())
        return self.add_rule(
            rule_name,
            self.object_rule(props, {p for p, _ in props if p in required}, name, additional),
        )

    def object_rule(
        self, properties: list[tuple[str, Any]], required: set[str], name: str, additional: Any
    ) -> str:
        prefix = name + ("-" if name else "")
        kv_names: dict[str, str] = {}
        required_props: list[str] = []
        optional_props: list[str] = []
        for prop, prop_schema in properties:
            prop_rule = self.visit(prop_schema, prefix + prop)
            kv_names[prop] = self.add_rule(
                f"{prefix}{prop}-kv", f'{format_literal(_dump(prop))} space ":" space {prop_rule}'
            )
            (required_props if prop in required else optional_props).append(prop)
        if additional is not None:
            sub = prefix + "additional"
            value_rule = (
                self.add_primitive("value", PRIMITIVE_RULES["value"])
                if _is_any(additional)
                else self.visit(additional, sub + "-value")
            )
            names = [p for p, _ in properties]
            key_rule = (
                self.add_rule(sub + "-k", self.not_strings(names))
                if names
                else self.add_primitive("string", PRIMITIVE_RULES["string"])
            )
            kv_names["*"] = self.add_rule(sub + "-kv", f'{key_rule} ":" space {value_rule}')
            optional_props.append("*")
        if not required_props and not optional_props:
            return '"{" space "}"'
        rule = '"{" space ' + ' "," space '.join(kv_names[p] for p in required_props)
        if optional_props:
            rule += " ("
            if required_props:
                rule += ' "," space ( '

            # llama.cpp builds, for each optional key, the alternative that starts with it and
            # may go on with any later one, recursively: here each rule for "the keys from the
            # i-th on" (named for the key before it) is made once, from the last key back (the
            # same rules, in the same order), so thousands of optional keys cost linear time
            # and no recursion
            rests: list[str] = [""] * (len(optional_props) + 1)
            for i in range(len(optional_props) - 1, 0, -1):
                key = optional_props[i]
                comma_ref = f'( "," space {kv_names[key]} )'
                res = comma_ref + ("*" if key == "*" else "?")
                if rests[i + 1]:
                    res += " " + rests[i + 1]
                rests[i] = self.add_rule(f"{prefix}{optional_props[i - 1]}-rest", res)
            alternatives = []
            for i, key in enumerate(optional_props):
                kv = kv_names[key]
                res = kv + (f' ( "," space {kv} )*' if key == "*" else "")
                if rests[i + 1]:
                    res += " " + rests[i + 1]
                alternatives.append(res)
            rule += " | ".join(alternatives)
            if required_props:
                rule += " )"
            rule += " )?"
        return rule + ' space "}"'

    def not_strings(self, strings: list[str]) -> str:
        trie = _Trie()
        for s in strings:
            trie.insert(s)
        char_rule = self.add_primitive("char", PRIMITIVE_RULES["char"])
        out: list[str] = ['["] ( ']

        def walk(node: _Trie) -> None:
            rejects = ""
            for i, (ch, child) in enumerate(sorted(node.children.items())):
                rejects += ch
                if i:
                    out.append(" | ")
                out.append(f"[{ch}]")
                if child.children:
                    out.append(" (")
                    walk(child)
                    out.append(")")
                else:
                    out.append(f" {char_rule}+")
            if node.children:
                out.append(f' | [^"{rejects}] {char_rule}*')

        walk(trie)
        out.append(" )")
        if not trie.end:
            out.append("?")
        out.append(' ["]')
        return "".join(out)

    def all_of(self, children: Any, name: str, rule_name: str) -> str:
        children = _alternatives(children)
        required: set[str] = set()
        properties: list[tuple[str, Any]] = []
        enum_counts: dict[str, int] = {}

        def add_component(comp: Any, is_required: bool) -> None:
            comp = self.deref(comp)
            if not isinstance(comp, dict):
                raise SchemaError("schema must be an object")
            kind = comp.get("type")
            plain = _kind_of(comp) == "other" and not isinstance(kind, list) and "const" not in comp
            if plain and "enum" in comp:
                for v in comp["enum"]:
                    key = format_literal(_dump(v))
                    enum_counts[key] = enum_counts.get(key, 0) + 1
                return
            if _is_object(comp):
                for prop, prop_schema in (comp.get("properties") or {}).items():
                    properties.append((prop, prop_schema))
                    if is_required:
                        required.add(prop)

        for child in children:
            if isinstance(child, dict) and _kind_of(child) == "anyOf":
                for alt in _alternatives(child["oneOf"] if "oneOf" in child else child["anyOf"]):
                    add_component(alt, False)
            elif (
                isinstance(child, dict)
                and _kind_of(child) == "other"
                and isinstance(child.get("type"), list)
            ):
                for t in child["type"]:
                    add_component({**child, "type": t}, False)
            else:
                add_component(child, True)
        if enum_counts:
            common = [k for k, n in sorted(enum_counts.items()) if n == len(children)]
            if common:
                return self.add_rule(rule_name, "(" + " | ".join(common) + ")")
        return self.add_rule(rule_name, self.object_rule(properties, required, name, None))

    def deref(self, schema: Any) -> Any:
        seen: set[str] = set()
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or not ref.startswith("#/"):
                return schema
            seen.add(ref)
            target: Any = self.root
            for sel in ref[1:].split("/")[1:]:
                if isinstance(target, dict) and sel in target:
                    target = target[sel]
                else:
                    raise SchemaError(f"cannot resolve $ref {ref}, {sel} not found")
            schema = target
        return schema

    def array(self, schema: dict[str, Any], sub_name: str, rule_name: str) -> str:
        if "items" in schema or "prefixItems" in schema:
            items = schema["items"] if "items" in schema else schema["prefixItems"]
            if isinstance(items, list):
                parts = [self.visit(item, f"{sub_name}tuple-{i}") for i, item in enumerate(items)]
                return self.add_rule(
                    rule_name, '"[" space ' + ' "," space '.join(parts) + ' space "]"'
                )
        else:
            items = {}
        min_items = _count(schema, "minItems", 0)
        max_items = _count(schema, "maxItems", -1)
        if _is_any(items) and min_items == 0 and max_items < 0:
            return self.primitive(rule_name, "array")
        item_rule = self.visit(items, sub_name + "item")
        upper = INT_MAX if max_items < 0 else max_items
        body = build_repetition(item_rule, min_items, upper, '"," space')
        return self.add_rule(rule_name, f'"[" space {body} space "]"')

    def string(self, schema: dict[str, Any], rule_name: str) -> str:
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise SchemaError("pattern must be a string")
            raise UnsupportedSchema("pattern")
        fmt = _string_format(schema)
        min_len = _count(schema, "minLength", 0)
        max_len = _count(schema, "maxLength", -1)
        if fmt == "uuid":
            return self.primitive(rule_name, "uuid")
        if fmt:
            prim = fmt + "-string"
            return self.add_rule(rule_name, self.add_primitive(prim, STRING_FORMAT_RULES[prim]))
        if min_len > 0 or max_len >= 0:
            char_rule = self.add_primitive("char", PRIMITIVE_RULES["char"])
            upper = INT_MAX if max_len < 0 else max_len
            body = build_repetition(char_rule, min_len, upper)
            return self.add_rule(rule_name, f'"\\"" {body} "\\""')
        return self.primitive(rule_name, "string")

    def integer(self, schema: dict[str, Any], rule_name: str) -> str:
        lo, hi = I64_MIN, I64_MAX
        if "minimum" in schema:
            lo = _bound(schema, "minimum", True)
        elif "exclusiveMinimum" in schema:
            lo = _bound(schema, "exclusiveMinimum", False) + 1
        if "maximum" in schema:
            hi = _bound(schema, "maximum", False)
        elif "exclusiveMaximum" in schema:
            hi = _bound(schema, "exclusiveMaximum", True) - 1
        if lo == I64_MIN and hi == I64_MAX:
            return self.primitive(rule_name, "integer")
        out: list[str] = ["("]
        _min_max_int(lo, hi, out)
        out.append(")")
        return self.add_rule(rule_name, "".join(out))


def _alternatives(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError("must be an array of schemas")
    if not value:
        raise SchemaError("must not be empty")
    return value


def _kind_of(schema: dict[str, Any]) -> str:
    """The node kind llama.cpp's schema parser gives a schema, as far as ``allOf`` needs it."""
    if "$ref" in schema:
        return "ref"
    if "oneOf" in schema or "anyOf" in schema:
        return "anyOf"
    return "other"


def _is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if "oneOf" in schema or "anyOf" in schema or isinstance(kind, list):
        return False
    if "const" in schema or "enum" in schema:
        return False
    has_properties = "properties" in schema or (
        "additionalProperties" in schema and schema["additionalProperties"] is not True
    )
    if kind == "object":
        return has_properties or "allOf" not in schema
    return not kind and has_properties


def _is_any(schema: Any) -> bool:
    """Whether llama.cpp's parser reads the schema as "any value"."""
    if not isinstance(schema, dict):
        return False
    if any(k in schema for k in ("$ref", "oneOf", "anyOf", "type", "const", "enum", "allOf")):
        return False
    if "properties" in schema or "additionalProperties" in schema:
        return False
    if any(k in schema for k in ("items", "prefixItems", "pattern", "minLength", "maxLength")):
        return False
    return not _string_format(schema)


def schema_to_grammar(schema: Any) -> str:
    """The GBNF grammar llama.cpp's converter writes for ``schema``.

    Raises :class:`SchemaError` for a schema it refuses, :class:`UnsupportedSchema` for one
    with a ``pattern``.
    """
    converter = _Converter(schema)
    converter.visit(schema, "")
    return converter.format_grammar()


#: The grammar of Ollama's ``format: "json"``: any JSON object.
JSON_OBJECT_GRAMMAR = schema_to_grammar({"type": "object"})


def constraint(schema: Any) -> dict[str, Any]:
    """Engine request fields that constrain the output to ``schema`` as Ollama does.

    A ``grammar`` wherever this port converts the schema; for a schema with a ``pattern``,
    the schema itself (``json_schema``) for the engine to convert, with undeclared keys
    refused as llama.cpp's converter refuses them. A schema past the bounds of
    :func:`~nexus.inference.schemas.schema_bounds` raises :class:`SchemaTooLarge`; one
    remembered passed them, and is not walked again.
    """
    digest = schema_digest(schema)
    grammar = _grammars.recall(digest)
    if grammar is None:
        schema_bounds(schema)
        grammar = _grammar_or_nothing(schema)
        if len(grammar) <= REMEMBERED_GRAMMAR:
            _grammars.remember(digest, grammar)
    return {"grammar": grammar} if grammar else {"json_schema": closed_objects(schema)}


#: Grammars of the last schemas converted, those of up to 64 KB: what is remembered stays within
#: 16 MB, whatever schemas clients send.
_grammars: Recent[str] = Recent()
REMEMBERED_GRAMMAR = 64 << 10


def _grammar_or_nothing(schema: Any) -> str:
    """The grammar for ``schema``; "" for one left to the engine."""
    try:
        return schema_to_grammar(schema)
    except UnsupportedSchema:
        return ""


def apply_constraint(
    body: dict[str, Any], fmt: str | dict[str, Any] | None, field: str = "format"
) -> None:
    """Set (or with ``None`` leave) the engine request's output constraint: Ollama's
    ``format`` (``"json"`` or a schema), or the schema of a forced tool call (``field``:
    ``"tools"``).

    A schema llama.cpp's converter refuses is a 400, as Ollama refuses it; so is one past the
    bounds of :func:`~nexus.inference.schemas.schema_bounds`.
    """
    if fmt is None:
        return
    body.pop("grammar", None)
    body.pop("json_schema", None)
    if fmt == "json":
        body["grammar"] = JSON_OBJECT_GRAMMAR
        return
    try:
        body.update(constraint(fmt))
    except SchemaTooLarge as exc:
        raise BadRequest(f"{field} is too large: {exc}", param=field) from None
    except SchemaError as exc:
        raise BadRequest(f"invalid JSON schema in {field}: {exc}") from exc


def closed_objects(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that declares
    properties and says nothing of other keys."""
    if isinstance(schema, list):
        return [closed_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_objects(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: closed_objects(v) for k, v in schema["properties"].items()}
    return out


__all__ = [
    "JSON_OBJECT_GRAMMAR",
    "SchemaError",
    "UnsupportedSchema",
    "apply_constraint",
    "build_repetition",
    "closed_objects",
    "constraint",
    "schema_to_grammar",
]
