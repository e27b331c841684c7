"""Pull and push in process against the fake registry: resume, verification, auth, sharing."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.registry.client import RegistryClient
from nexus.registry.download import TransferTable
from nexus.registry.errors import (
    BlobDigestMismatch,
    DiskFull,
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from nexus.registry.files import store_error
from nexus.registry.options import TransferOptions
from nexus.registry.parts import PartialFiles, split_parts
from nexus.registry.pull import PullJob, pull_model
from nexus.registry.reference import parse_reference
from nexus.store.names import ModelName
from nexus.store.store import Store
from tests.registry.conftest import TINY_REPO, TINY_TAG, blob_files
from tests.registry.fake_registry import FakeRegistry, digest_of
from tests.support import free_port

PART = 64 * 1024
Chunk = dict[str, Any]


def _options(**kwargs: Any) -> TransferOptions:
    return TransferOptions(part_size=PART, backoff_s=0.01, progress_interval_s=0.01, **kwargs)


async def _pull(
    store: Store,
    name: str,
    *,
    table: TransferTable | None = None,
    options: TransferOptions | None = None,
) -> list[Chunk]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        ref = parse_reference(name, insecure=True)
        job = PullJob(
            store=store,
            client=RegistryClient(http, ref.name.host),
            table=table or TransferTable(),
            options=options or _options(),
            trust_env=False,
        )
        return [chunk async for chunk in pull_model(job, ref)]


def _statuses(chunks: list[Chunk]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        if not out or out[-1] != chunk["status"]:
            out.append(chunk["status"])
    return out


def _name(registry: FakeRegistry) -> str:
    return f"127.0.0.1:{registry.port}/{TINY_REPO}:{TINY_TAG}"


async def test_pull_stores_verified_blobs_and_the_manifest_bytes(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, manifest, weights = tiny_model
    store = Store(tmp_path)
    chunks = await _pull(store, _name(registry))
    layers = json.loads(manifest)["layers"]
    config = json.loads(manifest)["config"]
    expected = ["pulling manifest"]
    expected += [f"pulling {d['digest'][7:19]}" for d in [*layers, config]]
    expected += ["verifying sha256 digest", "writing manifest", "success"]
    assert _statuses(chunks) == expected
    for chunk in chunks:
        if "digest" in chunk:
            assert 0 <= chunk["completed"] <= chunk["total"]
    name = ModelName("127.0.0.1:" + str(registry.port), "library", "tiny", TINY_TAG)
    assert store.manifests.path(name).read_bytes() == manifest  # byte for byte: same digest
    assert store.blobs.path(digest_of(weights)).read_bytes() == weights
    assert all("partial" not in n for n in blob_files(tmp_path))
    assert registry.blob_bytes_sent <= len(weights) + 300  # each byte once (+ 1-byte probes)


async def test_pull_again_fetches_nothing(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, _ = tiny_model
    store = Store(tmp_path)
    await _pull(store, _name(registry))
    registry.reset_counts()
    chunks = await _pull(store, _name(registry))
    assert registry.blob_bytes_sent == 0
    layer_chunks = [c for c in chunks if "digest" in c]
    assert len(layer_chunks) == 3
    assert all(c["completed"] == c["total"] for c in layer_chunks)
    assert chunks[-1] == {"status": "success"}


async def test_pull_resumes_from_saved_parts(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, weights = tiny_model
    store = Store(tmp_path)
    digest = digest_of(weights)
    # An earlier pull got the first 5 parts and half of the 6th before it stopped.
    files = PartialFiles(store.blobs.path(digest))
    parts = split_parts(len(weights), PART)
    files.create(parts, len(weights))
    done = 5 * PART + PART // 2
    with files.data.open("r+b") as f:
        f.write(weights[:done])
    for part in parts[:5]:
        part.completed = part.size
        files.save(part)
    parts[5].completed = PART // 2
    files.save(parts[5])

    chunks = await _pull(store, _name(registry))
    assert chunks[-1] == {"status": "success"}
    first = next(c for c in chunks if c.get("digest") == digest)
    assert first["completed"] >= done  # progress starts from what was there
    fetched = registry.blob_bytes_sent
    assert len(weights) - done <= fetched <= len(weights) - done + 300
    assert hashlib.sha256(store.blobs.path(digest).read_bytes()).hexdigest() == digest[7:]
    assert all("partial" not in n for n in blob_files(tmp_path))


async def test_corrupt_blob_is_refused_and_nothing_is_written(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, weights = tiny_model
    digest = digest_of(weights)
    bad = bytearray(weights)
    bad[1000] ^= 0xFF
    registry.blobs[digest] = bytes(bad)
    store = Store(tmp_path)
    with pytest.raises(BlobDigestMismatch) as caught:
        await _pull(store, _name(registry))
    assert caught.value.message == (
        f"digest mismatch, file must be downloaded again: want {digest}, "
        f"got {digest_of(bytes(bad))}"
    )
    assert store.manifests.names() == []
    assert not store.blobs.path(digest).exists()
    assert not [n for n in blob_files(tmp_path) if n.startswith(digest.replace(":", "-"))]
    assert store.blobs.all_digests() == set()


async def test_failed_pull_keeps_the_old_manifest(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, manifest, weights = tiny_model
    store = Store(tmp_path)
    await _pull(store, _name(registry))
    # The registry now has a new version whose weights arrive corrupted.
    new_weights = weights[::-1]
    new_manifest = registry.add_model(
        TINY_REPO, TINY_TAG, b"{}", [("application/vnd.ollama.image.model", new_weights)]
    )
    registry.blobs[digest_of(new_weights)] = weights
    with pytest.raises(BlobDigestMismatch):
        await _pull(store, _name(registry))
    name = ModelName.parse(_name(registry))
    assert store.manifests.path(name).read_bytes() == manifest != new_manifest
    assert store.blobs.exists(digest_of(weights))


async def test_replacing_a_model_removes_its_unused_layers(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, weights = tiny_model
    store = Store(tmp_path)
    await _pull(store, _name(registry))
    registry.add_model(
        TINY_REPO, TINY_TAG, b"{}", [("application/vnd.ollama.image.model", b"new weights")]
    )
    chunks = await _pull(store, _name(registry))
    assert _statuses(chunks)[-3:] == ["writing manifest", "removing unused layers", "success"]
    assert not store.blobs.exists(digest_of(weights))
    assert store.blobs.exists(digest_of(b"new weights"))


async def test_unknown_model(tmp_path: Path, registry: FakeRegistry) -> None:
    with pytest.raises(RegistryNotFound) as caught:
        await _pull(Store(tmp_path), f"127.0.0.1:{registry.port}/library/nope:latest")
    assert caught.value.message == "pull model manifest: file does not exist"
    assert caught.value.status == 404


async def test_unreachable_registry(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(RegistryUnreachable) as caught:
        await _pull(Store(tmp_path), f"127.0.0.1:{port}/library/tiny:1")
    assert caught.value.message.startswith("pull model manifest: ")
    assert f"127.0.0.1:{port}" in caught.value.message


async def test_bearer_challenge_is_answered(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, _ = tiny_model
    registry.token = "t0ken"
    chunks = await _pull(Store(tmp_path), _name(registry))
    assert chunks[-1] == {"status": "success"}
    assert len(registry.token_requests) == 1
    query = registry.token_requests[0]
    assert query["service"] == ["fake"]
    assert query["scope"] == ["repository:library/tiny:pull"]
    assert "ts" in query and "nonce" in query


async def test_a_token_the_registry_refuses_is_unauthorized(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, _ = tiny_model
    registry.token = "t0ken"

    async def wrong_token(url: str, header: str) -> str:
        return "not-the-token"

    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        ref = parse_reference(_name(registry), insecure=True)
        client = RegistryClient(http, ref.name.host)
        client._fetch_token = wrong_token
        job = PullJob(Store(tmp_path), client, TransferTable(), _options(), trust_env=False)
        with pytest.raises(RegistryUnauthorized) as caught:
            async for _ in pull_model(job, ref):
                pass
    assert caught.value.message == "pull model manifest: unauthorized"
    assert caught.value.status == 401


async def test_concurrent_pulls_share_one_download(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, weights = tiny_model
    digest = digest_of(weights)
    registry.stall_at = len(weights) // 2
    store = Store(tmp_path)
    table = TransferTable()
    seen = [asyncio.Event(), asyncio.Event()]

    async def pull(index: int) -> list[Chunk]:
        out: list[Chunk] = []
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            ref = parse_reference(_name(registry), insecure=True)
            client = RegistryClient(http, ref.name.host)
            job = PullJob(store, client, table, _options(), trust_env=False)
            gen: AsyncIterator[Chunk] = pull_model(job, ref)
            async for chunk in gen:
                out.append(chunk)
                if chunk.get("digest") == digest:
                    seen[index].set()
        return out

    tasks = [asyncio.ensure_future(pull(0)), asyncio.ensure_future(pull(1))]
    await asyncio.wait_for(asyncio.gather(seen[0].wait(), seen[1].wait()), 30)
    registry.release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert all(r[-1] == {"status": "success"} for r in results)
    # Both watched one download: the stalled half is fetched once, never twice.
    assert registry.blob_bytes_sent < len(weights) + len(weights) // 2
    assert store.blobs.path(digest).read_bytes() == weights


async def test_leaving_a_pull_cancels_its_download_and_keeps_the_parts(
    tmp_path: Path, tiny_model: tuple[FakeRegistry, bytes, bytes]
) -> None:
    registry, _, weights = tiny_model
    digest = digest_of(weights)
    registry.stall_at = len(weights) // 2
    store = Store(tmp_path)
    table = TransferTable()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        ref = parse_reference(_name(registry), insecure=True)
        job = PullJob(
            store, RegistryClient(http, ref.name.host), table, _options(), trust_env=False
        )
        pulling = pull_model(job, ref)
        async for chunk in pulling:
            if chunk.get("digest") == digest and chunk["completed"] >= len(weights) // 2:
                break
        download = table._active[digest]
        await pulling.aclose()  # the client went away
        assert download.task is not None
        with pytest.raises(asyncio.CancelledError):
            await download.task
    registry.release.set()
    files = PartialFiles(store.blobs.path(digest))
    saved = files.load(len(weights))
    assert saved is not None
    assert sum(p.completed for p in saved) >= len(weights) // 2
    assert store.manifests.names() == []


async def test_not_enough_disk_space(
    tmp_path: Path,
    tiny_model: tuple[FakeRegistry, bytes, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, _, weights = tiny_model
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        "nexus.registry.download.shutil.disk_usage",
        lambda path: usage._replace(free=1000),
    )
    with pytest.raises(DiskFull) as caught:
        await _pull(Store(tmp_path), _name(registry))
    assert caught.value.status == 507
    assert f"need {len(weights)} bytes, 1000 available" in caught.value.message
    assert Store(tmp_path).manifests.names() == []


def test_full_disk_errors_are_reported_as_such() -> None:
    full = store_error(OSError(errno.ENOSPC, "No space left on device"), "write x")
    assert isinstance(full, DiskFull)
    assert full.message == "write x: no space left on device"
    other = store_error(OSError(errno.EACCES, "Permission denied"), "write x")
    assert not isinstance(other, DiskFull)
    assert other.message == "write x: Permission denied"
