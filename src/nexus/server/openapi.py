"""The server's own OpenAPI document, served at ``/openapi.json``.

Routes read their bodies themselves (``parse_body``), so FastAPI cannot see what they take;
``REQUEST_MODELS`` names the pydantic type each JSON body is validated with, and its schema
becomes the operation's request body. Every route the app serves is in the document (the test
suite checks that), with the content types it answers in and the error shape of its API family.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from nexus.api.anthropic import CountTokensRequest, MessagesRequest
from nexus.api.ollama import (
    ChatRequest,
    CopyRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ShowRequest,
)
from nexus.api.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from nexus.api.responses import ResponsesRequest
from nexus.server.pull import TransferRequest
from nexus.store.create import CreateSpec

_REPO = "/v2/{namespace}/{model}"

#: (method, path) -> the type its JSON body is validated with.
REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/api/generate"): GenerateRequest,
    ("post", "/api/chat"): ChatRequest,
    ("post", "/api/embed"): EmbedRequest,
    ("post", "/api/embeddings"): EmbeddingsRequest,
    ("post", "/api/show"): ShowRequest,
    ("post", "/api/copy"): CopyRequest,
    ("delete", "/api/delete"): DeleteRequest,
    ("post", "/api/create"): CreateSpec,
    ("post", "/api/pull"): TransferRequest,
    ("post", "/api/push"): TransferRequest,
    ("post", "/v1/chat/completions"): ChatCompletionRequest,
    ("post", "/v1/completions"): CompletionRequest,
    ("post", "/v1/embeddings"): EmbeddingRequest,
    ("post", "/v1/responses"): ResponsesRequest,
    ("post", "/v1/messages"): MessagesRequest,
    ("post", "/v1/messages/count_tokens"): CountTokensRequest,
}

#: (method, path) -> raw bodies: blobs and registry manifests.
BINARY_BODIES: dict[tuple[str, str], str] = {
    ("post", "/api/blobs/{digest}"): "application/octet-stream",
    ("patch", _REPO + "/blobs/uploads/{upload_id}"): "application/octet-stream",
    ("put", _REPO + "/blobs/uploads/{upload_id}"): "application/octet-stream",
    (
        "put",
        _REPO + "/manifests/{reference}",
    ): "application/vnd.docker.distribution.manifest.v2+json",
}

#: Operations that may answer as a stream, and in which content type.
STREAMS: dict[tuple[str, str], str] = {
    ("post", "/api/generate"): "application/x-ndjson",
    ("post", "/api/chat"): "application/x-ndjson",
    ("post", "/api/create"): "application/x-ndjson",
    ("post", "/api/pull"): "application/x-ndjson",
    ("post", "/api/push"): "application/x-ndjson",
    ("post", "/v1/chat/completions"): "text/event-stream",
    ("post", "/v1/completions"): "text/event-stream",
    ("post", "/v1/responses"): "text/event-stream",
    ("post", "/v1/messages"): "text/event-stream",
}

_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "OllamaError": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
    "OpenAIError": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
                "required": ["message", "type"],
            }
        },
        "required": ["error"],
    },
    "AnthropicError": {
        "type": "object",
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                "required": ["type", "message"],
            },
        },
        "required": ["type", "error"],
    },
}


def _error_schema(path: str) -> str | None:
    if path.startswith("/v1/messages"):
        return "AnthropicError"
    if path.startswith("/v1"):
        return "OpenAIError"
    if path.startswith("/api/") and not path.startswith("/api/blobs"):
        return "OllamaError"
    return None  # the registry's own error shape, plain-text 404/405s


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The whole document: FastAPI's paths, completed with bodies and responses."""
    with warnings.catch_warnings():  # routes serving GET and HEAD share an operation id
        warnings.simplefilter("ignore", UserWarning)
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description="Ollama's API, OpenAI's and Anthropic's, and the registry's read side.",
            routes=app.routes,
        )
    doc.setdefault("paths", {})["/openapi.json"] = {
        "get": {"summary": "This document", "operationId": "openapi"}
    }
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_ERROR_SCHEMAS)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            key = (method, path)
            model = REQUEST_MODELS.get(key)
            if model is not None:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                        }
                    },
                }
            elif key in BINARY_BODIES:
                operation["requestBody"] = {
                    "required": True,
                    "content": {BINARY_BODIES[key]: {"schema": {"type": "string"}}},
                }
            operation["responses"] = _responses(method, path, key)
            operation["operationId"] = method + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_")
    return doc


def _responses(method: str, path: str, key: tuple[str, str]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success"}
    if method != "head" and path.startswith(("/api/", "/v1/")) and key not in BINARY_BODIES:
        ok["content"] = {"application/json": {"schema": {}}}
        if key in STREAMS:
            ok["content"][STREAMS[key]] = {"schema": {}}
    responses: dict[str, Any] = {"200": ok}
    error = _error_schema(path)
    if error is not None and method != "head":
        responses["default"] = {
            "description": "An error, in the shape of the API the path belongs to",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{error}"}}},
        }
    else:
        responses["default"] = {"description": "An error"}
    return responses


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi``'s document (built once, on the first request for it)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(build_openapi(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["REQUEST_MODELS", "build_openapi", "install_openapi"]
