"""Starting a real ``nexus gateway`` on a free loopback port, and making keys for it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import free_port, spawn_nexus, wait_until_up


def gateway_env(db: Path, **env: str) -> dict[str, str]:
    """The environment of a gateway and its key commands: nothing inherited that matters."""
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_", "NEXUS_")) and k != "DEFAULT_BACKEND"
    }
    full.update({"NEXUS_GATEWAY_DB": f"sqlite:///{db}", "NO_PROXY": "*", **env})
    return full


def create_key(env: dict[str, str], name: str, *options: str) -> str:
    """``nexus gateway keys create``; the key is the last line of its output."""
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "gateway", "keys", "create", name, *options],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def revoke_key(env: dict[str, str], name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "gateway", "keys", "revoke", name],
        env=env,
        capture_output=True,
        check=True,
    )


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=self.url,
            timeout=120,
            trust_env=False,
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        )

    def wait_for(self, check: str, timeout: float = 30) -> None:
        """Poll ``/health/ready`` until ``check`` (a backend name) is listed as up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = httpx.get(f"{self.url}/health/ready", timeout=5, trust_env=False)
            if reply.status_code == 200 and check in reply.json()["up"]:
                return
            time.sleep(0.05)
        raise AssertionError(f"backend {check} not up: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_gateway(env: dict[str, str], log: Path) -> GatewayProcess:
    """Start ``nexus gateway`` with ``env`` (see ``gateway_env``) and wait until it answers."""
    port = free_port()
    env = {**env, "NEXUS_GATEWAY_HOST": f"127.0.0.1:{port}"}
    proc = spawn_nexus(["gateway"], env, log)
    url = f"http://127.0.0.1:{port}"
    gateway = GatewayProcess(url, proc, log, env)
    wait_until_up(f"{url}/health", proc, log, gateway.stop)
    return gateway


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request, head and body (as long as its content-length says), for scripted
    servers in tests."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


class ScriptedBackend:
    """A server on a free loopback port, in a thread of its own, answering each connection with
    ``handle`` (what a subclass writes); ``stop`` ends it and whatever ``handle`` waits on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.release = asyncio.Event()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        """Its OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self.release.wait()
            server.close()

        self.loop.run_until_complete(start())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    def models(writer: asyncio.StreamWriter, *names: str) -> None:
        """Answer ``GET /v1/models`` with these models."""
        body = json.dumps({"object": "list", "data": [{"id": name} for name in names]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)
        self.thread.join(10)


@contextmanager
def openai_gateway(
    root: Path, name: str, url: str, **env: str
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway in front of one OpenAI-compatible backend ``name`` at ``url`` (its ``/v1``
    base), up and seeing it, with a key for it: the gateway and the key."""
    config = root / "gateway.yaml"
    config.write_text(f"backends:\n  - name: {name}\n    kind: openai\n    url: {url}\n")
    env = gateway_env(root / "gw.db", NEXUS_GATEWAY_CONFIG=str(config), DEFAULT_BACKEND=name, **env)
    key = create_key(env, "k")
    gateway = start_gateway(env, root / "gw.log")
    try:
        gateway.wait_for(name)
        yield gateway, key
    finally:
        gateway.stop()
