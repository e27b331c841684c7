"""Client for llama.cpp's server API, as the engine inside a runner process serves it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from nexus.errors import BadRequest, NexusError, RunnerFailed


class EngineUnreachable(RunnerFailed):
    """Raised when the runner's engine cannot be reached (it died or is dying)."""


class ContextExceeded(BadRequest):
    """Raised when the engine refuses a prompt longer than a slot's context."""

    code = "context_length_exceeded"

    def __init__(self, message: str, n_prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(message)
        self.n_prompt_tokens = n_prompt_tokens
        self.n_ctx = n_ctx


def _engine_error(status: int, body: bytes) -> NexusError:
    try:
        err = json.loads(body)["error"]
        message = str(err.get("message", "")) or body.decode("utf-8", "replace")
        kind = err.get("type", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, kind, err = body.decode("utf-8", "replace"), "", {}
    if kind == "exceed_context_size_error":
        return ContextExceeded(
            message, int(err.get("n_prompt_tokens", 0)), int(err.get("n_ctx", 0))
        )
    if 400 <= status < 500:
        return BadRequest(message)
    return RunnerFailed(message)


class EngineClient:
    def __init__(self, address: str) -> None:
        """``address`` is the engine's: ``unix:///path/to.sock`` or ``http://host:port``."""
        self.address = address
        socket_path = address.removeprefix("unix://") if address.startswith("unix://") else None
        self._http = httpx.AsyncClient(
            base_url="http://engine" if socket_path else address,
            timeout=httpx.Timeout(None, connect=10.0),
            trust_env=False,
            transport=httpx.AsyncHTTPTransport(
                uds=socket_path,
                # below the engine's own keep-alive timeout (5 s), so an idle connection is
                # never reused at the moment the engine closes it
                limits=httpx.Limits(
                    max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0
                ),
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            resp = await self._send(self._http.build_request("POST", path, json=body))
        except httpx.TransportError as exc:
            raise EngineUnreachable(f"runner unreachable: {exc}") from exc
        if resp.status_code >= 400:
            raise _engine_error(resp.status_code, resp.content)
        return resp.json()

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send once more if a kept-alive connection was closed under the request: nothing was
        processed then, so the retry is safe."""
        try:
            return await self._http.send(request, stream=stream)
        except httpx.RemoteProtocolError:
            return await self._http.send(request, stream=stream)

    async def health(self) -> bool:
        try:
            resp = await self._http.get("/health", timeout=10.0)
        except httpx.TransportError:
            return False
        return resp.status_code == 200

    async def props(self) -> dict[str, Any]:
        try:
            resp = await self._http.get("/props")
        except httpx.TransportError as exc:
            raise EngineUnreachable(f"runner unreachable: {exc}") from exc
        result: dict[str, Any] = resp.json()
        return result

    async def tokenize(
        self, text: str, *, special: bool = True, add_special: bool = False
    ) -> list[int]:
        """``add_special`` adds the tokens the model's vocabulary puts around a whole input (BOS;
        CLS and SEP for BERT-style encoders), as the engine does for a prompt given as text."""
        data = await self._post(
            "/tokenize", {"content": text, "add_special": add_special, "parse_special": special}
        )
        return list(data["tokens"])

    async def detokenize(self, tokens: list[int]) -> str:
        data = await self._post("/detokenize", {"tokens": tokens})
        return str(data["content"])

    async def apply_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = tools
        data = await self._post("/apply-template", body)
        return str(data["prompt"])

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("/completion", {**body, "stream": False})
        return result

    async def completion_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield the engine's stream events; the last one has ``stop: true`` and ``timings``.

        Closing the iterator early closes the connection, which makes the engine stop generating
        and free its slot.
        """
        request = self._http.build_request("POST", "/completion", json={**body, "stream": True})
        try:
            resp = await self._send(request, stream=True)
        except httpx.TransportError as exc:
            raise EngineUnreachable(f"runner unreachable: {exc}") from exc
        try:
            if resp.status_code >= 400:
                raise _engine_error(resp.status_code, await resp.aread())
            pending = b""
            final: dict[str, Any] | None = None
            async for data in resp.aiter_raw():  # bytes split by hand: the per-token hot path
                if final is not None:
                    # the body is read to its end before the last event goes out, so the
                    # connection returns to the pool and the next request needs no new one
                    continue
                pending += data
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    line = pending[start:end]
                    start = end + 1
                    if line.startswith(b"data: "):
                        event = json.loads(line[6:])
                        if event.get("stop"):
                            final = event
                            break
                        yield event
                    elif line.startswith(b"error: "):
                        raise _engine_error(500, line[7:])
                pending = pending[start:]
            if final is not None:
                yield final
        except httpx.TransportError as exc:
            raise EngineUnreachable(f"runner connection lost: {exc}") from exc
        finally:
            await resp.aclose()

    async def embeddings(self, inputs: list[list[int]], *, normalize: bool) -> list[list[float]]:
        data = await self._post(
            "/embeddings", {"input": inputs, "embd_normalize": 2 if normalize else -1}
        )
        ordered = sorted(data, key=lambda item: item["index"])
        return [item["embedding"][0] for item in ordered]
