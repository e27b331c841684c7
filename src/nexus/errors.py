"""Errors that carry their HTTP status; the server maps them to responses in one place."""

from __future__ import annotations


class NexusError(Exception):
    """Base of every error the API reports; ``status`` is the HTTP status code."""

    status: int = 500
    #: OpenAI-style error code (``model_not_found``, ``context_length_exceeded``...), if any.
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadRequest(NexusError):
    """Raised when the request itself is wrong: malformed, wrong types, invalid values."""

    status = 400


class InvalidModelName(BadRequest):
    """Raised when a model name does not parse or could escape the store."""

    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message, param="model")


class InvalidDigest(BadRequest):
    """Raised when a digest is not ``sha256:<64 hex>``."""

    def __init__(self, message: str = "invalid digest format") -> None:
        super().__init__(message)


class DigestMismatch(BadRequest):
    """Raised when written bytes do not hash to the digest they were announced with."""


class ContextOverflow(BadRequest):
    """Raised when the input does not fit the context and truncation was refused."""

    code = "context_length_exceeded"


class UnsupportedCapability(BadRequest):
    """Raised when a model lacks what the request needs (tools, vision, embedding...)."""


class NotFound(NexusError):
    """Raised when something named by the request does not exist."""

    status = 404


class ModelNotFound(NotFound):
    """Raised when the requested model is not in the store."""

    code = "model_not_found"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model")


class BlobNotFound(NotFound):
    """Raised when a blob named by digest is not in the store."""


class Busy(NexusError):
    """Raised when the scheduler's queue is full."""

    status = 503

    def __init__(
        self, message: str = "server busy, please try again.  maximum pending requests exceeded"
    ) -> None:
        super().__init__(message)


class Canceled(NexusError):
    """Raised when the client went away before its request was served."""

    status = 499

    def __init__(self, message: str = "request canceled") -> None:
        super().__init__(message)


class RunnerFailed(NexusError):
    """Raised when a runner process fails to start, crashes, or answers with an error."""

    status = 500


class StoreError(NexusError):
    """Raised when the store cannot be read or written (corrupt manifest, disk full...)."""

    status = 500
