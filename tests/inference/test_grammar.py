"""The JSON-schema-to-GBNF port against llama.cpp's own converter tests.

``data/llama_cpp_schema_cases.json`` holds the cases of llama.cpp's
``tests/test-json-schema-to-grammar.cpp`` (schemas without ``pattern``) with the grammar the C++
converter writes for each, or that it refuses the schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nexus.errors import BadRequest
from nexus.inference.grammar import (
    INT_MAX,
    JSON_OBJECT_GRAMMAR,
    SchemaError,
    UnsupportedSchema,
    apply_constraint,
    build_repetition,
    closed_objects,
    schema_to_grammar,
)

CASES = json.loads((Path(__file__).parent / "data" / "llama_cpp_schema_cases.json").read_text())


def _trim(text: str) -> str:
    return re.sub(r"(^|\n)[ \t]+", r"\1", text.strip(" \n\r\t"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_grammar_as_llama_cpp(case: dict[str, Any]) -> None:
    if not case["ok"]:
        with pytest.raises(SchemaError):
            schema_to_grammar(case["schema"])
        return
    assert _trim(schema_to_grammar(case["schema"])) == case["grammar"]


def test_cases_cover_the_semantics_that_matter() -> None:
    assert len(CASES) > 50
    names = " ".join(c["name"] for c in CASES)
    for topic in ("additional", "min", "ref", "allOf", "anyOf", "enum", "tuple"):
        assert topic in names, topic


def test_undeclared_keys_refused_without_additional_properties() -> None:
    grammar = schema_to_grammar(
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    )
    assert 'root ::= "{" space a-kv space "}"' in grammar
    assert "additional" not in grammar
    open_grammar = schema_to_grammar(
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
    )
    assert "additional-kv" in open_grammar


def test_whitespace_is_bounded() -> None:
    assert 'space ::= | " " | "\\n"{1,2} [ \\t]{0,20}' in JSON_OBJECT_GRAMMAR
    assert JSON_OBJECT_GRAMMAR.startswith("array ::=")
    assert "root ::= object" in JSON_OBJECT_GRAMMAR


def test_repetition() -> None:
    assert build_repetition("a", 0, 1) == "a?"
    assert build_repetition("a", 1, INT_MAX) == "a+"
    assert build_repetition("a", 2, 5) == "a{2,5}"
    assert build_repetition("a", 0, INT_MAX, '","') == '(a ("," a)*)?'


def test_pattern_left_to_the_engine_with_closed_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "n": {"type": "object", "properties": {}},
        },
    }
    with pytest.raises(UnsupportedSchema):
        schema_to_grammar(schema)
    body: dict[str, Any] = {}
    apply_constraint(body, schema)
    assert "grammar" not in body
    assert body["json_schema"]["additionalProperties"] is False
    assert body["json_schema"]["properties"]["n"]["additionalProperties"] is False
    assert body["json_schema"]["properties"]["code"] == {"type": "string", "pattern": "^[A-Z]{3}$"}
    # a schema that says what it allows keeps its word
    assert (
        closed_objects({"properties": {}, "additionalProperties": True})["additionalProperties"]
        is True
    )


def test_apply_constraint() -> None:
    body: dict[str, Any] = {"json_schema": {}}
    apply_constraint(body, "json")
    assert body == {"grammar": JSON_OBJECT_GRAMMAR}
    apply_constraint(body, {"type": "integer"})
    assert body["grammar"].startswith("integer ::=") or "root ::=" in body["grammar"]
    untouched: dict[str, Any] = {"grammar": "x"}
    apply_constraint(untouched, None)
    assert untouched == {"grammar": "x"}
    with pytest.raises(BadRequest, match="invalid JSON schema"):
        apply_constraint({}, {"type": "nonsense"})
    with pytest.raises(BadRequest):
        apply_constraint({}, {"$ref": "https://example.com/schema"})
