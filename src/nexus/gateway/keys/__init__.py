"""API keys, per-key limits and usage accounting for the gateway, kept in one SQL database.

The request path never waits on the database: :class:`Authenticator` checks keys against an
in-memory snapshot, :class:`Limiter` counts in memory and shares its counts with other replicas
in the background, and :class:`UsageRecorder` buffers usage and writes it in batches.
"""

from __future__ import annotations

from nexus.gateway.keys.auth import Authenticator, token_from_headers
from nexus.gateway.keys.errors import DatabaseURLError, KeyExists, KeyNotFound, KeyStoreError
from nexus.gateway.keys.limits import Limiter
from nexus.gateway.keys.records import KeyInfo, KeyRecord, UsageTotal
from nexus.gateway.keys.services import KeyServices
from nexus.gateway.keys.store import KeyStore
from nexus.gateway.keys.usage import UsageRecorder

__all__ = [
    "Authenticator",
    "DatabaseURLError",
    "KeyExists",
    "KeyInfo",
    "KeyNotFound",
    "KeyRecord",
    "KeyServices",
    "KeyStore",
    "KeyStoreError",
    "Limiter",
    "UsageRecorder",
    "UsageTotal",
    "token_from_headers",
]
