"""JSON schemas a request asks the output to follow (``format``, ``response_format``, tool
parameters), checked against the JSON Schema meta-schema before any of them reaches the
engine, whose grammar converter would otherwise drop what it cannot read without a word."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from nexus.errors import BadRequest


def check_schema(schema: Any, field: str) -> None:
    """Raise :class:`BadRequest` naming ``field`` when ``schema`` is not a valid JSON schema."""
    if not isinstance(schema, (dict, bool)):
        raise BadRequest(f"{field} must be a JSON schema (an object)", param=field)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise BadRequest(
            f"{field}{where} is not a valid JSON schema: {exc.message}", param=field
        ) from None


def check_tools(tools: list[dict[str, Any]] | None) -> None:
    """Each function tool's ``parameters`` must be a valid schema, when given."""
    for i, tool in enumerate(tools or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("parameters") is not None:
            check_schema(function["parameters"], f"tools[{i}].function.parameters")


__all__ = ["check_schema", "check_tools"]
