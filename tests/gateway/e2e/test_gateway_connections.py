"""One address cannot take every connection the gateway keeps: past
NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS its connections are closed at once, others still served."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.e2e.conftest import GATEWAY_ENV
from tests.gateway.e2e.test_gateway_large_replies import MODEL, BigBackend
from tests.gateway.harness import openai_gateway
from tests.support import answers, open_connections

MOST = 20


def test_one_client_cannot_take_every_connection(tmp_path: Path) -> None:
    backend = BigBackend()
    env = {**GATEWAY_ENV, "NEXUS_GATEWAY_MAX_CLIENT_CONNECTIONS": str(MOST)}
    try:
        with openai_gateway(tmp_path, "big", backend.url, **env) as (gateway, key):
            flood = open_connections(gateway.url, MOST + 10, source="127.0.0.2")
            try:
                assert [answers(sock) for sock in flood] == [True] * MOST + [False] * 10
                with gateway.client(key) as http:
                    reply = http.post(
                        "/v1/embeddings", json={"model": MODEL, "input": ["a"], "dimensions": 2}
                    )
                    assert len(reply.json()["data"]) == 2
            finally:
                for sock in flood:
                    sock.close()
            assert f"127.0.0.2 has {MOST} open, its most" in gateway.log.read_text()
    finally:
        backend.stop()
