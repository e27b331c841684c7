"""Two real ``nexus serve`` backends behind a real ``nexus gateway``, shared by a session.

Backend ``ollama`` (A) has the default model; backend ``ollama-2`` (B) has it too, plus
``other:latest``, a copy only B lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nexus.store.default_model import ensure_default_model
from tests.gateway.harness import GatewayProcess, create_key, gateway_env, start_gateway
from tests.support import DEFAULT_MODEL, ServerProcess, start_server

BACKEND_ENV = {"OLLAMA_CONTEXT_LENGTH": "1024", "OLLAMA_NUM_PARALLEL": "2"}
GATEWAY_ENV = {"NEXUS_GATEWAY_POLL_INTERVAL": "0.2", "NEXUS_GATEWAY_KEY_REFRESH": "0.1"}


def start_backend(root: Path, name: str, **env: str) -> ServerProcess:
    models = root / f"models-{name}"
    ensure_default_model(models, DEFAULT_MODEL)
    return start_server(models, root / f"{name}.log", **{**BACKEND_ENV, **env})


@dataclass
class Stack:
    a: ServerProcess
    b: ServerProcess
    gateway: GatewayProcess
    key: str
    admin: str

    @property
    def env(self) -> dict[str, str]:
        return self.gateway.env

    def client(self, key: str | None = None) -> httpx.Client:
        return self.gateway.client(key if key is not None else self.key)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("gateway-stack")
    a = start_backend(root, "a")
    b = start_backend(root, "b")
    try:
        with b.client() as http:
            http.post(
                "/api/copy", json={"source": DEFAULT_MODEL, "destination": "other"}
            ).raise_for_status()
        env = gateway_env(root / "gateway.db", OLLAMA_BASE_URL=f"{a.url},{b.url}", **GATEWAY_ENV)
        key = create_key(env, "main")
        admin = create_key(env, "admin", "--admin")
        gateway = start_gateway(env, root / "gateway.log")
        gateway.wait_for("ollama")
        gateway.wait_for("ollama-2")
        yield Stack(a, b, gateway, key, admin)
        gateway.stop()
    finally:
        a.stop()
        b.stop()
