"""Exceptions to responses, in one place, in the shape of the API the request addressed."""

from __future__ import annotations

import json
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Send

from nexus.errors import NexusError

log = logging.getLogger(__name__)


def error_body(
    path: str, status: int, message: str, exc: NexusError | None = None
) -> dict[str, object]:
    """Ollama's ``{"error": "..."}``; OpenAI's error object under ``/v1``; Anthropic's on
    ``/v1/messages``."""
    if path.startswith("/v1/messages"):
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            429: "rate_limit_error",
            503: "overloaded_error",
        }.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if path.startswith("/v1"):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {
            "error": {
                "message": message,
                "type": kind,
                "param": exc.param if exc is not None else None,
                "code": exc.code if exc is not None else None,
            }
        }
    return {"error": message}


#: An absolute filesystem path (not a URL's path, not a model name's ``host/namespace``).
_FS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def public_message(message: str, status: int) -> str:
    """A server error's message without the server's filesystem paths (each becomes its last
    component): clients have no business knowing where the store or the runner live."""
    return _FS_PATH.sub(r"\1", message) if status >= 500 else message


def error_response(path: str, exc: NexusError) -> JSONResponse:
    message = public_message(exc.message, exc.status)
    return JSONResponse(error_body(path, exc.status, message, exc), status_code=exc.status)


#: status recorded for a request whose client left before sending all of it
CLIENT_LEFT = 499


def install_error_handlers(app: FastAPI) -> None:
    async def nexus_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NexusError)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(request.url.path, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = "; ".join(str(e.get("msg", "")) for e in exc.errors()) or "invalid request"
        return JSONResponse(error_body(request.url.path, 400, message), status_code=400)

    async def client_left(request: Request, exc: Exception) -> Response:
        # the client closed its connection before its request body was sent: nobody to answer,
        # nothing wrong here (499, as proxies count it)
        return Response(status_code=CLIENT_LEFT)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = public_message(f"internal error: {exc}", 500)
        return JSONResponse(error_body(request.url.path, 500, message), status_code=500)

    app.add_exception_handler(NexusError, nexus_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ClientDisconnect, client_left)
    app.add_exception_handler(Exception, unexpected)


async def send_error(
    send: Send, path: str, exc: NexusError, headers: list[tuple[bytes, bytes]]
) -> None:
    """Answer ``exc`` in the API's own shape from pure ASGI middleware (below the routes'
    handlers), with ``headers`` beside the body's length."""
    body = json.dumps(error_body(path, exc.status, exc.message, exc)).encode()
    head = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": exc.status, "headers": head})
    await send({"type": "http.response.body", "body": body})
