"""What tests share beside fixtures: starting real servers on free loopback ports."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    import openai

DEFAULT_MODEL = "smollm2:135m"
#: The shared server's settings: the defaults but a smaller context, so loads stay quick.
SHARED_SETTINGS = {"OLLAMA_CONTEXT_LENGTH": "2048", "OLLAMA_NUM_PARALLEL": "2"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    models: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, trust_env=False, **kwargs)  # type: ignore[arg-type]

    def openai_client(self) -> openai.OpenAI:
        """The official OpenAI client on this server's ``/v1``, no retries."""
        import openai

        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key="unused",
            max_retries=0,
            http_client=httpx.Client(trust_env=False, timeout=120),  # type: ignore[arg-type]
        )

    def async_openai_client(self) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1",
            api_key="unused",
            max_retries=0,
            http_client=httpx.AsyncClient(trust_env=False, timeout=120),  # type: ignore[arg-type]
        )

    def resident_mb(self) -> float:
        """The server process's resident memory, in MB."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            line = next(ln for ln in status if ln.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def runner_pids(self) -> list[int]:
        """Pids of the runner processes this server started (its children)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def shared_server(models: Path, logs: Path) -> Iterator[ServerProcess]:
    """A server with the shared server's settings and its log in ``logs``, stopped after
    (a fixture's body: ``yield from``)."""
    srv = start_server(models, logs / "server.log", **SHARED_SETTINGS)
    yield srv
    srv.stop()


def address(url: str) -> tuple[str, int]:
    """The host and port of an ``http://host:port`` URL."""
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def stalled_reader(url: str, request: bytes) -> socket.socket:
    """A connection that sends ``request`` and reads nothing: with a small receive buffer, the
    reply backs up at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address(url))
    sock.sendall(request)
    return sock


def stalled_embed(url: str, inputs: int) -> socket.socket:
    """A ``/api/embed`` of ``inputs`` short inputs whose client reads nothing of the reply."""
    body = b'{"model": "%s", "input": [%s]}' % (
        DEFAULT_MODEL.encode(),
        b",".join(b'"w%d"' % i for i in range(inputs)),
    )
    return stalled_reader(
        url,
        b"POST /api/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )


def wait_reset(sock: socket.socket, deadline_s: float = 60.0) -> None:
    """Until the server resets this connection (seen without reading from it); a failure if it
    is still open after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while (error := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)) != errno.ECONNRESET:
        assert not error, os.strerror(error)
        assert time.monotonic() < end, "the server kept the connection open"
        time.sleep(0.1)


def open_connections(url: str, count: int, source: str) -> list[socket.socket]:
    """``count`` connections to ``url`` from the loopback address ``source`` (127.0.0.2, say),
    as another client would open them; each sends nothing yet."""
    return [
        socket.create_connection(address(url), timeout=30, source_address=(source, 0))
        for _ in range(count)
    ]


def answers(sock: socket.socket) -> bool:
    """Whether the server answers a request on this connection (False: it closed it)."""
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def metric_total(exposition: str, name: str) -> float:
    """The sum of a metric family's samples in a ``/metrics`` text."""
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    return sum(sample.value for sample in families[name].samples)


def start_server(models: Path, log: Path, **env: str) -> ServerProcess:
    """Start ``nexus serve`` on a free loopback port and wait until it answers."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    full_env.update(
        {
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(models),
            "NO_PROXY": "*",
            **env,
        }
    )
    proc = spawn_nexus(["serve"], full_env, log)
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(url, models, proc, log)
    wait_until_up(url, proc, log, server.stop)
    return server


def spawn_nexus(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``nexus ARGS`` in the background, its output in ``log``."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "nexus.cli.main", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def wait_until_up(
    url: str, proc: subprocess.Popen[bytes], log: Path, stop: Callable[[], None]
) -> None:
    """Poll ``url`` until it answers 200; ``stop`` and raise (with the log) if it never does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    stop()
    raise RuntimeError(f"{url} did not start: {log.read_text()[-2000:]}")
