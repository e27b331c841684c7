"""Faults a long-running server meets: a runner killed, a full disk, damaged store files, a
restart in the middle of a pull. Each must end in a clear error, leave the store consistent
(``nexus doctor`` finds nothing to repair) and leave other requests served."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.store.default_model import default_gguf_path, ensure_default_model
from tests.support import DEFAULT_MODEL, ServerProcess, start_server

pytestmark = pytest.mark.integration

M = DEFAULT_MODEL
SERVER_ENV = {"OLLAMA_CONTEXT_LENGTH": "512", "OLLAMA_NUM_PARALLEL": "1"}


def doctor(models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env["OLLAMA_MODELS"] = str(models)
    return subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def error_of(resp: httpx.Response) -> str:
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return str(body["error"])


def served(srv: ServerProcess) -> None:
    """Other requests are still served."""
    with srv.client() as c:
        assert c.get("/api/tags").status_code == 200
        assert c.get("/api/version").status_code == 200


@pytest.fixture
def store(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    ensure_default_model(models, M)
    return models


@pytest.fixture
def running(store: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(store, tmp_path / "server.log", **SERVER_ENV)
    yield srv
    srv.stop()


def model_blob(models: Path, kind: str = "model") -> Path:
    manifest = next((models / "manifests").rglob("135m"))
    for layer in json.loads(manifest.read_text())["layers"]:
        if layer["mediaType"].endswith(kind):
            return models / "blobs" / layer["digest"].replace(":", "-")
    raise AssertionError("no model layer")


# ---- the runner -------------------------------------------------------------------------------


def test_runner_kill_9_mid_generation(running: ServerProcess) -> None:
    body = {"model": M, "prompt": "1, 2, 3,", "raw": True, "options": {"num_predict": 400}}
    with running.client() as c:
        with c.stream("POST", "/api/generate", json=body) as resp:
            lines = resp.iter_lines()
            assert json.loads(next(lines))["done"] is False
            (pid,) = running.runner_pids()
            os.kill(pid, signal.SIGKILL)
            rest = [json.loads(line) for line in lines if line.strip()]
        assert "runner" in rest[-1]["error"]
        again = c.post(
            "/api/generate", json={**body, "stream": False, "options": {"num_predict": 2}}
        )
        assert again.status_code == 200, again.text
    served(running)
    assert doctor(running.models).returncode == 0


# ---- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB file system: a tmpfs (needs the right to mount), else the test is skipped."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_create_upload(small_disk: Path, tmp_path: Path) -> None:
    srv = start_server(small_disk / "models", tmp_path / "server.log", **SERVER_ENV)
    try:
        data = default_gguf_path().read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with srv.client() as c:
            resp = c.post(f"/api/blobs/{digest}", content=data)
            assert resp.status_code in (500, 507), resp.status_code
            message = error_of(resp)
            assert "space" in message.lower(), message
            assert str(small_disk) not in message
            create = c.post(
                "/api/create", json={"model": "full", "files": {"m.gguf": digest}, "stream": False}
            )
            assert create.status_code >= 400
            error_of(create)
        served(srv)
        assert list((small_disk / "models" / "blobs").glob("*.tmp")) == []
    finally:
        srv.stop()
    assert doctor(small_disk / "models").returncode == 0


def test_disk_full_during_pull(small_disk: Path, tmp_path: Path, server: ServerProcess) -> None:
    srv = start_server(small_disk / "models", tmp_path / "server.log", **SERVER_ENV)
    source = f"127.0.0.1:{server.url.rsplit(':', 1)[1]}/library/{M}"
    try:
        with srv.client() as c:
            resp = c.post("/api/pull", json={"model": source, "insecure": True, "stream": False})
            assert resp.status_code >= 400, resp.text
            assert "space" in error_of(resp).lower(), resp.text
            assert c.post("/api/show", json={"model": source}).status_code == 404
        served(srv)
    finally:
        srv.stop()
    assert doctor(small_disk / "models").returncode == 0


# ---- damaged store files ----------------------------------------------------------------------


def test_manifest_whose_blob_is_missing(store: Path, tmp_path: Path) -> None:
    model_blob(store).unlink()
    srv = start_server(store, tmp_path / "server.log", **SERVER_ENV)
    try:
        with srv.client() as c:
            resp = c.post("/api/generate", json={"model": M, "prompt": "hi", "stream": False})
            assert resp.status_code in (404, 500), resp.text
            message = error_of(resp)
            assert "pull" in message or "missing" in message or "not found" in message, message
            assert str(store) not in message
        served(srv)
    finally:
        srv.stop()
    report = doctor(store)
    assert report.returncode == 1 and "missing" in report.stdout, report.stdout
    assert doctor(store, "--repair").returncode == 0
    assert doctor(store).returncode == 0


def test_unreadable_manifest(store: Path, tmp_path: Path) -> None:
    manifest = next((store / "manifests").rglob("135m"))
    manifest.unlink()
    manifest.mkdir()  # unreadable as a file, whoever the tests run as
    srv = start_server(store, tmp_path / "server.log", **SERVER_ENV)
    try:
        with srv.client() as c:
            assert c.get("/api/tags").json()["models"] == []
            resp = c.post("/api/show", json={"model": M})
            assert 400 <= resp.status_code < 600
            error_of(resp)
        served(srv)
    finally:
        srv.stop()


def test_truncated_gguf_blob(store: Path, tmp_path: Path) -> None:
    blob = model_blob(store)
    with blob.open("r+b") as f:
        f.truncate(4096)
    srv = start_server(store, tmp_path / "server.log", **SERVER_ENV)
    try:
        with srv.client() as c:
            resp = c.post("/api/generate", json={"model": M, "prompt": "hi", "stream": False})
            assert 400 <= resp.status_code < 600 and resp.status_code != 200
            message = error_of(resp)
            assert str(store) not in message, message
        served(srv)
    finally:
        srv.stop()
    report = doctor(store)
    assert report.returncode == 1 and "bytes where the manifest says" in report.stdout


def test_non_gguf_layer_is_refused_at_create(running: ServerProcess) -> None:
    data = b"this is not a GGUF file\n" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with running.client() as c:
        assert c.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
        resp = c.post(
            "/api/create", json={"model": "notgguf", "files": {"x.gguf": digest}, "stream": False}
        )
        assert resp.status_code == 400, resp.text
        error_of(resp)
        assert c.post("/api/show", json={"model": "notgguf"}).status_code == 404
    served(running)


# ---- a restart in the middle of a pull --------------------------------------------------------


def test_restart_mid_pull_resumes(tmp_path: Path, server: ServerProcess) -> None:
    models = tmp_path / "models"
    source = f"127.0.0.1:{server.url.rsplit(':', 1)[1]}/library/{M}"
    env: dict[str, Any] = {**SERVER_ENV, "NEXUS_PULL_PART_SIZE": str(8 << 20)}
    srv = start_server(models, tmp_path / "first.log", **env)
    try:
        with (
            srv.client() as c,
            c.stream("POST", "/api/pull", json={"model": source, "insecure": True}) as resp,
        ):
            for line in resp.iter_lines():
                event = json.loads(line)
                if event.get("completed", 0) > 0:
                    srv.proc.send_signal(signal.SIGKILL)
                    break
        srv.proc.wait(30)
    finally:
        srv.stop()
    assert list((models / "blobs").glob("*-partial*")), "nothing was left to resume"
    again = start_server(models, tmp_path / "second.log", **env)
    try:
        with again.client() as c:
            resp = c.post("/api/pull", json={"model": source, "insecure": True, "stream": False})
            assert resp.json() == {"status": "success"}, resp.text
            gen = {"model": source, "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
            assert c.post("/api/generate", json=gen).status_code == 200
    finally:
        again.stop()
    assert list((models / "blobs").glob("*-partial*")) == []
    assert doctor(models).returncode == 0


def test_doctor_finds_and_repairs_a_corrupt_blob(store: Path) -> None:
    config = json.loads(next((store / "manifests").rglob("135m")).read_text())["config"]
    blob = store / "blobs" / config["digest"].replace(":", "-")
    blob.write_bytes(b"x" * blob.stat().st_size)  # same size, other content
    orphan = store / "blobs" / ("sha256-" + "d" * 64)
    orphan.write_bytes(b"orphan")
    leftover = store / "blobs" / "sha256-zzzz.tmp"
    leftover.write_bytes(b"x")
    report = doctor(store)
    assert report.returncode == 1
    assert "content hashes to" in report.stdout and "referenced by no manifest" in report.stdout
    repaired = doctor(store, "--repair")
    assert repaired.returncode == 0, repaired.stdout
    assert not orphan.exists() and not leftover.exists() and not blob.exists()
    assert doctor(store).returncode == 0
