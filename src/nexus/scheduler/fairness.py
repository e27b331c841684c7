"""A runner's slots handed out in turn to the clients waiting for them.

With a plain first-come queue, a client that sends a hundred requests at once makes every other
client wait behind all of them. Here each client (its address) has a queue of its own and a freed
slot goes to the next client in turn, so another client's request waits for at most one request
of each client ahead of it; within one client, first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextvars import ContextVar

#: The client a request comes from (its address), set by the server for each request; requests
#: from no known client share one turn.
current_client: ContextVar[str] = ContextVar("current_client", default="")


class FairSlots:
    """``size`` slots; ``acquire`` waits in its client's queue while none is free."""

    def __init__(self, size: int) -> None:
        self.free = size
        #: waiting requests per client, in turn order (the first is served next)
        self._turns: dict[str, deque[asyncio.Future[None]]] = {}

    def locked(self) -> bool:
        """Whether ``acquire`` would wait."""
        return self.free == 0 or bool(self._turns)

    async def acquire(self, client: str = "") -> None:
        if not self.locked():
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.setdefault(client, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: the next one gets it
            else:
                self._forget(client, waiter)
            raise

    def release(self) -> None:
        """Free a slot: to the first waiting request of the client whose turn it is, that client
        then going to the back of the turn order."""
        while self._turns:
            client = next(iter(self._turns))
            queue = self._turns.pop(client)
            waiter = queue.popleft()
            if queue:
                self._turns[client] = queue
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    def _forget(self, client: str, waiter: asyncio.Future[None]) -> None:
        queue = self._turns.get(client)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if not queue:
            del self._turns[client]
