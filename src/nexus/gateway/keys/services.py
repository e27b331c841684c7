"""Everything the gateway needs from the key store, opened, started and stopped together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nexus.gateway.keys.auth import Authenticator
from nexus.gateway.keys.limits import Limiter
from nexus.gateway.keys.store import KeyStore
from nexus.gateway.keys.usage import UsageRecorder


@dataclass
class KeyServices:
    """The store with its authenticator, limiter and usage recorder."""

    store: KeyStore
    auth: Authenticator
    limiter: Limiter
    usage: UsageRecorder

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        key_refresh: float = 2.0,
        limit_sync: float = 1.0,
        usage_flush: float = 1.0,
    ) -> KeyServices:
        """Open (and migrate) the database in a worker thread and start the background tasks.
        Raises :class:`~nexus.gateway.keys.errors.DatabaseURLError` for an unusable URL and
        SQLAlchemy's errors when the database cannot be reached."""
        store = await asyncio.to_thread(KeyStore.open, url)
        services = cls(
            store,
            Authenticator(store, key_refresh),
            Limiter(store, limit_sync),
            UsageRecorder(store, usage_flush),
        )
        try:
            await services.auth.start()
            await services.limiter.start()
            await services.usage.start()
        except BaseException:
            await services.close()
            raise
        return services

    async def close(self) -> None:
        """Stop the background tasks, writing pending usage and counts, and close the store."""
        try:
            await self.usage.stop()
            await self.limiter.stop()
            await self.auth.stop()
        finally:
            self.store.close()
