"""``/api/version`` reports the Ollama API version Nexus implements, and Nexus's own."""

from __future__ import annotations

import httpx

from nexus import __version__
from nexus.api.ollama import OLLAMA_API_VERSION


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_version_is_ollamas_and_nexus_is_beside_it(http: httpx.Client) -> None:
    r = http.get("/api/version")
    assert r.status_code == 200
    body = r.json()
    assert body == {"version": OLLAMA_API_VERSION, "nexus_version": __version__}
    # clients gating on Ollama's version (thinking, structured output, logprobs) see a recent one
    assert _release(body["version"]) >= (0, 12, 11)
    assert r.headers["server"] == f"Nexus/{__version__}"


def test_server_header_on_every_route(http: httpx.Client) -> None:
    for path in ("/", "/api/tags", "/v1/models", "/api/nothing"):
        assert http.get(path).headers["server"] == f"Nexus/{__version__}", path
