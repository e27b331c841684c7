"""``nexus gateway``: read the configuration once and serve the gateway with uvicorn."""

from __future__ import annotations

import logging
import sys

from nexus import __version__
from nexus.config import ConfigError
from nexus.gateway.config import GatewaySettings

log = logging.getLogger("nexus.gateway")


def load_settings() -> GatewaySettings:
    """The settings, or one line naming the bad variable and exit status 1."""
    try:
        return GatewaySettings.from_env()
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def serve() -> None:
    import uvicorn

    from nexus.gateway.app import GatewayApp
    from nexus.net.budget import ConnectionBudget
    from nexus.net.guarded import guarded_protocol

    settings = load_settings()
    # half the descriptors: each client connection may hold one to a backend too
    budget = ConnectionBudget.for_process(settings.max_client_connections, share=0.5)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    backends = ", ".join(f"{b.name} ({b.kind} {b.url})" for b in settings.backends)
    log.info(
        "Nexus gateway %s listening on %s:%d; backends: %s; default: %s",
        __version__,
        settings.host.host,
        settings.host.port,
        backends,
        settings.default_backend,
    )
    uvicorn.run(
        GatewayApp(settings),
        host=settings.host.host,
        port=settings.host.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        limit_concurrency=budget.total,
        http=guarded_protocol(settings.read_timeout, settings.write_timeout, budget),
        timeout_graceful_shutdown=5,
    )
