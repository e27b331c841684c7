"""Pulling a model: manifest, then each blob, verified, then the manifest written last.

Nothing enters the store until every new blob has been downloaded and hashed: the blobs are
renamed into place and the manifest written in one step under the store lock, so a failed
pull leaves the store as it was (its partial files stay, for the next pull to resume).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nexus.errors import InvalidDigest, ModelNotFound, NexusError, StoreError
from nexus.registry.client import RegistryClient
from nexus.registry.download import BlobDownload, TransferTable, short, verify_partial
from nexus.registry.errors import RegistryError, RegistryNotFound
from nexus.registry.files import move_into_place, store_error
from nexus.registry.options import TransferOptions
from nexus.registry.parts import PartialFiles
from nexus.registry.reference import RegistryRef
from nexus.store.blobs import parse_digest
from nexus.store.manifests import MANIFEST_MEDIA_TYPE, Manifest, write_atomic
from nexus.store.names import ModelName
from nexus.store.store import Store

log = logging.getLogger(__name__)

Chunk = dict[str, Any]

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}"
_MAX_MANIFEST_BYTES = 16 << 20


def prefixed(exc: NexusError, prefix: str) -> NexusError:
    """The same error with ``prefix: `` in front of its message."""
    exc.message = f"{prefix}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def parse_manifest(raw: bytes) -> Manifest:
    """A registry's manifest, refused unless every digest is a valid sha256 digest."""
    try:
        manifest = Manifest.model_validate_json(raw)
        for layer in (manifest.config, *manifest.layers):
            layer.digest = parse_digest(layer.digest)
            if layer.size < 0:
                raise ValueError("negative layer size")
    except (ValidationError, InvalidDigest, ValueError) as exc:
        raise RegistryError(f"invalid manifest: {exc}") from None
    return manifest


async def fetch_manifest(client: RegistryClient, ref: RegistryRef) -> tuple[Manifest, bytes]:
    """GET the manifest by tag; errors read ``pull model manifest: …`` as Ollama's do."""
    try:
        response = await client.send("GET", ref.manifest_url(), headers={"Accept": MANIFEST_ACCEPT})
        raw = response.content
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise RegistryError("manifest too large")
        return parse_manifest(raw), raw
    except NexusError as exc:
        raise prefixed(exc, "pull model manifest") from None


@dataclass(frozen=True)
class PullJob:
    """What one pull needs besides the name: where from, and the shared download table."""

    store: Store
    client: RegistryClient
    table: TransferTable
    options: TransferOptions
    trust_env: bool = True


def _layer_progress(digest: str, size: int) -> Chunk:
    return {
        "status": f"pulling {short(digest)}",
        "digest": digest,
        "total": size,
        "completed": size,
    }


def _stored_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _old_manifest(store: Store, name: ModelName) -> Manifest | None:
    try:
        return store.manifests.read(name).manifest
    except ModelNotFound:
        return None
    except StoreError as exc:
        log.warning("pulling over a bad manifest: %s", exc)
        return None


def _commit(store: Store, name: ModelName, raw: bytes, fresh: list[str]) -> None:
    """Move the verified blobs into place and write the manifest, as one step for the store."""
    with store.lock:
        for digest in fresh:
            path = store.blobs.path(digest)
            files = PartialFiles(path)
            if path.is_file():
                files.clear()  # a concurrent pull stored it meanwhile
                continue
            move_into_place(files.data, path)
            files.clear_states()
        write_atomic(store.manifests.path(name), raw)


async def pull_model(job: PullJob, ref: RegistryRef) -> AsyncIterator[Chunk]:
    """Pull ``ref`` into ``job.store``, yielding Ollama's progress messages."""
    store = job.store
    try:
        target = await asyncio.to_thread(store.manifests.resolve, ref.name) or ref.name
        old = await asyncio.to_thread(_old_manifest, store, target)
        yield {"status": "pulling manifest"}
        manifest, raw = await fetch_manifest(job.client, ref)
        fresh: dict[str, tuple[Any, int]] = {}  # downloaded now: digest -> hash so far
        for layer in [*manifest.layers, manifest.config]:
            digest = layer.digest
            if digest in fresh:
                yield _layer_progress(digest, layer.size)
                continue
            size = await asyncio.to_thread(_stored_size, store.blobs.path(digest))
            if size is not None:
                await asyncio.to_thread(store.blobs.touch, digest)
                yield _layer_progress(digest, size)
                continue
            download = job.table.download(digest, partial(_new, job, ref, digest, layer.size))
            try:
                async for chunk in download.watch():
                    yield chunk
            except RegistryNotFound as exc:
                raise prefixed(exc, f"pull blob {digest}") from None
            if not download.in_store:
                fresh[digest] = download.hash_state()
        yield {"status": "verifying sha256 digest"}
        for digest, start in fresh.items():
            await asyncio.to_thread(verify_partial, store.blobs.path(digest), digest, start)
        yield {"status": "writing manifest"}
        await asyncio.to_thread(_commit, store, target, raw, list(fresh))
        unused = set(old.digests()) - set(manifest.digests()) if old is not None else set()
        if unused and old is not None and not store.noprune:
            yield {"status": "removing unused layers"}
            await asyncio.to_thread(store.remove_unused, old)
        yield {"status": "success"}
    except OSError as exc:
        raise store_error(exc, f"pull {ref.name.display()}") from None


def _new(job: PullJob, ref: RegistryRef, digest: str, size: int) -> BlobDownload:
    return BlobDownload(
        url=ref.blob_url(digest),
        host=ref.name.host,
        token=job.client.token,
        digest=digest,
        total=size,
        blob_path=job.store.blobs.path(digest),
        options=job.options,
        trust_env=job.trust_env,
    )
