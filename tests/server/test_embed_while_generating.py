"""An embedding does not wait for the generations running on its model (llama.cpp's server
never batches the two, so it gets a runner of its own while the model generates)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nexus.runner.spec import default_threads
from tests.support import DEFAULT_MODEL, ServerProcess, metric_total, start_server

COUNTING = {"model": DEFAULT_MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "raw": True,
            "options": {"num_predict": 4000, "temperature": 0}}  # fmt: skip


@pytest.fixture
def four_slots(models_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(
        models_dir, tmp_path / "server.log", OLLAMA_NUM_PARALLEL="4", OLLAMA_CONTEXT_LENGTH="4096"
    )
    yield srv
    srv.stop()


def runner_spec(pid: int) -> dict[str, object]:
    """The spec a runner was started with: its first argument."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    spec: dict[str, object] = json.loads(next(a for a in args if a.startswith(b"{")))
    return spec


def busy_slots(http: httpx.Client) -> float:
    return metric_total(http.get("/metrics").text, "nexus_slots_busy")


def test_embed_answers_while_generations_run(four_slots: ServerProcess) -> None:
    with four_slots.client() as http, four_slots.client() as streams:
        http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": "warm"}).raise_for_status()
        with (
            streams.stream("POST", "/api/generate", json=COUNTING) as first,
            streams.stream("POST", "/api/generate", json=COUNTING) as second,
        ):
            lines = [first.iter_lines(), second.iter_lines()]
            for stream in lines:
                assert json.loads(next(stream))["done"] is False
            embedded = http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": "°"})
            assert embedded.status_code == 200
            assert len(embedded.json()["embeddings"][0]) > 10
            # both generations were still running when the embedding came back
            assert busy_slots(http) >= 2
            for stream in lines:
                assert json.loads(next(stream))["done"] is False
            names = [m["name"] for m in http.get("/api/ps").json()["models"]]
            assert names == [DEFAULT_MODEL]
            for stream in lines:
                stream.close()
        assert len(four_slots.runner_pids()) == 2
        # the embeddings runner computes beside the generating one: half the threads
        specs = [runner_spec(pid) for pid in four_slots.runner_pids()]
        generating = next(s for s in specs if not s["embeddings_only"])
        embedding = next(s for s in specs if s["embeddings_only"])
        threads = generating["num_thread"] or default_threads()
        assert embedding["num_thread"] == max(1, threads // 2)
        http.post("/api/generate", json={"model": DEFAULT_MODEL, "keep_alive": 0})
        assert http.get("/api/ps").json()["models"] == []
