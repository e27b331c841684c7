"""Plain, immutable views of the key store's rows; none holds a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nexus.gateway.keys.names import normalise_model


@dataclass(frozen=True)
class KeyRecord:
    """An authenticated key as the request path sees it. ``models`` empty means all models."""

    id: str
    name: str
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    admin: bool = False
    expires_at: datetime | None = None

    def allows(self, model: str) -> bool:
        """Whether this key may use ``model`` (names compared as Ollama compares them)."""
        return not self.models or normalise_model(model) in self.models

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True)
class KeyInfo:
    """A key's row for listing: everything but its salt and hash."""

    record: KeyRecord
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        expires = self.record.expires_at
        if expires is not None and expires <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class StoredKey:
    """A key with its salt and hash, as the authenticator checks it."""

    record: KeyRecord
    salt: str
    hash: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class UsageTotal:
    """One key's use of one model, summed over a period."""

    key_name: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
