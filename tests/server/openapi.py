"""Validate response bodies against Ollama's OpenAPI document (the wire contract).

The document lives beside the repository, at ``<repo>/../shared/reference/ollama-openapi.yaml``.
Schemas are checked with ``jsonschema`` (Draft 2020-12, which OpenAPI 3.1 uses); ``$ref``s to
``#/components/...`` resolve through a ``referencing`` registry holding the whole document.
OpenAPI 3.0's ``nullable`` is turned into a JSON Schema ``null`` type so either dialect works.

Streaming responses (NDJSON) are checked line by line against the ``application/x-ndjson``
schema of the operation (``GenerateStreamEvent``, ``ChatStreamEvent``, ``StatusEvent``...).
Status codes the document does not describe, when they are errors, are checked against the
document's ``ErrorResponse`` schema and must carry a non-empty ``error`` string.
"""

from __future__ import annotations

import json
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO_ROOT.parent / "shared" / "reference" / "ollama-openapi.yaml"
SPEC_URI = "urn:ollama:openapi"
JSON = "application/json"
NDJSON = "application/x-ndjson"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class SpecError(LookupError):
    """The OpenAPI document has nothing to validate this response against."""


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI-only keywords made into JSON Schema (``nullable: true`` -> type includes null)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        elif "$ref" in out or "oneOf" in out or "anyOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _warn_no_spec() -> None:
    """Ollama's OpenAPI document lives beside the checkout (as in CI); without it the
    responses are still checked by each test's own assertions, but not against the schema."""
    warnings.warn(
        f"{SPEC_PATH} not found: responses not validated against the schema", stacklevel=3
    )


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document, with status-code keys normalised to strings."""
    with SPEC_PATH.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"] = {str(k): v for k, v in operation["responses"].items()}
    converted: dict[str, Any] = _openapi_to_jsonschema(document)
    return converted


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(spec(), default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        return not isinstance(value, str) or _RFC3339.match(value) is not None

    return checker


def _pointer(*parts: str) -> str:
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped)


def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": SPEC_URI + pointer},
        registry=_registry(),
        format_checker=_format_checker(),
    )


def _match_path(path: str) -> str:
    """The document's path template for a concrete path (``/api/blobs/{digest}`` style)."""
    paths = spec().get("paths", {})
    if path in paths:
        return path
    for template in paths:
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    raise SpecError(f"the OpenAPI document has no path {path}")


def has_schema(path: str, method: str, status: int = 200, stream: bool = False) -> bool:
    try:
        _response_schema_pointer(path, method, status, stream)
    except SpecError:
        return False
    return True


def _response_schema_pointer(path: str, method: str, status: int, stream: bool) -> str | None:
    """JSON pointer to the schema; None when the response is documented as having no body."""
    template = _match_path(path)
    operation = spec()["paths"][template].get(method.lower())
    if operation is None:
        raise SpecError(f"the OpenAPI document has no {method.upper()} {template}")
    responses = operation.get("responses", {})
    key = str(status)
    if key not in responses:
        key = f"{str(status)[0]}XX" if f"{str(status)[0]}XX" in responses else "default"
    if key not in responses:
        raise SpecError(f"{method.upper()} {template} documents no {status} response")
    content = responses[key].get("content")
    if not content:
        return None
    media = NDJSON if stream else JSON
    if media not in content and not stream and len(content) == 1:
        media = next(iter(content))
    if media not in content or "schema" not in content[media]:
        raise SpecError(f"{method.upper()} {template} {status} has no {media} schema")
    return _pointer("paths", template, method.lower(), "responses", key, "content", media, "schema")


def _declares(pointer: str, prop: str) -> bool:
    """Whether the (resolved) schema at ``pointer`` names ``prop`` among its properties."""
    resolver = _registry().resolver(base_uri=SPEC_URI)
    schema = resolver.lookup(pointer).contents
    while isinstance(schema, dict) and "$ref" in schema:
        schema = resolver.lookup(schema["$ref"]).contents
    return isinstance(schema, dict) and prop in schema.get("properties", {})


def _check(pointer: str, item: Any, where: str) -> None:
    if isinstance(item, dict) and "error" in item and not _declares(pointer, "error"):
        raise AssertionError(f"{where}: an error where a success body was expected: {item}")
    errors = sorted(_validator(pointer).iter_errors(item), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise AssertionError(f"{where} does not match the OpenAPI schema:\n" + "\n".join(lines))


def parse_ndjson(body: str | bytes) -> list[Any]:
    text = body.decode() if isinstance(body, bytes) else body
    assert text.endswith("\n"), f"NDJSON body does not end with a newline: {text[-200:]!r}"
    lines = text.split("\n")[:-1]
    assert lines, "empty NDJSON body"
    events = []
    for number, line in enumerate(lines, 1):
        assert line.strip(), f"blank line {number} in NDJSON body"
        events.append(json.loads(line))
    return events


def validate_error(body: Any, where: str = "error body") -> None:
    """An error body: ``ErrorResponse`` with a non-empty ``error`` string."""
    assert isinstance(body, dict), f"{where}: error body is not a JSON object: {body!r}"
    assert isinstance(body.get("error"), str), f"{where}: no error string: {body!r}"
    assert body["error"], f"{where}: empty error message"
    _check_plain(_pointer("components", "schemas", "ErrorResponse"), body, where)


def _check_plain(pointer: str, item: Any, where: str) -> None:
    if not SPEC_PATH.exists():
        _warn_no_spec()
        return
    errors = list(_validator(pointer).iter_errors(item))
    if errors:
        raise AssertionError(f"{where}: " + "; ".join(e.message for e in errors))


def validate_response(
    path: str, method: str, body: Any, status: int = 200, stream: bool = False
) -> None:
    """Check ``body`` against the documented response of ``method path`` with ``status``.

    ``body`` is the parsed JSON; for ``stream=True`` it is the NDJSON text (str/bytes) or the
    list of parsed events, each checked against the operation's streamed schema. A response
    documented without content must have an empty body. Undocumented error statuses are
    checked against ``ErrorResponse``; other undocumented responses raise ``SpecError``.
    """
    if not SPEC_PATH.exists():
        _warn_no_spec()
        return
    where = f"{method.upper()} {path} -> {status}"
    try:
        pointer = _response_schema_pointer(path, method, status, stream)
    except SpecError:
        if status >= 400:
            validate_error(body, where)
            return
        raise
    if pointer is None:
        assert body in (None, b"", ""), f"{where}: documented without a body, got {body!r}"
        return
    if stream:
        events = parse_ndjson(body) if isinstance(body, str | bytes) else body
        for number, event in enumerate(events, 1):
            _check(pointer, event, f"{where}, NDJSON line {number}")
        return
    _check(pointer, body, where)


def validate(response: httpx.Response) -> Any:
    """Validate an httpx response by its request's path and method; return the parsed body.

    NDJSON responses (by content type) come back as a list of events, empty bodies as None.
    A success response the document does not describe raises ``SpecError``; an error
    response is checked against ``ErrorResponse``. HEAD responses must have no body.
    """
    request = response.request
    path, method, status = request.url.path, request.method, response.status_code
    if method == "HEAD":
        assert not response.content, f"HEAD {path} returned a body"
        return None
    media = response.headers.get("content-type", "").split(";")[0].strip()
    stream = media == NDJSON
    if not response.content:
        body: Any = None
    elif stream:
        body = parse_ndjson(response.content)
    else:
        assert media == JSON, f"{method} {path} -> {status}: content type {media!r}"
        body = response.json()
    validate_response(path, method, body, status, stream=stream)
    return body
