"""Bounds on the schemas a request asks the output to follow: each past one is a 400 naming it
before anything else reads the schema; up to them, schemas check and convert quickly."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nexus.errors import BadRequest
from nexus.inference import grammar as grammar_module
from nexus.inference import schemas as schemas_module
from nexus.inference.grammar import apply_constraint, schema_to_grammar
from nexus.inference.schemas import (
    MAX_ALTERNATIVES,
    MAX_PATTERN,
    MAX_PROPERTIES,
    MAX_SCHEMA_NODES,
    SchemaTooLarge,
    check_schema,
    check_tools,
    schema_bounds,
)


def props(n: int, *, required: bool) -> dict[str, Any]:
    names = [f"p{i}" for i in range(n)]
    properties = {p: {"type": "string"} for p in names}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = names
    return schema


def enum(n: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": {"enum": [f"v{i}" for i in range(n)]}},
            "required": ["a"]}  # fmt: skip


AT_THE_BOUND = {
    "enum values": enum(MAX_ALTERNATIVES),
    "optional properties": props(MAX_ALTERNATIVES, required=False),
    "required properties": props(MAX_PROPERTIES, required=True),
    "anyOf branches": {"anyOf": [{"const": i} for i in range(MAX_ALTERNATIVES // 2)]},
    # pydantic's shape for models of Optional fields: ten of 400, 4,000 nullable fields in all
    "nullable fields": {
        "type": "object",
        "properties": {
            f"m{m}": {
                "type": "object",
                "properties": {
                    f"f{i}": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
                    for i in range(400)
                },
            }
            for m in range(10)
        },
    },
    "pattern": {"type": "string", "pattern": "a" * MAX_PATTERN},
}
PAST_THE_BOUND = {
    "enum values": (enum(MAX_ALTERNATIVES + 1), "alternatives"),
    "optional properties": (props(MAX_ALTERNATIVES + 1, required=False), "optional"),
    "required properties": (props(MAX_PROPERTIES + 1, required=True), "properties"),
    "anyOf branches": ({"anyOf": [{"const": i} for i in range(MAX_ALTERNATIVES)]}, "alternatives"),
    "pattern alternation": (
        {"anyOf": [{"type": "string", "pattern": "a|" * (MAX_PATTERN // 2)}, enum(MAX_PATTERN)]},
        "alternatives",
    ),
    "pattern length": ({"type": "string", "pattern": "a" * (MAX_PATTERN + 1)}, "pattern"),
    "parts": ({"type": "array", "prefixItems": [{"type": "integer"}] * MAX_SCHEMA_NODES}, "parts"),
}


@pytest.mark.parametrize("schema", AT_THE_BOUND.values(), ids=AT_THE_BOUND.keys())
async def test_a_schema_at_the_bounds_is_checked_and_converted(schema: dict[str, Any]) -> None:
    started = time.process_time()
    await check_schema(schema, "format")
    body: dict[str, Any] = {}
    apply_constraint(body, schema)
    assert body.get("grammar") or body.get("json_schema")
    assert time.process_time() - started < 30  # no quadratic blow-up (it takes well under 1 s)


@pytest.mark.parametrize(("schema", "what"), PAST_THE_BOUND.values(), ids=PAST_THE_BOUND.keys())
async def test_a_schema_past_a_bound_is_a_400_naming_the_field(
    schema: dict[str, Any], what: str
) -> None:
    with pytest.raises(SchemaTooLarge, match=what):
        schema_bounds(schema)
    with pytest.raises(BadRequest, match=f"^format is too large: .*{what}") as caught:
        await check_schema(schema, "format")
    assert caught.value.param == "format"
    with pytest.raises(BadRequest, match=f"^tools is too large: .*{what}"):
        apply_constraint({}, schema, "tools")


async def test_each_tools_parameters_are_bounded() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": enum(5000)}}]
    with pytest.raises(BadRequest, match=r"^tools\[0\]\.function\.parameters is too large"):
        await check_tools(tools)


def test_optional_properties_convert_without_recursion() -> None:
    """llama.cpp's converter recurses once per optional property (a RecursionError past
    Python's limit); the rules here are built from the last key back, the same rules."""
    grammar = schema_to_grammar(props(MAX_ALTERNATIVES, required=False))
    assert f"p{MAX_ALTERNATIVES - 2}-rest ::= " in grammar
    assert "p0-rest ::= " in grammar


async def test_a_boolean_schema_and_a_required_only_object_pass() -> None:
    await check_schema(True, "format")
    assert schema_bounds({"type": "object", "required": [{"not": "a name"}]}) > 0


async def test_what_is_remembered_of_schemas_stays_small() -> None:
    """Checks and grammars are remembered by the digest of the schema's text, the last 256, and
    only grammars of up to 64 KB: hundreds of distinct large schemas leave a few megabytes."""
    large = [props(1100 + i, required=True) for i in range(3)]  # grammars of over 64 KB
    small = [{"type": "object", "properties": {"n": {"const": i}}} for i in range(300)]
    for schema in small + large:
        await check_schema(schema, "format")
        apply_constraint({}, schema)
    assert len(schemas_module._valid) == schemas_module.REMEMBERED
    assert all(len(key) == 32 for key in schemas_module._valid)
    kept = list(grammar_module._grammars.values())
    assert len(kept) <= 256
    assert all(len(g) <= grammar_module.REMEMBERED_GRAMMAR for g in kept)
    assert sum(len(g) for g in kept) <= 256 * grammar_module.REMEMBERED_GRAMMAR
