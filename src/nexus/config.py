"""Every environment variable Nexus reads, parsed once at start-up into a frozen ``Settings``.

Names and defaults are Ollama's. Two defaults differ on purpose (see README): an unset
``OLLAMA_NUM_PARALLEL`` means "4 slots where memory allows", and the default context is the
model's trained length capped at 8192 tokens. Unlike Ollama, a value that does not parse is a
start-up error naming the variable instead of a silent fallback.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 11434
FOREVER = math.inf
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


class ConfigError(ValueError):
    """Raised at start-up when an ``OLLAMA_*`` variable holds a value that does not parse."""

    def __init__(self, variable: str, value: str, why: str) -> None:
        super().__init__(f"invalid {variable}={value!r}: {why}")
        self.variable = variable


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """Parse a Go duration (``"5m"``, ``"1h30m"``, ``"-1m"``) or bare seconds into seconds.

    A negative result means "forever" and is returned as ``math.inf``. With ``bare_seconds``
    false a number without a unit is refused, as Go's parser refuses it in request bodies.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
        if not bare_seconds and value not in ("0", "+0", "-0"):
            raise ValueError(f'time: missing unit in duration "{value}"') from None
    except ValueError as exc:
        if "missing unit" in str(exc):
            raise
        sign = 1.0
        body = value
        if body[0] in "+-":
            sign = -1.0 if body[0] == "-" else 1.0
            body = body[1:]
        if body == "0":
            return 0.0
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(body):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(body) or pos == 0:
            raise ValueError(f'time: invalid duration "{value}"') from None
        seconds *= sign
    if math.isnan(seconds):
        raise ValueError(f'time: invalid duration "{value}"')
    return FOREVER if seconds < 0 else seconds


@dataclass(frozen=True)
class HostAddress:
    """Where the server binds (and where clients connect)."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


def parse_host(text: str, default_port: int = DEFAULT_PORT) -> HostAddress:
    """Parse ``OLLAMA_HOST`` as Ollama does: ``host``, ``host:port``, ``:port``, ``scheme://...``."""
    value = text.strip().strip("\"'")
    scheme, port = "http", default_port
    if "://" in value:
        scheme, value = value.split("://", 1)
        port = 443 if scheme == "https" else 80
    value = value.split("/", 1)[0]
    host = value
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 address")
        host, rest = value[1:end], value[end + 1 :]
        if rest.startswith(":"):
            port = _parse_port(rest[1:])
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _parse_port(port_text)
    elif value.isdigit():
        host, port = "127.0.0.1", _parse_port(value)
    if host == "" and not value.startswith(":"):
        host = "127.0.0.1"
    return HostAddress(scheme=scheme, host=host or "0.0.0.0", port=port)


def _parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return port


@dataclass(frozen=True)
class ClientSettings:
    """What the command line reads: the server to talk to and its own preferences only, so a
    bad server-side variable does not stop client commands."""

    host: HostAddress = field(default_factory=lambda: parse_host(""))
    nohistory: bool = False
    #: The first key of ``NEXUS_API_KEY``, sent as ``Authorization: Bearer`` when set.
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        reader = _EnvReader(os.environ if env is None else env)
        return cls(
            host=reader.host("OLLAMA_HOST"),
            nohistory=bool(reader.boolean("OLLAMA_NOHISTORY")),
            api_key=next(iter(reader.api_keys("NEXUS_API_KEY")), None),
        )


