"""What can go wrong talking to a registry, as ``NexusError``s carrying their HTTP status."""

from __future__ import annotations

from nexus.errors import BadRequest, NexusError, NotFound, StoreError


class RegistryError(NexusError):
    """Raised when the registry answers with an error or sends something unusable.

    ``upstream_status`` is the registry's HTTP status when the error is its answer.
    """

    status = 502

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class RegistryUnreachable(RegistryError):
    """Raised when the registry cannot be connected to, or stops answering."""


class RegistryNotFound(NotFound):
    """Raised when the registry answers 404 (unknown manifest or blob)."""

    def __init__(self, message: str = "file does not exist") -> None:
        super().__init__(message)


class RegistryUnauthorized(NexusError):
    """Raised when the registry refuses our credentials, or has none to give us."""

    status = 401


class InsecureProtocol(BadRequest):
    """Raised for an explicit ``http://`` name without ``insecure``."""

    def __init__(self, message: str = "insecure protocol http") -> None:
        super().__init__(message, param="model")


class BlobDigestMismatch(RegistryError):
    """Raised when downloaded bytes do not hash to the digest the manifest promised."""

    def __init__(self, want: str, got: str) -> None:
        super().__init__(f"digest mismatch, file must be downloaded again: want {want}, got {got}")
        self.want = want
        self.got = got


class DiskFull(StoreError):
    """Raised when the store's filesystem has no room for what is being written."""

    status = 507
