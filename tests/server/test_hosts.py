"""DNS-rebinding protection on a loopback-bound server, as Ollama has it."""

from __future__ import annotations

import socket

import httpx
import pytest

from nexus.server.hosts import host_allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("", True),
        ("localhost", True),
        ("localhost:11434", True),
        ("127.0.0.1:11434", True),
        ("[::1]:11434", True),
        ("10.0.0.5:11434", True),
        ("192.168.1.2", True),
        ("0.0.0.0", True),
        ("printer.local", True),
        ("box.internal:8080", True),
        ("app.localhost", True),
        ("evil.example.com", False),
        ("8.8.8.8", False),
        ("localhost.evil.com", False),
    ],
)
def test_host_rules(host: str, allowed: bool) -> None:
    assert host_allowed(host, "my-machine") is allowed


def test_own_hostname_is_allowed() -> None:
    assert host_allowed(f"{socket.gethostname()}:11434", socket.gethostname())


def test_foreign_host_is_refused_without_body(http: httpx.Client) -> None:
    refused = http.get("/api/tags", headers={"Host": "attacker.example.com"})
    assert refused.status_code == 403
    assert refused.content == b""
    allowed = http.get("/api/tags", headers={"Host": "localhost:11434"})
    assert allowed.status_code == 200
    assert "models" in allowed.json()