@dataclass(frozen=True)
class Settings:
    """The server's configuration, read from the environment once."""

    host: HostAddress = field(default_factory=lambda: parse_host(""))
    models: Path = field(default_factory=lambda: Path.home() / ".ollama" / "models")
    keep_alive: float = 300.0
    load_timeout: float = 300.0
    max_loaded_models: int = 0
    #: ``None`` means automatic: 4 slots where memory allows their KV cache, else 1.
    num_parallel: int | None = None
    max_queue: int = 512
    #: ``None`` means automatic: the model's trained context capped at 8192.
    context_length: int | None = None
    origins: tuple[str, ...] = ()
    debug: int = 0
    flash_attention: bool | None = None
    kv_cache_type: str = "f16"
    noprune: bool = False
    #: Bearer token that opens this node's registry write side (``NEXUS_PUSH_TOKEN``); the
    #: same token is what this node presents when it pushes. None: pushing here is refused.
    push_token: str | None = None
    #: Bytes per ranged part of a pull; ``None`` applies Ollama's rule (total/16, 100 MB-1 GB).
    pull_part_size: int | None = None
    #: Seconds a client may take to send its request head, or between two pieces of its body
    #: (``NEXUS_READ_TIMEOUT``); stalled connections are closed after it.
    read_timeout: float = 30.0
    #: Seconds a reply may wait for its client to read any of it (``NEXUS_WRITE_TIMEOUT``);
    #: then its connection is closed, and what the reply held (a runner slot) is freed.
    write_timeout: float = 60.0
    #: Largest request body in bytes (``NEXUS_MAX_BODY_SIZE``; 0 = no limit); blob uploads
    #: are exempt.
    max_body_size: int = 64 << 20
    #: Most connections open at once from one address (``NEXUS_MAX_CLIENT_CONNECTIONS``);
    #: ``None``: half of all the server keeps.
    max_client_connections: int | None = None
    #: Keys from ``NEXUS_API_KEY``; when any, every route but ``/`` and ``/v2`` needs one.
    api_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def effective_max_loaded_models(self) -> int:
        return self.max_loaded_models or 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every ``OLLAMA_*`` variable; raise ``ConfigError`` naming a bad one."""
        env = os.environ if env is None else env
        reader = _EnvReader(env)
        context = reader.uint("OLLAMA_CONTEXT_LENGTH") or reader.uint("OLLAMA_NUM_CTX")
        parallel = reader.uint("OLLAMA_NUM_PARALLEL")
        kv_type = reader.text("OLLAMA_KV_CACHE_TYPE").lower() or "f16"
        if kv_type not in KV_CACHE_TYPES:
            raise ConfigError(
                "OLLAMA_KV_CACHE_TYPE", kv_type, f"must be one of {', '.join(KV_CACHE_TYPES)}"
            )
        models = reader.text("OLLAMA_MODELS")
        return cls(
            host=reader.host("OLLAMA_HOST"),
            models=Path(models).expanduser() if models else Path.home() / ".ollama" / "models",
            keep_alive=reader.duration("OLLAMA_KEEP_ALIVE", 300.0),
            load_timeout=reader.duration("OLLAMA_LOAD_TIMEOUT", 300.0, zero_is_forever=True),
            max_loaded_models=reader.uint("OLLAMA_MAX_LOADED_MODELS") or 0,
            num_parallel=parallel or None,
            max_queue=reader.uint("OLLAMA_MAX_QUEUE", 512) or 0,
            context_length=context or None,
            origins=tuple(o.strip() for o in reader.text("OLLAMA_ORIGINS").split(",") if o.strip()),
            debug=reader.debug_level("OLLAMA_DEBUG"),
            flash_attention=reader.boolean("OLLAMA_FLASH_ATTENTION"),
            kv_cache_type=kv_type,
            noprune=bool(reader.boolean("OLLAMA_NOPRUNE")),
            push_token=reader.text("NEXUS_PUSH_TOKEN") or None,
            pull_part_size=reader.uint("NEXUS_PULL_PART_SIZE") or None,
            read_timeout=reader.duration("NEXUS_READ_TIMEOUT", 30.0, zero_is_forever=True),
            write_timeout=reader.duration("NEXUS_WRITE_TIMEOUT", 60.0, zero_is_forever=True),
            max_body_size=reader.uint("NEXUS_MAX_BODY_SIZE", 64 << 20) or 0,
            max_client_connections=reader.uint("NEXUS_MAX_CLIENT_CONNECTIONS") or None,
            api_keys=reader.api_keys("NEXUS_API_KEY"),
        )


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip().strip("\"'").strip()

    def api_keys(self, name: str) -> tuple[str, ...]:
        """One key or a comma-separated list; set but holding no key is an error."""
        raw = self.env.get(name, "")
        if not raw:
            return ()
        keys = tuple(key for key in (part.strip() for part in self.text(name).split(",")) if key)
        if not keys:
            raise ConfigError(name, raw, "holds no key (give a key, or keys separated by commas)")
        return keys

    def uint(self, name: str, default: int | None = None) -> int | None:
        value = self.text(name)
        if not value:
            return default
        if not value.isdigit():
            raise ConfigError(name, value, "must be a non-negative integer")
        return int(value)

    def boolean(self, name: str) -> bool | None:
        value = self.text(name).lower()
        if not value:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(name, value, "must be true or false (1/0)")

    def duration(self, name: str, default: float, *, zero_is_forever: bool = False) -> float:
        value = self.text(name)
        if not value:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(name, value, 'must be a duration like "5m", "1h" or seconds') from exc
        if zero_is_forever and seconds == 0:
            return FOREVER
        return seconds

    def host(self, name: str) -> HostAddress:
        value = self.text(name)
        try:
            return parse_host(value)
        except ValueError as exc:
            raise ConfigError(name, value, f"must be host, host:port or :port ({exc})") from exc

    def debug_level(self, name: str) -> int:
        value = self.text(name).lower()
        if not value or value in _FALSE:
            return 0
        if value in _TRUE:
            return 1
        if value.isdigit():
            return int(value)
        raise ConfigError(name, value, "must be true/false or a level number")
