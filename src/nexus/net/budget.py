"""How many client connections a server keeps open at once, in all and from one address.

Every connection holds a descriptor from the moment it is accepted, before it has said anything,
so one client opening connections as fast as it can would take every descriptor the process has:
other clients could no longer connect, and the server itself could no longer open a model file
or start a runner. A connection past either limit is reset at once; a margin of descriptors is
always left to the server.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time

log = logging.getLogger("nexus.net")

#: descriptors never given to client connections (runners, model files, backend connections)
RESERVE = 1024
#: most connections open at once, however many descriptors there are
MOST = 50_000
#: seconds between two warnings about refused connections
WARN_EVERY = 10.0


def descriptor_limit() -> int:
    """This process's descriptor limit, raised to its hard limit first (up to 65,536)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if wanted > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
    return soft


class ConnectionBudget:
    """Client connections open at once: at most ``total``, and ``per_client`` from one address
    (the event loop's thread only)."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.refused = 0
        self._warned = 0.0

    @classmethod
    def for_process(cls, per_client: int | None, *, share: float = 1.0) -> ConnectionBudget:
        """A budget from the descriptor limit (``share`` of what is left after the reserve);
        ``per_client`` ``None``: half the total."""
        total = max(64, min(MOST, int((descriptor_limit() - RESERVE) * share)))
        return cls(total, per_client or max(1, total // 2))

    def admit(self, client: str) -> bool:
        count = self.by_client.get(client, 0)
        if self.open >= self.total or count >= self.per_client:
            self._refuse(client, count)
            return False
        self.open += 1
        self.by_client[client] = count + 1
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        left = self.by_client.get(client, 1) - 1
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)

    def _refuse(self, client: str, count: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned < WARN_EVERY:
            return
        self._warned = now
        if count >= self.per_client:
            why = f"{client or 'a local socket'} has {count} open, its most"
        else:
            why = f"{self.open} are open, the most in all"
        log.warning("refused %d connections so far: %s", self.refused, why)
