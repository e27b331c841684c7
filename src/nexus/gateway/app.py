"""The gateway as one ASGI application: keys, routing, proxying, usage and metrics.

``/``, ``/health`` and ``/health/ready`` answer without a key; everything else needs a bearer
key (``Authorization: Bearer`` or ``x-api-key``). Model listings are answered from discovery;
model requests go to a backend that has the model; model management (pull, push, create,
delete, copy, blobs) needs an admin key and goes to the backend named by ``X-Nexus-Backend``
or to ``DEFAULT_BACKEND``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from nexus.gateway import models
from nexus.gateway.accounting import NATIVE, family
from nexus.gateway.asgi import (
    Message,
    Receive,
    RequestHeaders,
    Scope,
    Send,
    parse_json,
    read_body,
    send_body,
    send_json,
)
from nexus.gateway.backends import Discovery
from nexus.gateway.config import GatewaySettings
from nexus.gateway.errors import (
    BadRequest,
    ClientGone,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    NotReading,
)
from nexus.gateway.keys.auth import Authenticator
from nexus.gateway.keys.limits import Limiter
from nexus.gateway.keys.records import KeyRecord
from nexus.gateway.keys.store import KeyStore
from nexus.gateway.keys.usage import UsageRecorder
from nexus.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from nexus.gateway.proxy import Forward, Outcome, Proxy
from nexus.gateway.responses import error_body
from nexus.gateway.routing import Router
from nexus.net.collector import freeze_startup_objects
from nexus.net.guarded import bounded_send

log = logging.getLogger("nexus.gateway")

#: POST routes whose body names the model that picks the backend
MODEL_ROUTES = frozenset(
    {
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
    }
)
#: model management: admin keys only
ADMIN_ROUTES = {
    "/api/pull": "POST",
    "/api/push": "POST",
    "/api/create": "POST",
    "/api/copy": "POST",
    "/api/delete": "DELETE",
}
LISTINGS = frozenset({"/api/tags", "/api/ps", "/v1/models", "/api/version", "/metrics"})
OPEN = frozenset({"/", "/health", "/health/ready"})


class GatewayApp:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.discovery = Discovery(settings.backends, settings.poll_interval)
        self.backends = self.discovery.backends
        self.router = Router(self.backends, settings.default_backend)
        self.metrics = GatewayMetrics(self.backends)
        self.proxy = Proxy(self.discovery, self.metrics, settings.timeout)
        self.store: KeyStore | None = None
        self.auth: Authenticator
        self.limiter: Limiter
        self.usage: UsageRecorder

    # lifespan
    async def startup(self) -> None:
        self.store = await asyncio.to_thread(KeyStore.open, self.settings.db_url)
        self.auth = Authenticator(self.store, self.settings.key_refresh)
        self.limiter = Limiter(self.store, self.settings.limit_sync)
        self.usage = UsageRecorder(self.store, self.settings.usage_flush)
        await self.auth.start()
        await self.limiter.start()
        await self.usage.start()
        await self.discovery.start()

    async def shutdown(self) -> None:
        await self.discovery.stop()
        await self.usage.stop()
        await self.limiter.stop()
        await self.auth.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("gateway start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                freeze_startup_objects()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # requests
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        started = time.perf_counter()
        route = path if path in MODEL_ROUTES or path in LISTINGS or path in ADMIN_ROUTES else ""
        outcome = Outcome()
        model = ""
        if math.isfinite(self.settings.write_timeout):
            send = bounded_send(send, self.settings.write_timeout, NotReading)
        try:
            if path in OPEN:
                await self._open(path, method, _timed(send, started))
                return
            headers = RequestHeaders(scope["headers"])
            if path in MODEL_ROUTES:
                if method != "POST":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}")
                key = await self.auth.authenticate(headers.token)
                outcome, model = await self._model_request(scope, receive, send, headers, key)
            elif path in LISTINGS or path.startswith("/v1/models/"):
                if method not in ("GET", "HEAD"):
                    raise MethodNotAllowed(f"{method} is not allowed on {path}")
                key = await self.auth.authenticate(headers.token)
                route = route or "/v1/models/{model}"
                outcome = await self._listing(scope, receive, _timed(send, started), headers, key)
            elif path in ADMIN_ROUTES or path.startswith("/api/blobs/"):
                route = route or "/api/blobs/{digest}"
                key = await self.auth.authenticate(headers.token)
                if not key.admin:
                    raise Forbidden(f'key "{key.name}" may not manage models (create an admin key)')
                expected = ADMIN_ROUTES.get(path)
                if expected and method != expected:
                    raise MethodNotAllowed(f"{method} is not allowed on {path}")
                outcome = await self._admin(scope, receive, send, headers)
            else:
                raise NotFound(f"{path} not found")
        except GatewayError as exc:
            outcome.status = exc.status
            await self._error(send, path, exc, started)
        except ClientGone as exc:
            outcome.status = 499
            if isinstance(exc, NotReading):
                log.warning(
                    "closed %s: its client read none of the reply for %g s "
                    "(NEXUS_GATEWAY_WRITE_TIMEOUT)",
                    path,
                    self.settings.write_timeout,
                )
        finally:
            self._observe(route or "other", model, outcome, started)

    async def _open(self, path: str, method: str, send: Send) -> None:
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        if path == "/":
            await send_body(send, 200, b"Nexus gateway is running", b"text/plain; charset=utf-8")
        elif path == "/health":
            await send_json(send, 200, {"status": "ok"})
        else:
            up = [b.name for b in self.backends if b.up]
            status = 200 if up else 503
            await send_json(send, status, {"status": "ready" if up else "unavailable", "up": up})

    async def _error(self, send: Send, path: str, exc: GatewayError, started: float) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        if exc.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        overhead = (time.perf_counter() - started) * 1000
        headers.append((b"x-nexus-overhead-ms", f"{overhead:.3f}".encode()))
        try:
            await send_body(send, exc.status, error_body(family(path), exc), headers=headers)
        except RuntimeError:  # the reply had started: all that is left is to cut it off
            log.warning("cut off the reply to %s: %s", path, exc.message)
        except (OSError, ClientGone):
            pass

    def _observe(self, route: str, model: str, outcome: Outcome, started: float) -> None:
        label = model if model else "none"
        status = str(outcome.status or 500)
        self.metrics.requests.labels(route, label, status).inc()
        self.metrics.latency.labels(route, label).observe(time.perf_counter() - started)
        if outcome.ttft is not None:
            self.metrics.ttft.labels(route, label).observe(outcome.ttft)
        if outcome.prompt or outcome.completion:
            self.metrics.tokens.labels(label, "prompt").inc(outcome.prompt)
            self.metrics.tokens.labels(label, "completion").inc(outcome.completion)

    def _metric_model(self, model: str) -> str:
        """The model as a metric label: only names a backend lists, so labels stay bounded."""
        key = models.canonical(model)
        for backend in self.backends:
            if key in backend.models:
                return models.tagged(backend.models[key]) if backend.kind == "ollama" else model
        return "other"

    async def _model_request(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, key: KeyRecord
    ) -> tuple[Outcome, str]:
        path: str = scope["path"]
        api = family(path)
        body = await read_body(receive, self.settings.max_body, self.settings.read_timeout)
        data = parse_json(body)
        model = data.get("model")
        if path == "/api/show" and not model:
            model = data.get("name")
        if not isinstance(model, str) or not model.strip():
            raise BadRequest("model is required")
        label = self._metric_model(model)
        if not key.allows(model):
            raise Forbidden(f'key "{key.name}" may not use model "{model}"')
        self.limiter.check(key)
        backends = self.router.for_model(model, headers.backend)
        if path == "/api/show" and backends[0].kind == "openai":
            await send_json(send, 200, _show_openai(model))
            return Outcome(status=200, backend=backends[0].name), label
        request = Forward(
            api=api,
            method="POST",
            path=path,
            query=scope.get("query_string", b""),
            headers=headers.forward,
            body=body,
            data=data,
            model=model,
        )
        try:
            outcome = await self._proxied(send, receive, request, backends)
        except ClientGone:
            # a client may leave the moment it has read the last event, while the backend's
            # reply is still closing: the tokens the stream reported are used all the same
            self._meter(key, label, model, request.outcome, served=False)
            raise
        self._meter(key, label, model, outcome, served=outcome.status == 200)
        return outcome, label

    def _meter(
        self, key: KeyRecord, label: str, model: str, outcome: Outcome, *, served: bool
    ) -> None:
        """Tokens against the key's limits, and a usage row for a served or metered request."""
        tokens = outcome.prompt + outcome.completion
        if tokens:
            self.limiter.add_tokens(key, tokens)
        if served or tokens:
            name = label if label != "other" else model
            self.usage.record(key.id, name, outcome.prompt, outcome.completion)

    async def _proxied(
        self, send: Send, receive: Receive, request: Forward, backends: list[Any]
    ) -> Outcome:
        """Run the proxy, cancelling it (and so the backend's work) if the client goes away."""
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not request.responded:
                        gone = True
                        task.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            return await self.proxy.run(send, request, backends)
        except asyncio.CancelledError:
            if gone and task.uncancel() == 0:
                raise ClientGone from None
            raise
        finally:
            watcher.cancel()

    async def _listing(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, key: KeyRecord
    ) -> Outcome:
        path: str = scope["path"]
        if path == "/metrics":
            await send_body(send, 200, self.metrics.render(), CONTENT_TYPE.encode())
        elif path == "/api/tags":
            await send_json(send, 200, models.tags(self.backends, key.allows))
        elif path == "/api/ps":
            await send_json(send, 200, models.running(self.backends, key.allows))
        elif path == "/v1/models":
            await send_json(send, 200, models.openai_models(self.backends, key.allows))
        elif path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            row = models.find_model(self.backends, name, key.allows)
            if row is None:
                raise ModelNotFound(f"The model '{name}' does not exist")
            await send_json(send, 200, row)
        else:  # /api/version: the default backend's
            backend = self.router.for_admin(headers.backend)
            request = Forward(NATIVE, "GET", path, b"", headers.forward, None)
            return await self._proxied(send, receive, request, [backend])
        return Outcome(status=200)

    async def _admin(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders
    ) -> Outcome:
        path: str = scope["path"]
        method: str = scope["method"]
        backend = self.router.for_admin(headers.backend)
        if path.startswith("/api/blobs/") and method == "POST":
            request = Forward(
                NATIVE,
                method,
                path,
                scope.get("query_string", b""),
                headers.forward,
                None,
                stream=_upload(receive, self.settings.read_timeout),
                length=headers.content_length,
            )
            if headers.content_length is None:
                raise BadRequest("blob uploads need a Content-Length")
            return await self.proxy.run(send, request, [backend])
        body = await read_body(receive, self.settings.max_body, self.settings.read_timeout)
        request = Forward(
            NATIVE, method, path, scope.get("query_string", b""), headers.forward, body or None
        )
        return await self._proxied(send, receive, request, [backend])


def _timed(send: Send, started: float) -> Send:
    """``send`` adding ``x-nexus-overhead-ms`` to a reply the gateway writes itself."""

    async def timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name == b"x-nexus-overhead-ms" for name, _ in headers):
                overhead = (time.perf_counter() - started) * 1000
                headers.append((b"x-nexus-overhead-ms", f"{overhead:.3f}".encode()))
                message["headers"] = headers
        await send(message)

    return timed


async def _upload(receive: Receive, timeout: float) -> AsyncIterator[bytes]:
    """A blob upload as it arrives; a client that stalls longer than ``timeout`` is gone."""
    while True:
        try:
            async with asyncio.timeout(timeout):
                message = await receive()
        except TimeoutError:
            raise ClientGone from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


def _show_openai(model: str) -> dict[str, Any]:
    """``/api/show`` for a model on an OpenAI-compatible backend, which has no such route."""
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": models.unknown_details(),
        "model_info": {},
        "capabilities": ["completion"],
    }
