"""The gateway's errors: each carries its HTTP status and is written in the caller's API shape
(OpenAI's error object under ``/v1``, Anthropic's under ``/v1/messages``, ``{"error": ...}`` on
Ollama's ``/api``) in one place, ``gateway.responses``."""

from __future__ import annotations


class GatewayError(Exception):
    """Base: a request the gateway answers itself, with ``status`` and a message."""

    status = 500
    openai_type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(GatewayError):
    status = 400
    openai_type = "invalid_request_error"


class Unauthorized(GatewayError):
    """No key, an unknown or malformed key, a revoked or expired one."""

    status = 401
    openai_type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    """A valid key used for a model (or a route) it may not use."""

    status = 403
    openai_type = "permission_error"
    code = "model_not_allowed"


class RateLimited(GatewayError):
    """Over the key's requests or tokens per minute; ``retry_after`` in seconds."""

    status = 429
    openai_type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = retry_after


class ModelNotFound(GatewayError):
    status = 404
    openai_type = "invalid_request_error"
    code = "model_not_found"


class NoBackend(GatewayError):
    """No healthy backend can take the request."""

    status = 503
    openai_type = "server_error"
    code = "no_backend"


class BackendFailed(GatewayError):
    """The chosen backends failed before answering."""

    status = 502
    openai_type = "server_error"
    code = "backend_error"


class NotFound(GatewayError):
    status = 404
    openai_type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    openai_type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    """The client did not send its body in time."""

    status = 408
    openai_type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    openai_type = "invalid_request_error"
    code = "request_too_large"


class GatewayTimeout(GatewayError):
    """The backend took longer than ``NEXUS_GATEWAY_TIMEOUT`` to answer."""

    status = 504
    openai_type = "server_error"
    code = "backend_timeout"


class ClientGone(Exception):
    """The client closed its connection; nothing more is sent."""


class NotReading(ClientGone):
    """The client read none of the reply for the write timeout: it is treated as gone."""
