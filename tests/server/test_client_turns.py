"""Slots go to waiting clients in turn (``nexus.scheduler.fairness``): against a real server with
one slot, held while requests queue, a request from another address is served right after the
request whose turn it was, not after a whole burst from one address, and one address cannot fill
the whole queue."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess, metric_total, stalled_embed, start_server

pytestmark = pytest.mark.integration

BURST = 6


@pytest.fixture(scope="module")
def one_slot(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("client-turns") / "server.log"
    srv = start_server(
        models_dir, log, OLLAMA_NUM_PARALLEL="1", OLLAMA_CONTEXT_LENGTH="1024", OLLAMA_MAX_QUEUE="8"
    )
    yield srv
    srv.stop()


def client_at(url: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, trust_env=False, timeout=120)


def generate(http: httpx.Client, tokens: int) -> httpx.Response:
    body = {"model": DEFAULT_MODEL, "prompt": "Tell me a story.", "stream": False,
            "options": {"num_predict": tokens, "temperature": 0}}  # fmt: skip
    return http.post("/api/generate", json=body)


def queue_depth(http: httpx.Client) -> float:
    return metric_total(http.get("/metrics").text, "nexus_queue_depth")


def wait_until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + 60
    while not check():
        assert time.monotonic() < end, what
        time.sleep(0.02)


@contextmanager
def slot_held(server: ServerProcess, http: httpx.Client) -> Iterator[None]:
    """The one slot held, until the block ends, by an embedding of many inputs whose client
    reads nothing (its reply backs up; closing the connection frees the slot)."""
    sock = stalled_embed(server.url, 5000)
    try:
        wait_until(lambda: metric_total(http.get("/metrics").text, "nexus_slots_busy") >= 1,
                   "the embedding never took the slot")  # fmt: skip
        yield
    finally:
        sock.close()


def test_another_address_is_served_before_the_rest_of_a_burst(one_slot: ServerProcess) -> None:
    finished: list[str] = []
    lock = threading.Lock()

    def request(address: str, name: str) -> int:
        with client_at(one_slot.url, address) as http:
            status = generate(http, 4).status_code
        with lock:
            finished.append(name)
        return status

    with one_slot.client() as http, concurrent.futures.ThreadPoolExecutor(BURST + 1) as pool:
        assert generate(http, 1).status_code == 200  # loaded
        with slot_held(one_slot, http):
            burst = [pool.submit(request, "127.0.0.2", f"burst{n}") for n in range(BURST)]
            wait_until(lambda: queue_depth(http) == BURST, "the burst never queued")
            other = pool.submit(request, "127.0.0.3", "other")
            wait_until(lambda: queue_depth(http) == BURST + 1, "the other never queued")
        assert {f.result() for f in [*burst, other]} == {200}
    assert finished.index("other") == 1, finished  # right after the burst's first


def test_one_address_cannot_fill_the_whole_queue(one_slot: ServerProcess) -> None:
    """OLLAMA_MAX_QUEUE 8: one address gets 7 places, the eighth stays for another."""

    def request(address: str) -> int:
        with client_at(one_slot.url, address) as http:
            return generate(http, 2).status_code

    with one_slot.client() as http, concurrent.futures.ThreadPoolExecutor(9) as pool:
        with slot_held(one_slot, http):
            burst = [pool.submit(request, "127.0.0.2") for _ in range(8)]
            refused = next(concurrent.futures.as_completed(burst))
            assert refused.result() == 503
            wait_until(lambda: queue_depth(http) == 7, "the burst never queued")
            other = pool.submit(request, "127.0.0.3")
            wait_until(lambda: queue_depth(http) == 8, "the other was not queued")
        assert other.result() == 200
        assert sorted(f.result() for f in burst) == [200] * 7 + [503]
