#!/usr/bin/env python3
"""Container health check: exit 0 when the server answers ``/api/tags`` with 200.

With ``--gateway``, or when the container's main process is ``nexus gateway``, it asks the
gateway's ``/health`` instead. The address comes from the same variables the services read
(``OLLAMA_HOST``, ``NEXUS_GATEWAY_HOST``); a wildcard bind address is asked on loopback, and
``NEXUS_API_KEY`` is presented when set.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from nexus.config import ClientSettings, ConfigError, parse_host

GATEWAY_PORT = 8800
COMMANDS = ("nexus", "ollama")


def runs_gateway(argv: list[str]) -> bool:
    """Whether a command line is ``nexus gateway`` (also through Python or ``ollama``)."""
    return any(
        Path(word).name in COMMANDS and argv[i + 1 : i + 2] == ["gateway"]
        for i, word in enumerate(argv)
    )


def main_process_argv() -> list[str]:
    """The container's main process (pid 1) command line; empty where it cannot be read."""
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def target(gateway: bool) -> tuple[str, dict[str, str]]:
    """The URL to ask and the headers to send."""
    if gateway:
        host = parse_host(os.environ.get("NEXUS_GATEWAY_HOST", ""), GATEWAY_PORT)
        return f"{host.url}/health", {}
    settings = ClientSettings.from_env()
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    return f"{settings.host.url}/api/tags", headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--gateway", action="store_true", help="check the gateway's /health")
    which.add_argument("--server", action="store_true", help="check the server's /api/tags")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    try:
        gateway = args.gateway or (not args.server and runs_gateway(main_process_argv()))
        url, headers = target(gateway)
    except (ConfigError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=args.timeout) as r:
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
