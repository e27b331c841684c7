"""A pull interrupted by killing the server resumes after a restart instead of starting over."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from nexus.registry.parts import PartialFiles
from nexus.store.blobs import BlobStore
from tests.registry.conftest import MODEL_TYPE, SYSTEM_TYPE, blob_files, tiny_blob
from tests.registry.fake_registry import FakeRegistry, digest_of
from tests.support import ServerProcess, start_server

pytestmark = pytest.mark.integration

PART = 256 * 1024
PARTS = 16
STALL_PARTS = 8  # parts before the stall point complete; the others stall at their start


def _completed_parts(files: PartialFiles) -> int:
    """Parts whose saved state says they are complete."""
    done = 0
    for path in files.state_files():
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        done += state["Completed"] == state["Size"]
    return done


def _pull_in_background(server: ServerProcess, name: str) -> threading.Thread:
    def run() -> None:
        try:
            with httpx.Client(timeout=120, trust_env=False) as http:
                http.post(server.url + "/api/pull", json={"model": name, "insecure": True})
        except httpx.HTTPError:
            pass  # the server is killed under it

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_killed_pull_resumes_after_restart(tmp_path: Path, registry: FakeRegistry) -> None:
    weights = tiny_blob(PART * PARTS, seed=11)
    digest = digest_of(weights)
    registry.add_model(
        "library/big",
        "1",
        b'{"model_format":"gguf"}',
        [
            (MODEL_TYPE, weights),
            (SYSTEM_TYPE, b"resume me"),
        ],
    )
    registry.stall_at = STALL_PARTS * PART
    name = f"127.0.0.1:{registry.port}/library/big:1"
    models = tmp_path / "models"
    files = PartialFiles(BlobStore(models).path(digest))

    server = start_server(models, tmp_path / "first.log", NEXUS_PULL_PART_SIZE=str(PART))
    try:
        puller = _pull_in_background(server, name)
        deadline = time.monotonic() + 60
        while _completed_parts(files) < STALL_PARTS:  # bounded: the stall holds the rest
            assert time.monotonic() < deadline, "the first parts never completed"
            assert server.proc.poll() is None
            time.sleep(0.05)
        assert registry.blob_bytes_sent < len(weights)
        server.proc.kill()  # a crash, not a clean shutdown
        server.proc.wait()
    finally:
        server.stop()
    puller.join(30)
    registry.release.set()
    registry.stall_at = None
    assert files.data.exists() and not (models / "blobs" / digest.replace(":", "-")).exists()
    assert not (models / "manifests").exists() or not list((models / "manifests").rglob("1"))

    registry.reset_counts()
    server = start_server(models, tmp_path / "second.log", NEXUS_PULL_PART_SIZE=str(PART))
    try:
        with server.client() as http:
            response = http.post(
                "/api/pull", json={"model": name, "insecure": True, "stream": False}
            )
            assert response.json() == {"status": "success"}, response.text
            listed = [m["name"] for m in http.get("/api/tags").json()["models"]]
    finally:
        server.stop()
    assert name in listed
    # Only what the first run had not saved was fetched again (plus small blobs and probes).
    fetched = registry.blob_bytes_sent
    assert fetched < len(weights)
    assert fetched <= len(weights) - STALL_PARTS * PART + 1000
    stored = (models / "blobs" / digest.replace(":", "-")).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == digest[7:]
    assert not [n for n in blob_files(models) if "partial" in n]
