"""Two gateway replicas on one PostgreSQL database share keys, revocations and usage."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.gateway.e2e.conftest import GATEWAY_ENV, Stack
from tests.gateway.harness import create_key, gateway_env, revoke_key, start_gateway
from tests.support import DEFAULT_MODEL

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}],
        "stream": False, "options": {"num_predict": 2}}  # fmt: skip


def until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_replicas_share_keys_revocations_and_usage(
    stack: Stack, pg_url: str, tmp_path: Path
) -> None:
    env = gateway_env(tmp_path / "unused.db", OLLAMA_BASE_URL=stack.a.url, **GATEWAY_ENV)
    env["NEXUS_GATEWAY_DB"] = pg_url
    key = create_key(env, "shared")
    first = start_gateway(env, tmp_path / "g1.log")
    second = start_gateway(env, tmp_path / "g2.log")
    try:
        counts = []
        for gateway in (first, second):
            gateway.wait_for("ollama")
            with gateway.client(key) as http:
                reply = http.post("/api/chat", json=CHAT)
                assert reply.status_code == 200
                counts.append((reply.json()["prompt_eval_count"], reply.json()["eval_count"]))

        def usage() -> str:
            return subprocess.run(
                [sys.executable, "-m", "nexus.cli.main", "gateway", "usage", "--key", "shared"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip

        prompt = sum(c[0] for c in counts)
        completion = sum(c[1] for c in counts)
        expected = f"shared {DEFAULT_MODEL} 2 {prompt} {completion}"
        until(lambda: expected in " ".join(usage().split()))

        revoke_key(env, "shared")
        for gateway in (first, second):
            with gateway.client(key) as http:
                until(lambda http=http: http.get("/api/tags").status_code == 401)
        assert httpx.get(f"{first.url}/health", trust_env=False).status_code == 200
    finally:
        first.stop()
        second.stop()
