"""JSON schemas a request asks the output to follow (``format``, ``response_format``, tool
parameters), checked against the JSON Schema meta-schema before any of them reaches the
engine, whose grammar converter would otherwise drop what it cannot read without a word."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from typing import Any, TypeVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from nexus.errors import BadRequest

V = TypeVar("V")

#: Bounds on a schema the output must follow, after OpenAI's for structured outputs. The
#: engine's grammar sampler checks every alternative open at a position for each token: a
#: 200,000-value enum took it 14 s per token, for every request its runner was serving.
MAX_PROPERTIES = 5000
#: Enum values, consts, ``anyOf``/``oneOf`` branches past a node's first (a ``null`` branch,
#: as in a nullable field, is free) and a pattern's ``|``, all together; and the optional
#: properties of any one object. Each is an alternative the sampler keeps open (1,000 of them
#: leave the default model 29 tokens/s of 160 here).
MAX_ALTERNATIVES = 1000
#: Subschemas, values and keys of a schema: what its checks and conversion walk through.
MAX_SCHEMA_NODES = 50000
MAX_PATTERN = 1000
#: Schemas of more parts than this are checked against the meta-schema in a worker thread, one
#: at a time (about 0.15 ms per subschema), so the event loop goes on serving meanwhile.
LARGE_SCHEMA = 1000
_large_checks = asyncio.Semaphore(1)
#: How many schemas are remembered (as checked, and with their grammars): clients send the
#: same schema again and again.
REMEMBERED = 256


class Recent(OrderedDict[bytes, V]):
    """What was remembered of the last ``REMEMBERED`` schemas, by :func:`schema_digest`."""

    def recall(self, digest: bytes) -> V | None:
        value = self.get(digest)
        if value is not None:
            self.move_to_end(digest)
        return value

    def remember(self, digest: bytes, value: V) -> None:
        self[digest] = value
        if len(self) > REMEMBERED:
            self.popitem(last=False)


#: Schemas checked and found valid.
_valid: Recent[bool] = Recent()


def schema_digest(schema: Any) -> bytes:
    """What a schema is remembered by: the digest of its JSON text (ASCII), not the text."""
    return hashlib.sha256(json.dumps(schema).encode()).digest()


class SchemaTooLarge(ValueError):
    """A schema past the bounds above; the message says which."""


def schema_bounds(schema: Any) -> int:
    """How many parts ``schema`` has; :class:`SchemaTooLarge` when it passes a bound.
    Iterative, so it is safe to run before the schema is checked or converted."""
    properties = alternatives = nodes = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise SchemaTooLarge(f"the schema has more than {MAX_SCHEMA_NODES} parts")
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        props = node.get("properties")
        if isinstance(props, dict):
            properties += len(props)
            required = node.get("required")
            names = (
                {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
            )
            if len(props) - len(names & set(props)) > MAX_ALTERNATIVES:
                raise SchemaTooLarge(
                    f"an object has more than {MAX_ALTERNATIVES} optional properties"
                )
        if isinstance(node.get("enum"), list):
            alternatives += len(node["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                branches = [b for b in node[key] if b != {"type": "null"}]
                alternatives += max(0, len(branches) - 1)
        if "const" in node:
            alternatives += 1
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            if len(pattern) > MAX_PATTERN:
                raise SchemaTooLarge(f"a pattern is longer than {MAX_PATTERN} characters")
            alternatives += pattern.count("|")
        if properties > MAX_PROPERTIES:
            raise SchemaTooLarge(f"the schema has more than {MAX_PROPERTIES} properties")
        if alternatives > MAX_ALTERNATIVES:
            raise SchemaTooLarge(
                f"the schema has more than {MAX_ALTERNATIVES} alternatives (enum values, "
                "consts, anyOf/oneOf branches)"
            )
        nodes += len(node)
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return nodes


async def check_schema(schema: Any, field: str) -> None:
    """Raise :class:`BadRequest` naming ``field`` when ``schema`` is not a valid JSON schema,
    or one past the bounds above."""
    if not isinstance(schema, (dict, bool)):
        raise BadRequest(f"{field} must be a JSON schema (an object)", param=field)
    if isinstance(schema, bool):
        return
    digest = schema_digest(schema)
    if _valid.recall(digest):
        return  # checked before, bounds and all
    try:
        nodes = schema_bounds(schema)
    except SchemaTooLarge as exc:
        raise BadRequest(f"{field} is too large: {exc}", param=field) from None
    if nodes <= LARGE_SCHEMA:
        _check(schema, field)
    else:
        async with _large_checks:
            await asyncio.to_thread(_check, schema, field)
    _valid.remember(digest, True)


def _check(schema: Any, field: str) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise BadRequest(
            f"{field}{where} is not a valid JSON schema: {exc.message}", param=field
        ) from None


async def check_tools(tools: list[dict[str, Any]] | None) -> None:
    """Each function tool's ``parameters`` must be a valid schema, when given."""
    for i, tool in enumerate(tools or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("parameters") is not None:
            await check_schema(function["parameters"], f"tools[{i}].function.parameters")


__all__ = [
    "Recent",
    "SchemaTooLarge",
    "check_schema",
    "check_tools",
    "schema_bounds",
    "schema_digest",
]
