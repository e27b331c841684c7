"""Checks that a translated reply is what Ollama's clients expect: Ollama's OpenAPI document
(skipped with a warning where the document is missing, as in tests/server) and the official
``ollama`` client's pydantic types."""

from __future__ import annotations

import json
from typing import Any

import ollama

from tests.server.openapi import validate_error, validate_response

TYPES: dict[str, Any] = {
    "/api/chat": ollama.ChatResponse,
    "/api/generate": ollama.GenerateResponse,
    "/api/embed": ollama.EmbedResponse,
    "/api/embeddings": ollama.EmbeddingsResponse,
}


def ndjson(body: bytes) -> list[dict[str, Any]]:
    """Parse NDJSON output: every line whole and newline-terminated, nothing else."""
    text = body.decode("utf-8")
    assert text.endswith("\n"), f"output does not end with a newline: {text[-200:]!r}"
    lines = text.split("\n")[:-1]
    assert all(lines), f"blank line in {text!r}"
    return [json.loads(line) for line in lines]


def check_reply(route: str, body: dict[str, Any]) -> None:
    """A non-streamed native success reply."""
    assert "error" not in body, body
    TYPES[route].model_validate(body)
    if route != "/api/embeddings":  # the legacy route is not in the document
        validate_response(route, "POST", body)


def check_stream(route: str, lines: list[dict[str, Any]]) -> None:
    """A streamed native reply: chunks, then exactly one last ``done: true`` line."""
    assert lines, "no output"
    assert all(not line["done"] for line in lines[:-1]), lines
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] in ("stop", "length"), last
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[key], int) and last[key] >= 0, (key, last)
    for line in lines:
        TYPES[route].model_validate(line)
    validate_response(route, "POST", lines, stream=True)


def check_error_line(line: dict[str, Any]) -> None:
    validate_error(line, "NDJSON error line")
