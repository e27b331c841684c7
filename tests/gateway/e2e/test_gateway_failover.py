"""A backend that dies: requests go on to the other one; a broken stream ends with an error."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.e2e.conftest import GATEWAY_ENV, start_backend
from tests.gateway.harness import GatewayProcess, create_key, gateway_env, start_gateway
from tests.support import DEFAULT_MODEL, ServerProcess, address

GENERATE = {"model": DEFAULT_MODEL, "prompt": "Hello", "stream": False,
            "options": {"num_predict": 2}}  # fmt: skip


def start_pair(root: Path) -> tuple[ServerProcess, ServerProcess, GatewayProcess, str]:
    a = start_backend(root, "a")
    b = start_backend(root, "b")
    env = gateway_env(root / "gw.db", OLLAMA_BASE_URL=f"{a.url},{b.url}", **GATEWAY_ENV)
    key = create_key(env, "k")
    gateway = start_gateway(env, root / "gw.log")
    gateway.wait_for("ollama")
    gateway.wait_for("ollama-2")
    return a, b, gateway, key


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, GatewayProcess, str]]:
    a, b, gateway, key = start_pair(tmp_path)
    yield a, b, gateway, key
    gateway.stop()
    a.stop()
    b.stop()


def kill(server: ServerProcess) -> None:
    """``kill -9`` the server (its runners end when their parent's pipe closes)."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()


def test_requests_survive_a_backend_killed_during_a_run(
    pair: tuple[ServerProcess, ServerProcess, GatewayProcess, str],
) -> None:
    a, b, gateway, key = pair
    served: list[str] = []
    with gateway.client(key) as http:
        for i in range(24):
            if i == 8:
                target = a if served[-1] == "ollama" else b
                kill(target)
                survivor = "ollama-2" if target is a else "ollama"
            reply = http.post("/api/generate", json=GENERATE)
            assert reply.status_code == 200, reply.text
            served.append(reply.headers["x-nexus-backend"])
        assert set(served[9:]) == {survivor}
        ready = http.get("/health/ready").json()
        assert ready["up"] == [survivor]
        retried = http.get("/metrics").text
    assert "nexus_gateway_retries_total" in retried


def test_a_stream_broken_by_its_backend_ends_with_an_error_line(
    pair: tuple[ServerProcess, ServerProcess, GatewayProcess, str],
) -> None:
    a, b, gateway, key = pair
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Tell a story"}],
            "options": {"num_predict": 4000, "temperature": 0}}  # fmt: skip
    lines = []
    with gateway.client(key) as http, http.stream("POST", "/api/chat", json=body) as reply:
        assert reply.status_code == 200
        victim = a if reply.headers["x-nexus-backend"] == "ollama" else b
        for line in reply.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 2:
                kill(victim)
    assert lines[-1].get("error"), lines[-3:]
    assert "mid-stream" in lines[-1]["error"]
    assert not lines[-1].get("done")

    sse = {"model": DEFAULT_MODEL, "messages": body["messages"], "stream": True,
           "max_tokens": 4000}  # fmt: skip
    survivor = b if victim is a else a
    events = []
    with (
        gateway.client(key) as http,
        http.stream("POST", "/v1/chat/completions", json=sse) as reply,
    ):
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: "):
                events.append(line)
                if len(events) == 2:
                    kill(survivor)
    assert "error" in json.loads(events[-1].removeprefix("data: "))
    with gateway.client(key) as http:
        gone = http.post("/api/generate", json=GENERATE)
        assert gone.status_code in (502, 503)
        assert "error" in gone.json()


def test_no_backend_up_is_503_and_not_ready(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "gw.db", OLLAMA_BASE_URL="http://127.0.0.1:9", **GATEWAY_ENV)
    key = create_key(env, "k")
    gateway = start_gateway(env, tmp_path / "gw.log")
    try:
        with gateway.client(key) as http:
            assert http.get("/health/ready").status_code == 503
            reply = http.post("/v1/chat/completions", json={"model": "m", "messages": []})
            assert reply.status_code == 503
            assert reply.json()["error"]["type"] == "server_error"
            assert httpx.get(f"{gateway.url}/health", trust_env=False).status_code == 200
    finally:
        gateway.stop()


def test_stalled_clients_are_cut_off(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "gw.db", OLLAMA_BASE_URL="http://127.0.0.1:9",
                      NEXUS_GATEWAY_READ_TIMEOUT="0.5", **GATEWAY_ENV)  # fmt: skip
    key = create_key(env, "k")
    gateway = start_gateway(env, tmp_path / "gw.log")
    try:
        silent = [socket.create_connection(address(gateway.url)) for _ in range(20)]
        slow_head = socket.create_connection(address(gateway.url))
        slow_head.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\n")
        stalled = socket.create_connection(address(gateway.url))
        stalled.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Length: 100000\r\n\r\n{\"model\""
        )  # fmt: skip
        for sock in (*silent, slow_head):
            sock.settimeout(30)
            assert sock.recv(1024) == b""  # closed by the gateway
        stalled.settimeout(30)
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        with gateway.client() as http:
            assert http.get("/health").status_code == 200
    finally:
        for sock in (*silent, slow_head, stalled):
            sock.close()
        gateway.stop()
