"""Prompts and inputs far longer than the context: cut (or refused) without the server holding
every token of them. Before, a 6 MB prompt came back from the engine's tokenizer as 4 million
token ids, parsed into a list in the event loop (a 60 MB one: 2.8 s of every client's time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess, shared_server

pytestmark = pytest.mark.integration

TEXT = "a, [b], {c} " * 500_000  # 6 MB, about 4 million tokens


@contextmanager
def peak_growth(server: ServerProcess) -> Iterator[list[float]]:
    """The server's largest resident size above its size at the start, in MB, sampled."""
    start = server.resident_mb()
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], server.resident_mb() - start)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One like the shared server, but its own: the runner that took these prompts (and its
    prompt cache) is not the one later tests' greedy replies are read from."""
    yield from shared_server(models_dir, tmp_path_factory.mktemp("long-prompts"))


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_a_long_generate_prompt_is_cut_from_its_ends(
    server: ServerProcess, http: httpx.Client
) -> None:
    body = {"model": DEFAULT_MODEL, "prompt": TEXT, "stream": False, "options": {"num_predict": 1}}
    with peak_growth(server) as grown:
        reply = http.post("/api/generate", json=body)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["prompt_eval_count"] == 2047  # the context of 2048, less one
    assert grown[0] < 100, grown  # the body, its text, the engine's copy: not 4 million ids
    refused = http.post("/api/generate", json={**body, "truncate": False})
    assert refused.status_code == 400
    assert "(over 2048 tokens) exceeds the context length" in refused.json()["error"]


def test_a_long_embedding_input_is_cut_from_its_start(
    server: ServerProcess, http: httpx.Client
) -> None:
    with peak_growth(server) as grown:
        reply = http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": TEXT})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["truncated"] is True
    assert grown[0] < 100, grown
    refused = http.post(
        "/api/embed", json={"model": DEFAULT_MODEL, "input": TEXT, "truncate": False}
    )
    assert refused.status_code == 400
    assert "more than" in refused.json()["error"]
