"""One request carried to a backend and its reply carried back, chunk by chunk.

The first backend that fails before answering (refused, reset, closed) is marked down and the
request goes once to the next candidate. A stream the backend breaks off, or ends without its
proper last event, is ended with an error event in the stream's own shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from nexus.gateway.accounting import NATIVE, OPENAI, Meter
from nexus.gateway.asgi import RawHeaders, Send, send_body
from nexus.gateway.backends import Backend, Discovery
from nexus.gateway.errors import BackendFailed, GatewayTimeout
from nexus.gateway.metrics import GatewayMetrics
from nexus.gateway.models import canonical
from nexus.gateway.responses import stream_error
from nexus.gateway.translate import NATIVE_ROUTES, NativeOverOpenAI
from nexus.gateway.translate.native import EMBED_WINDOW
from nexus.gateway.translate.replies import ReplyError
from nexus.net.http1 import PeerError, PeerTimeout, Reply

#: a whole reply up to this size is held, and sent with its length; a larger one is passed on as
#: it comes (its counts read on the way)
HOLD = 1024 * 1024
#: largest reply translated from another API, which is held whole
MAX_REPLY = 256 * 1024 * 1024
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
        b"proxy-authenticate",
        b"upgrade",
        b"trailer",
    }
)
_INCLUDE_USAGE = ("/v1/chat/completions", "/v1/completions")


@dataclass
class Outcome:
    status: int = 0
    prompt: int = 0
    completion: int = 0
    ttft: float | None = None
    backend: str = ""


@dataclass
class Forward:
    """A request on its way: what to send, and where it may go."""

    api: str
    method: str
    path: str
    query: bytes
    headers: RawHeaders
    body: bytes | None
    data: dict[str, Any] | None = None
    model: str = ""
    stream: AsyncIterator[bytes] | None = None
    length: int | None = None
    started: float = field(default_factory=time.perf_counter)
    #: seconds spent waiting on the backend (subtracted from the gateway's own time)
    waited: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)
    responded: bool = False

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.started - self.waited) * 1000)


class Proxy:
    def __init__(self, discovery: Discovery, metrics: GatewayMetrics, timeout: float) -> None:
        self.discovery = discovery
        self.metrics = metrics
        self.timeout = timeout

    async def run(self, send: Send, request: Forward, backends: list[Backend]) -> Outcome:
        reply, backend, translator, meter = await self._connect(request, backends)
        request.outcome.backend = backend.name
        if reply is None:  # the translator answers by itself (a load or unload request)
            assert translator is not None and translator.immediate is not None
            status, body = translator.immediate
            request.outcome.status = status
            request.responded = True
            headers = [(b"x-nexus-backend", backend.name.encode())]
            await send_body(send, status, body, _native_type(translator), headers)
            return request.outcome
        try:
            if translator is not None and translator.windows > 1:
                await self._windowed(send, request, reply, backend, translator)
            elif translator is not None:
                await self._translated(send, request, reply, backend, translator)
            else:
                await self._passed(send, request, reply, backend, meter)
        finally:
            reply.close()
            backend.in_flight -= 1
        return request.outcome

    # choosing and reaching a backend
    def _prepare(
        self, request: Forward, backend: Backend
    ) -> tuple[str, bytes | None, NativeOverOpenAI | None, Meter]:
        """Path, body, translator and meter for this backend."""
        path, body, data = request.path, request.body, request.data
        if backend.kind != "openai" or data is None:
            return path, body, None, Meter(request.api)
        upstream_name = _upstream_name(request, backend)
        if request.path in NATIVE_ROUTES:
            translator = NativeOverOpenAI(request.path, data)
            payload = dict(translator.payload)
            payload["model"] = upstream_name
            return translator.path, json.dumps(payload).encode(), translator, Meter(NATIVE)
        strip = False
        changed = dict(data) if upstream_name != data.get("model") else None
        if request.api == OPENAI and path in _INCLUDE_USAGE and data.get("stream") is True:
            options = data.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                changed = changed or dict(data)
                changed["stream_options"] = {**(options or {}), "include_usage": True}
                strip = True
        if changed is not None:
            changed["model"] = upstream_name
            body = json.dumps(changed).encode()
        return path, body, None, Meter(request.api, strip_usage=strip)

    async def _connect(
        self, request: Forward, backends: list[Backend]
    ) -> tuple[Reply | None, Backend, NativeOverOpenAI | None, Meter]:
        failures = []
        for attempt, backend in enumerate(backends):
            if attempt:
                self.metrics.retries.labels(backend.name).inc()
            path, body, translator, meter = self._prepare(request, backend)
            if translator is not None and translator.immediate is not None:
                return None, backend, translator, meter
            target = path + (b"?" + request.query).decode("latin-1") if request.query else path
            headers = request.headers + backend.auth_headers()
            backend.in_flight += 1
            sent = time.perf_counter()
            try:
                reply = await backend.peer.request(
                    request.method,
                    target,
                    body=body,
                    stream=request.stream,
                    length=request.length,
                    headers=headers,
                    timeout=self.timeout,
                )
            except PeerTimeout as exc:
                backend.in_flight -= 1
                raise GatewayTimeout(f"backend {backend.name} did not answer: {exc}") from None
            except PeerError as exc:
                backend.in_flight -= 1
                backend.mark_down(str(exc))
                self.discovery.poll_soon()
                failures.append(f"{backend.name}: {exc}")
                if request.stream is not None:
                    break  # an upload already read cannot be sent again
                continue
            except BaseException:
                backend.in_flight -= 1
                raise
            finally:
                request.waited += time.perf_counter() - sent
            return reply, backend, translator, meter
        raise BackendFailed("backend failed before answering: " + "; ".join(failures))

    # carrying the reply back
    def _head(self, request: Forward, reply: Reply, backend: Backend) -> RawHeaders:
        headers = [(k, v) for k, v in reply.headers if k not in _HOP]
        headers.append((b"x-nexus-backend", backend.name.encode()))
        headers.append((b"x-nexus-overhead-ms", f"{request.overhead_ms():.3f}".encode()))
        return headers

    async def _passed(
        self, send: Send, request: Forward, reply: Reply, backend: Backend, meter: Meter
    ) -> None:
        outcome = request.outcome
        outcome.status = reply.status
        content_type = reply.header(b"content-type") or b""
        if b"event-stream" not in content_type and b"ndjson" not in content_type:
            await self._whole(send, request, reply, backend, meter, content_type)
            return
        headers = self._head(request, reply, backend)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        try:
            await self._relay(send, request, reply, meter.feed)
            tail = meter.flush()
            if not meter.finished and reply.status == 200:
                tail += stream_error(request.api, f"backend {backend.name} ended the stream early")
        except PeerError as exc:
            tail = meter.flush() + stream_error(
                request.api, f"backend {backend.name} failed mid-stream: {exc}"
            )
        finally:  # also when the client left: what the stream reported is still metered
            self._count(outcome, meter)
        request.responded = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _whole(
        self,
        send: Send,
        request: Forward,
        reply: Reply,
        backend: Backend,
        meter: Meter,
        content_type: bytes,
    ) -> None:
        """A reply that is not a stream: held and sent whole up to ``HOLD`` bytes, passed on as it
        comes past that, so that no reply is held whole however large."""
        outcome = request.outcome
        pieces = reply.iter_body()
        held: list[bytes] = []
        size = 0
        complete = True
        waited = time.perf_counter()
        try:
            async for piece in pieces:
                held.append(piece)
                size += len(piece)
                if size > HOLD:
                    complete = False
                    break
        except PeerTimeout as exc:
            raise GatewayTimeout(f"backend {backend.name} did not finish: {exc}") from None
        except PeerError as exc:
            raise BackendFailed(f"backend {backend.name} failed: {exc}") from None
        finally:
            request.waited += time.perf_counter() - waited
        metered = reply.status == 200
        if complete:
            body = b"".join(held)
            if metered:
                meter.whole(body)
                self._count(outcome, meter)
            headers = [
                (k, v) for k, v in self._head(request, reply, backend) if k != b"content-type"
            ]
            request.responded = True
            await send_body(send, reply.status, body, content_type or b"application/json", headers)
            return
        headers = self._head(request, reply, backend)
        length = reply.header(b"content-length")
        if length is not None:
            headers.append((b"content-length", length))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        relay = meter.piece if metered else None
        try:
            for piece in held:
                if relay is not None:
                    relay(piece)
            await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
            held.clear()
            async for piece in pieces:
                if relay is not None:
                    relay(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except PeerError as exc:  # the client sees its reply cut off, never a well-formed part
            raise BackendFailed(f"backend {backend.name} failed mid-reply: {exc}") from None
        finally:  # also when the client left: what passed is still metered
            self._count(outcome, meter)
        request.responded = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _translated(
        self,
        send: Send,
        request: Forward,
        reply: Reply,
        backend: Backend,
        translator: NativeOverOpenAI,
    ) -> None:
        outcome = request.outcome
        content_type = reply.header(b"content-type") or b""
        if reply.status != 200 or b"event-stream" not in content_type:
            try:
                body = await reply.read(MAX_REPLY)
            except PeerError as exc:
                raise BackendFailed(f"backend {backend.name} failed: {exc}") from None
            status, out = translator.response(reply.status, body)
            outcome.status = status
            self._usage(outcome, translator)
            headers = self._head(request, reply, backend)
            headers = [(k, v) for k, v in headers if k != b"content-type"]
            request.responded = True
            await send_body(send, status, out, _native_type(translator, status), headers)
            return
        outcome.status = 200
        headers = [(k, v) for k, v in self._head(request, reply, backend) if k != b"content-type"]
        headers.append((b"content-type", b"application/x-ndjson"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            await self._relay(send, request, reply, translator.feed)
            tail = translator.end()
        except PeerError as exc:
            tail = translator.error_line(f"backend {backend.name} failed mid-stream: {exc}")
        finally:
            self._usage(outcome, translator)
        request.responded = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _windowed(
        self,
        send: Send,
        request: Forward,
        reply: Reply,
        backend: Backend,
        translator: NativeOverOpenAI,
    ) -> None:
        """A native embedding of many inputs from an OpenAI backend: one upstream request a
        window of inputs, each window's vectors sent on before the next is asked for. A failure
        past the first window reaches the client as a cut reply."""
        outcome = request.outcome
        try:
            body = await reply.read(MAX_REPLY)
        except PeerError as exc:
            raise BackendFailed(f"backend {backend.name} failed: {exc}") from None
        headers = [(k, v) for k, v in self._head(request, reply, backend) if k != b"content-type"]
        try:
            first = translator.window_vectors(0, reply.status, body)
        except ReplyError as exc:  # nothing sent yet: an error reply of the native shape
            outcome.status = reply.status if reply.status >= 300 else 502
            request.responded = True
            error = json.dumps({"error": str(exc)}).encode()
            await send_body(send, outcome.status, error, _native_type(translator, 502), headers)
            return
        outcome.status = 200
        headers.append((b"content-type", _native_type(translator)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        model = _upstream_name(request, backend)
        target = translator.path
        try:
            await send(
                {
                    "type": "http.response.body",
                    "body": translator.window_head() + first,
                    "more_body": True,
                }
            )
            for index in range(1, translator.windows):
                payload = json.dumps(translator.window_payload(index, model)).encode()
                try:
                    part = await backend.peer.request(
                        "POST",
                        target,
                        body=payload,
                        headers=request.headers + backend.auth_headers(),
                        timeout=self.timeout,
                    )
                    try:
                        body = await part.read(MAX_REPLY)
                    finally:
                        part.close()
                    vectors = translator.window_vectors(index, part.status, body)
                except (PeerError, ReplyError) as exc:
                    raise BackendFailed(
                        f"backend {backend.name} failed at input {index * EMBED_WINDOW}: {exc}"
                    ) from None
                await send({"type": "http.response.body", "body": vectors, "more_body": True})
        finally:
            self._usage(outcome, translator)
        request.responded = True
        await send(
            {"type": "http.response.body", "body": translator.window_tail(), "more_body": False}
        )

    @staticmethod
    async def _relay(
        send: Send, request: Forward, reply: Reply, feed: Callable[[bytes], bytes]
    ) -> None:
        """Each piece of the backend's stream, through ``feed``, on to the client as it comes;
        ``PeerError`` when the backend breaks off."""
        outcome = request.outcome
        async for chunk in reply.iter_body():
            if outcome.ttft is None:
                outcome.ttft = time.perf_counter() - request.started
            out = feed(chunk)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})

    @staticmethod
    def _count(outcome: Outcome, meter: Meter) -> None:
        outcome.prompt, outcome.completion = meter.prompt, meter.completion

    @staticmethod
    def _usage(outcome: Outcome, translator: NativeOverOpenAI) -> None:
        if translator.usage is not None:
            outcome.prompt, outcome.completion = translator.usage


def _upstream_name(request: Forward, backend: Backend) -> str:
    """The model's name as ``backend`` lists it."""
    return backend.models.get(canonical(request.model), request.model)


def _native_type(translator: NativeOverOpenAI, status: int = 200) -> bytes:
    """A translated reply is an NDJSON stream when the client asked for one and it succeeded."""
    if translator.stream and status == 200:
        return b"application/x-ndjson"
    return b"application/json; charset=utf-8"
