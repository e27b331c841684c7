"""Which client a request comes from, for the scheduler's turns (see ``nexus.scheduler.fairness``).

Each request runs in a task of its own, so the name set here is that request's alone, and the
tasks it starts (a streamed reply) inherit it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.scheduler.fairness import current_client


class ClientTurns:
    """Pure ASGI middleware naming each HTTP request's client by its address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            current_client.set(str(client[0]) if client else "")
        await self.app(scope, receive, send)
