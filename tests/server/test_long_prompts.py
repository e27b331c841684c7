"""Prompts and inputs far longer than the context: cut (or refused) without the server holding
every token of them. Before, a 6 MB prompt came back from the engine's tokenizer as 4 million
token ids, parsed into a list in the event loop (a 60 MB one: 2.8 s of every client's time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess

pytestmark = pytest.mark.integration

TEXT = "a, [b], {c} " * 500_000  # 6 MB, about 4 million tokens


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(ln for ln in status if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@contextmanager
def peak_growth(pid: int) -> Iterator[list[float]]:
    """The server's largest resident size above its size at the start, in MB, sampled."""
    start = resident_mb(pid)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], resident_mb(pid) - start)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_a_long_generate_prompt_is_cut_from_its_ends(
    server: ServerProcess, http: httpx.Client
) -> None:
    body = {"model": DEFAULT_MODEL, "prompt": TEXT, "stream": False, "options": {"num_predict": 1}}
    with peak_growth(server.proc.pid) as grown:
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
    with peak_growth(server.proc.pid) as grown:
        reply = http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": TEXT})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["truncated"] is True
    assert grown[0] < 100, grown
    refused = http.post(
        "/api/embed", json={"model": DEFAULT_MODEL, "input": TEXT, "truncate": False}
    )
    assert refused.status_code == 400
    assert "more than" in refused.json()["error"]
