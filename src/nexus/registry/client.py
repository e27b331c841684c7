"""An HTTP client for one registry: bearer-token challenges, and httpx errors mapped to ours."""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from nexus import __version__
from nexus.registry.auth import check_realm, parse_challenge, token_url
from nexus.registry.errors import (
    RegistryError,
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
)

log = logging.getLogger(__name__)

Body = bytes | Callable[[], AsyncIterator[bytes]] | None

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_MAX_ERROR_BODY = 2000


def user_agent() -> str:
    arch = platform.machine().lower()
    return (
        f"nexus/{__version__} ({_ARCH.get(arch, arch)} {sys.platform}) "
        f"Python/{platform.python_version()}"
    )


def new_http_client(*, trust_env: bool = True, timeout: float = 30.0) -> httpx.AsyncClient:
    """The shared transport: proxies from the environment as httpx honours them by default."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        trust_env=trust_env,
        headers={"User-Agent": user_agent()},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )


def describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text


def error_detail(response: httpx.Response) -> str:
    """The message of a distribution error body, else the body text (shortened)."""
    text = response.text[:_MAX_ERROR_BODY].strip() if response.content else ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            message = str(first.get("message") or "")
            return message or str(first.get("code") or "").lower() or text
        if isinstance(data.get("error"), str):
            return str(data["error"])
    return text


class RegistryClient:
    """Requests against one registry host, carrying the token that host handed out.

    The token (or a configured push token) is only ever sent to that host; a redirect to
    another host (a CDN) goes without it.
    """

    def __init__(self, http: httpx.AsyncClient, host: str, *, token: str | None = None) -> None:
        self.http = http
        self.host = host.lower()
        self.token = token

    def _headers(self, url: str, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token and urlsplit(url).netloc.lower() == self.host:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: Body = None,
        stream: bool = False,
        follow_redirects: bool = True,
    ) -> httpx.Response:
        """Send, answering one bearer challenge; error statuses raise ``RegistryError``s.

        With ``stream`` the caller must ``aclose()`` the response.
        """
        for attempt in range(2):
            body = content() if callable(content) else content
            try:
                request = self.http.build_request(
                    method, url, headers=self._headers(url, headers), content=body
                )
            except httpx.InvalidURL as exc:
                raise RegistryError(f"invalid registry URL {url}: {exc}") from None
            try:
                response = await self.http.send(
                    request, stream=True, follow_redirects=follow_redirects
                )
            except httpx.ConnectError as exc:
                parts = urlsplit(url)
                raise RegistryUnreachable(
                    f"could not connect to {parts.scheme}://{parts.netloc}: "
                    f"{describe_transport_error(exc)}"
                ) from None
            except httpx.TransportError as exc:
                raise RegistryUnreachable(
                    f"{method} {url}: {describe_transport_error(exc)}"
                ) from None
            if response.status_code == 401 and attempt == 0:
                challenge_header = response.headers.get("www-authenticate", "")
                detail = await self._detail(response)
                challenge = parse_challenge(challenge_header)
                if challenge is None or not challenge.is_bearer or not _is_url(challenge.realm):
                    raise RegistryUnauthorized(_unauthorized(detail))
                self.token = await self._fetch_token(url, challenge_header)
                continue
            if response.status_code >= 400:
                status = response.status_code
                detail = await self._detail(response)
                if status == 401:
                    raise RegistryUnauthorized(_unauthorized(detail))
                if status == 404:
                    raise RegistryNotFound()
                raise RegistryError(
                    f"{status}: {detail}" if detail else str(status), upstream_status=status
                )
            if not stream:
                try:
                    await response.aread()
                except httpx.TransportError as exc:
                    raise RegistryUnreachable(
                        f"{method} {url}: {describe_transport_error(exc)}"
                    ) from None
                finally:
                    await response.aclose()
            return response
        raise RegistryUnauthorized("unauthorized: access denied")  # pragma: no cover

    async def _detail(self, response: httpx.Response) -> str:
        try:
            await response.aread()
        except httpx.TransportError:
            return ""
        finally:
            await response.aclose()
        return error_detail(response)

    async def _fetch_token(self, url: str, header: str) -> str:
        challenge = parse_challenge(header)
        assert challenge is not None
        check_realm(challenge, urlsplit(url).netloc)
        target = token_url(challenge)
        try:
            response = await self.http.get(target, follow_redirects=True)
        except httpx.TransportError as exc:
            raise RegistryUnreachable(
                f"token request {target}: {describe_transport_error(exc)}"
            ) from None
        if response.status_code >= 400:
            detail = error_detail(response)
            raise RegistryUnauthorized(
                f"unauthorized: token request failed: {response.status_code}"
                + (f": {detail}" if detail else "")
            )
        try:
            data: Any = response.json()
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryUnauthorized("unauthorized: the token service sent no token")
        return token


def _unauthorized(detail: str) -> str:
    if detail.lower().startswith("unauthorized"):
        return detail
    return f"unauthorized: {detail or 'access denied'}"


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def absolute(base: str, location: str) -> str:
    """Resolve a ``Location`` header against the URL it answered."""
    return urljoin(base, location)
