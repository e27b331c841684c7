"""The ASGI app: built from ``Settings`` by ``create_app``; no module-level state."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from nexus import __version__
from nexus.config import Settings
from nexus.inference.models import ModelCatalog
from nexus.inference.service import InferenceService
from nexus.net.collector import freeze_startup_objects
from nexus.runner.process import RunnerProcess, remove_leftovers
from nexus.runner.spec import RunnerSpec
from nexus.scheduler import Scheduler
from nexus.server.anthropic import router as anthropic_router
from nexus.server.auth import ApiKeyAuth
from nexus.server.client import ClientTurns
from nexus.server.errors import install_error_handlers
from nexus.server.hosts import LocalHostOnly, is_loopback
from nexus.server.limits import BodyLimits
from nexus.server.metrics import install_metrics
from nexus.server.native import router as native_router
from nexus.server.openai import router as openai_router
from nexus.server.openapi import install_openapi
from nexus.server.pull import router as pull_router
from nexus.server.registry import router as registry_router
from nexus.server.responses import router as responses_router
from nexus.server.state import AppState
from nexus.store.store import Store

log = logging.getLogger(__name__)

#: Threads for blocking work (``asyncio.to_thread``); Python's default is cores + 4.
WORKER_THREADS = 64

CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
    "x-api-key",
]


def allowed_origins(extra: tuple[str, ...]) -> list[str]:
    """Ollama's origin list: the user's first, then local hosts and app schemes."""
    origins = list(extra)
    for host in ("localhost", "127.0.0.1", "0.0.0.0"):
        origins += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    origins += ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]
    return origins


def origin_regex(origins: list[str]) -> str:
    parts = [".*" if o == "*" else ".*".join(re.escape(p) for p in o.split("*")) for o in origins]
    parts.append(r"(chrome|moz|safari-web)-extension://.*")
    return "^(" + "|".join(parts) + ")$"


class OllamaCORSMiddleware(CORSMiddleware):
    """Preflights answered as Ollama answers them: 204 when allowed, a bare 403 when not."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            headers = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in ("content-length", "content-type")
            }
            return Response(status_code=204, headers=headers)
        return Response(status_code=403)


def build_state(settings: Settings) -> AppState:
    store = Store(settings.models, noprune=settings.noprune)
    catalog = ModelCatalog(store)

    def factory(spec: RunnerSpec) -> RunnerProcess:
        return RunnerProcess(spec, load_timeout=settings.load_timeout, debug=settings.debug > 0)

    scheduler = Scheduler(
        factory,
        default_keep_alive=settings.keep_alive,
        max_loaded=settings.effective_max_loaded_models,
        max_queue=settings.max_queue,
    )
    inference = InferenceService(settings, catalog, scheduler)
    return AppState(settings, store, catalog, scheduler, inference)


def create_app(settings: Settings) -> FastAPI:
    state = build_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # blocking work (store, uploads, pulls) must never wait behind a few long jobs
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="nexus-io")
        )
        await asyncio.to_thread(state.store.remove_leftovers)
        await asyncio.to_thread(remove_leftovers)  # runner files of a server that was killed
        await asyncio.to_thread(state.store.prune)
        freeze_startup_objects()
        yield
        await state.scheduler.shutdown()

    app = FastAPI(
        title="Nexus",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_openapi(app)
    app.state.nexus = state
    install_error_handlers(app)
    app.include_router(native_router)
    app.include_router(openai_router)
    app.include_router(responses_router)
    app.include_router(anthropic_router)
    app.include_router(pull_router)
    app.include_router(registry_router)
    app.add_middleware(ClientTurns)
    app.add_middleware(
        BodyLimits,
        max_body_size=settings.max_body_size,
        read_timeout=settings.read_timeout,
        write_timeout=settings.write_timeout,
    )
    if is_loopback(settings.host.host):
        app.add_middleware(LocalHostOnly)
    if settings.api_keys:
        app.add_middleware(ApiKeyAuth, keys=settings.api_keys)  # inside CORS: preflights pass
    app.add_middleware(
        OllamaCORSMiddleware,
        allow_origin_regex=origin_regex(allowed_origins(settings.origins)),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=CORS_HEADERS,
    )
    install_metrics(app, state.scheduler)  # outermost: 401s and preflights are counted too
    return app
