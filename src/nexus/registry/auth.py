"""Bearer-token challenges (``WWW-Authenticate``) and the token request they call for."""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nexus.registry.errors import RegistryUnauthorized

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge; parameter names are lower-cased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")

    @property
    def is_bearer(self) -> bool:
        return self.scheme.lower() == "bearer"


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted string starting at the opening quote; return it and the index after."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    return "".join(out), pos  # unterminated: take what there is


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (the first challenge only).

    Returns None when the header is empty or does not start with a scheme token.
    """
    text = header.strip()
    match = _TOKEN.match(text)
    if match is None:
        return None
    scheme = match.group(0)
    pos = match.end()
    params: dict[str, str] = {}
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t,":
            pos += 1
        key = _TOKEN.match(text, pos)
        if key is None:
            break
        pos = key.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text) or text[pos] != "=":
            break  # a second challenge's scheme, or token68 data: stop here
        pos += 1
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == '"':
            value, pos = _quoted(text, pos)
        else:
            end = text.find(",", pos)
            end = len(text) if end < 0 else end
            value, pos = text[pos:end].strip(), end
        params[key.group(0).lower()] = value
    return Challenge(scheme, params)


def token_url(challenge: Challenge, *, now: float | None = None, nonce: str | None = None) -> str:
    """The realm with ``service``, each ``scope``, ``ts`` and ``nonce`` added to its query."""
    parts = urlsplit(challenge.realm)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if challenge.service:
        query.append(("service", challenge.service))
    query.extend(("scope", scope) for scope in challenge.scope.split(" ") if scope)
    query.append(("ts", str(int(time.time() if now is None else now))))
    query.append(("nonce", nonce or base64.b64encode(secrets.token_bytes(16)).decode()))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def check_realm(challenge: Challenge, request_host: str) -> None:
    """Refuse a realm that is not an http(s) URL on the host the challenge came from.

    A token request carries credentials, so it must never be sent elsewhere.
    """
    parts = urlsplit(challenge.realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryUnauthorized("unauthorized: access denied")
    if parts.netloc.lower() != request_host.lower():
        raise RegistryUnauthorized(
            f'realm host "{parts.netloc}" does not match original host "{request_host}"'
        )
