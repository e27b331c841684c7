"""The gateway's configuration, read once from the environment (and an optional YAML file).

``OLLAMA_BASE_URL`` (one URL or a comma-separated list) names Nexus/Ollama backends, called
``ollama``, ``ollama-2``, ...; ``NEXUS_GATEWAY_CONFIG`` may name a YAML file with more backends
of either kind. A value that does not parse stops start-up with one line naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from nexus.config import ConfigError, HostAddress, parse_duration, parse_host
from nexus.gateway.keys.db import default_url, parse_url, shown_url
from nexus.gateway.keys.errors import DatabaseURLError

DEFAULT_PORT = 8800
DEFAULT_BACKEND_URL = "http://127.0.0.1:11434"
KINDS = ("ollama", "openai")


@dataclass(frozen=True)
class BackendConfig:
    """One backend: ``ollama`` (Nexus or Ollama) or ``openai`` (any OpenAI-compatible server)."""

    name: str
    kind: str
    url: str
    weight: float = 1.0
    #: Sent as ``Authorization: Bearer`` to this backend (never the client's own key).
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GatewaySettings:
    host: HostAddress = field(default_factory=lambda: parse_host("", DEFAULT_PORT))
    backends: tuple[BackendConfig, ...] = ()
    default_backend: str = "ollama"
    db_url: str = field(default_factory=default_url, repr=False)
    #: Seconds between two discovery polls of every backend.
    poll_interval: float = 5.0
    #: Seconds before a revoked or expired key stops working on every replica.
    key_refresh: float = 2.0
    #: Seconds between two exchanges of rate-limit counters with the database.
    limit_sync: float = 1.0
    #: Seconds between two usage writes.
    usage_flush: float = 1.0
    #: Seconds a backend may take to answer (headers, or the next chunk of a stream).
    timeout: float = 600.0
    #: Largest request body read into memory (blob uploads stream and are not limited).
    max_body: int = 64 * 1024 * 1024
    #: Seconds a client may take to send its request head, or its body.
    read_timeout: float = 30.0
    #: Seconds a reply may wait for its client to read any of it (``inf``: no limit).
    write_timeout: float = 60.0
    #: Most connections open at once from one address (``None``: half of all the gateway keeps).
    max_client_connections: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        read = _Reader(env)
        host_text = read.text("NEXUS_GATEWAY_HOST")
        try:
            host = parse_host(host_text, DEFAULT_PORT)
        except ValueError as exc:
            raise ConfigError(
                "NEXUS_GATEWAY_HOST", host_text, f"must be host:port ({exc})"
            ) from exc
        backends = _url_backends(read.text("OLLAMA_BASE_URL"))
        config_file = read.text("NEXUS_GATEWAY_CONFIG")
        if config_file:
            backends += _file_backends(config_file, env)
        elif not backends:
            backends = [BackendConfig("ollama", "ollama", DEFAULT_BACKEND_URL)]
        names = [b.name for b in backends]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ConfigError(
                "NEXUS_GATEWAY_CONFIG", config_file, f'backend name "{duplicate}" used twice'
            )
        default = read.text("DEFAULT_BACKEND") or backends[0].name
        if default not in names and default not in {b.kind for b in backends}:
            raise ConfigError(
                "DEFAULT_BACKEND", default, f"must name a backend ({', '.join(names)})"
            )
        db_url = read.text("NEXUS_GATEWAY_DB") or default_url()
        try:
            parse_url(db_url)
        except DatabaseURLError as exc:
            raise ConfigError("NEXUS_GATEWAY_DB", shown_url(db_url), exc.message) from None
        return cls(
            host=host,
            backends=tuple(backends),
            default_backend=default,
            db_url=db_url,
            poll_interval=read.seconds("NEXUS_GATEWAY_POLL_INTERVAL", 5.0, minimum=0.05),
            key_refresh=read.seconds("NEXUS_GATEWAY_KEY_REFRESH", 2.0, minimum=0.05),
            timeout=read.seconds("NEXUS_GATEWAY_TIMEOUT", 600.0, minimum=1.0),
            max_body=read.size("NEXUS_GATEWAY_MAX_BODY", 64 * 1024 * 1024),
            read_timeout=read.seconds("NEXUS_GATEWAY_READ_TIMEOUT", 30.0, minimum=0.1),
            write_timeout=read.seconds("NEXUS_GATEWAY_WRITE_TIMEOUT", 60.0, zero_is_forever=True),
            max_client_connections=read.count("NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS"),
        )


def _check_url(variable: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, url, "must be an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(variable, url, str(exc)) from exc
    return url.rstrip("/")


def _url_backends(text: str) -> list[BackendConfig]:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    return [
        BackendConfig(
            "ollama" if i == 0 else f"ollama-{i + 1}", "ollama", _check_url("OLLAMA_BASE_URL", url)
        )
        for i, url in enumerate(urls)
    ]


def _file_backends(path: str, env: Mapping[str, str]) -> list[BackendConfig]:
    variable = "NEXUS_GATEWAY_CONFIG"
    try:
        data: Any = yaml.safe_load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(variable, path, f"cannot read it: {exc}") from exc
    entries = data.get("backends") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(variable, path, "must hold a non-empty list under 'backends'")
    backends = []
    for i, entry in enumerate(entries):
        where = f"backends[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(variable, path, f"{where} must be a mapping")
        kind = str(entry.get("kind", "ollama"))
        if kind not in KINDS:
            raise ConfigError(variable, path, f"{where}.kind must be one of {', '.join(KINDS)}")
        url = entry.get("url")
        if not isinstance(url, str):
            raise ConfigError(variable, path, f"{where}.url is missing")
        url = _check_url(variable, url)
        if kind == "openai" and url.endswith("/v1"):
            url = url.removesuffix("/v1")
        name = str(entry.get("name") or f"{kind}-{i + 1}")
        try:
            weight = float(entry.get("weight", 1.0))
        except (TypeError, ValueError):
            weight = -1.0
        if not weight > 0:
            raise ConfigError(variable, path, f"{where}.weight must be a positive number")
        key = entry.get("api_key")
        key_env = entry.get("api_key_env")
        if key_env:
            key = env.get(str(key_env)) or None
            if key is None:
                raise ConfigError(variable, path, f"{where}.api_key_env: {key_env} is not set")
        backends.append(BackendConfig(name, kind, url, weight, str(key) if key else None))
    return backends


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip().strip("\"'").strip()

    def seconds(
        self, name: str, default: float, *, minimum: float = 0.1, zero_is_forever: bool = False
    ) -> float:
        """A duration; with ``zero_is_forever``, ``0`` means no limit (``inf``)."""
        value = self.text(name)
        if not value:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(name, value, 'must be a duration like "5s" or seconds') from exc
        if zero_is_forever and seconds == 0:
            return math.inf
        if seconds < minimum or seconds == float("inf"):
            least = (
                f"0 (no limit) or at least {minimum} s"
                if zero_is_forever
                else f"at least {minimum} s"
            )
            raise ConfigError(name, value, f"must be {least}")
        return seconds

    def count(self, name: str) -> int | None:
        """A positive number; unset or ``0``: ``None`` (automatic)."""
        value = self.text(name)
        if not value or value == "0":
            return None
        if not value.isdigit():
            raise ConfigError(name, value, "must be a positive number (0: automatic)")
        return int(value)

    def size(self, name: str, default: int) -> int:
        value = self.text(name)
        if not value:
            return default
        if not value.isdigit() or int(value) <= 0:
            raise ConfigError(name, value, "must be a positive number of bytes")
        return int(value)
