"""Errors written in the caller's own API shape: the one place gateway errors become bytes."""

from __future__ import annotations

import json

from nexus.gateway.accounting import ANTHROPIC, NATIVE, OPENAI, RESPONSES
from nexus.gateway.errors import GatewayError

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def error_body(api: str, error: GatewayError) -> bytes:
    """A whole error response body for ``api`` (a family from ``accounting.family``)."""
    if api == NATIVE:
        data: dict[str, object] = {"error": error.message}
    elif api == ANTHROPIC:
        kind = _ANTHROPIC_TYPES.get(error.status, "api_error")
        data = {"type": "error", "error": {"type": kind, "message": error.message}}
    else:
        data = {
            "error": {
                "message": error.message,
                "type": error.openai_type,
                "param": None,
                "code": error.code,
            }
        }
    return json.dumps(data).encode()


def stream_error(api: str, message: str) -> bytes:
    """The event that ends a stream the backend broke off, in the stream's own framing."""
    if api == NATIVE:
        return json.dumps({"error": message}).encode() + b"\n"
    if api == ANTHROPIC:
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    if api == RESPONSES:
        event = {"type": "error", "code": "backend_error", "message": message, "param": None}
        return b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"
    assert api == OPENAI
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"
