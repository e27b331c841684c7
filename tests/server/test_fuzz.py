"""Schemathesis against a real server: its own OpenAPI document, and Ollama's.

Requests are generated from each document and sent to a server with an empty store; no answer
may be a 5xx, none may take longer than the request timeout, and documented responses must
match their schemas. ``NEXUS_FUZZ_SECONDS`` sets each run's time budget (``make fuzz`` runs it
longer than ``make test``). Pull, push and create are left out: they reach registries and files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ServerProcess, start_server

pytestmark = pytest.mark.integration

OLLAMA_SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ollama-openapi.yaml"
SECONDS = int(os.environ.get("NEXUS_FUZZ_SECONDS", "25"))
REQUEST_TIMEOUT_S = 10
EXCLUDED = r"^/api/(pull|push|create)$"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    srv = start_server(root / "models", root / "server.log", NEXUS_READ_TIMEOUT="5s")
    yield srv
    srv.stop()


def schemathesis(
    schema: str, server: ServerProcess, report: Path
) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [
            str(cli),
            "run",
            schema,
            "--url",
            server.url,
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-time",
            str(SECONDS),
            "--request-timeout",
            str(REQUEST_TIMEOUT_S),
            "--exclude-path-regex",
            EXCLUDED,
            "--workers",
            "1",
            "--seed",
            "1",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS * 4 + 120,
        cwd=report.parent,  # its cache goes there, not into the repository
        env={**os.environ, "NO_PROXY": "*", "SCHEMATHESIS_HOOKS": ""},
    )


def test_own_document_lists_every_route(fuzzed: ServerProcess) -> None:
    doc = httpx.get(f"{fuzzed.url}/openapi.json", trust_env=False).json()
    paths = doc["paths"]
    for path in ("/api/generate", "/api/chat", "/v1/chat/completions", "/v1/messages", "/v2/"):
        assert path in paths
    body = paths["/api/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ChatRequest")
    assert "messages" in doc["components"]["schemas"]["ChatRequest"]["properties"]


def test_fuzz_own_document(fuzzed: ServerProcess, tmp_path: Path) -> None:
    result = schemathesis(f"{fuzzed.url}/openapi.json", fuzzed, tmp_path / "own.xml")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert httpx.get(fuzzed.url, trust_env=False).status_code == 200


@pytest.mark.skipif(not OLLAMA_SPEC.is_file(), reason="Ollama's OpenAPI document is not here")
def test_fuzz_ollama_document(fuzzed: ServerProcess, tmp_path: Path) -> None:
    result = schemathesis(str(OLLAMA_SPEC), fuzzed, tmp_path / "ollama.xml")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert httpx.get(fuzzed.url, trust_env=False).status_code == 200
