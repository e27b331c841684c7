"""A small client of the server's native API on httpx, with errors as :mod:`nexus.cli.errors`.

Streaming endpoints yield each NDJSON object as it arrives; an ``{"error": ...}`` line ends the
stream with :class:`ServerError`, as an error status does before the stream starts.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from nexus import __version__
from nexus.cli.errors import CLIError, NotConnected, ServerError
from nexus.config import ClientSettings, ConfigError

USER_AGENT = f"nexus/{__version__}"
# Loading a model can take minutes before the first byte: no read timeout by default.
DEFAULT_TIMEOUT = httpx.Timeout(None, connect=10.0)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "", "0.0.0.0", "::"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_message(response: httpx.Response) -> str:
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return text or f"{response.status_code} {response.reason_phrase}"


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise ServerError(_error_message(response), response.status_code)


class Client:
    """One connection pool to the server; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url
        host = httpx.URL(base_url).host
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            # A proxy from the environment must not capture a local server.
            trust_env=not _is_loopback(host),
        )

    @classmethod
    def from_env(cls, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> Client:
        """The server named by ``OLLAMA_HOST`` (default ``127.0.0.1:11434``), with the first
        key of ``NEXUS_API_KEY`` as bearer token when that is set."""
        try:
            settings = ClientSettings.from_env()
        except ConfigError as exc:
            raise CLIError(str(exc)) from None
        return cls(settings.host.url, timeout=timeout, api_key=settings.api_key)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError:
            raise NotConnected(self.base_url) from None
        except httpx.TimeoutException:
            raise CLIError(f"timed out talking to Nexus at {self.base_url}") from None
        except httpx.TransportError as exc:
            raise CLIError(f"lost the connection to Nexus at {self.base_url}: {exc}") from None

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        with self._translated():
            response = self._http.request(method, path, json=body)
        _check(response)
        return response

    def _json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._send(method, path, body)
        try:
            data = response.json()
        except ValueError:
            raise CLIError(f"unexpected answer from {path}: {response.text[:200]!r}") from None
        return data if isinstance(data, dict) else {}

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield each object of the NDJSON answer."""
        with self._translated(), self._http.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                response.read()
                _check(response)
            for line in response.iter_lines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise CLIError(f"unexpected line from {path}: {line[:200]!r}") from None
                if isinstance(item, dict) and item.get("error"):
                    raise ServerError(str(item["error"]), response.status_code)
                if isinstance(item, dict):
                    yield item

    # --- the API ------------------------------------------------------------------------

    def heartbeat(self) -> None:
        self._send("HEAD", "/")

    def version(self) -> str:
        return str(self._json("GET", "/api/version").get("version", ""))

    def nexus_version(self) -> str:
        """The server's own version (``version`` is the Ollama API version it implements)."""
        body = self._json("GET", "/api/version")
        return str(body.get("nexus_version") or body.get("version", ""))

    def list_models(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/tags").get("models") or [])

    def running(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/ps").get("models") or [])

    def show(self, model: str, *, verbose: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model}
        if verbose:
            body["verbose"] = True
        return self._json("POST", "/api/show", body)

    def copy(self, source: str, destination: str) -> None:
        self._send("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self._send("DELETE", "/api/delete", {"model": model})

    def generate(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/generate", {**body, "stream": True})

    def chat(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/chat", {**body, "stream": True})

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/embed", body)

    def create(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.stream("/api/create", {**body, "stream": True})

    def pull(self, model: str, *, insecure: bool = False) -> Iterator[dict[str, Any]]:
        return self.stream("/api/pull", {"model": model, "insecure": insecure, "stream": True})

    def push(self, model: str, *, insecure: bool = False) -> Iterator[dict[str, Any]]:
        return self.stream("/api/push", {"model": model, "insecure": insecure, "stream": True})

    def has_blob(self, digest: str) -> bool:
        with self._translated():
            response = self._http.head(f"/api/blobs/{digest}")
        if response.status_code == 404:
            return False
        _check(response)
        return True

    def upload_blob(self, digest: str, chunks: Iterable[bytes]) -> None:
        with self._translated():
            response = self._http.post(
                f"/api/blobs/{digest}",
                content=chunks,
                headers={"Content-Type": "application/octet-stream"},
            )
        _check(response)
