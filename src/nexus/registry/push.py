"""Pushing a model: each blob the registry lacks is uploaded, then the manifest is PUT."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from nexus.errors import ModelNotFound
from nexus.registry.client import RegistryClient, absolute
from nexus.registry.download import short
from nexus.registry.errors import RegistryError, RegistryNotFound
from nexus.registry.files import store_error
from nexus.registry.options import TransferOptions
from nexus.registry.parts import Part, split_parts
from nexus.registry.reference import RegistryRef
from nexus.store.blobs import parse_digest
from nexus.store.manifests import MANIFEST_MEDIA_TYPE, Layer, Manifest
from nexus.store.names import ModelName
from nexus.store.store import Store

Chunk = dict[str, Any]

_READ_CHUNK = 1 << 20


@dataclass
class _Counter:
    sent: int = 0
    part_md5s: list[bytes] = field(default_factory=list)


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _location(response_headers: Any, base: str) -> str:
    location = response_headers.get("docker-upload-location") or response_headers.get("location")
    if not location:
        raise RegistryError("the registry sent no upload location")
    return absolute(base, str(location))


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _part_body(path: Path, part: Part, counter: _Counter) -> Callable[[], AsyncIterator[bytes]]:
    """A fresh stream of the part's bytes per call (a retried request re-sends from the start)."""

    def make() -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            md5 = hashlib.md5(usedforsecurity=False)
            sent = 0
            try:
                offset = part.offset
                while offset < part.end:
                    size = min(_READ_CHUNK, part.end - offset)
                    data = await asyncio.to_thread(_read_at, path, offset, size)
                    if len(data) != size:
                        raise RegistryError(f"{path.name} changed while it was being pushed")
                    md5.update(data)
                    offset += size
                    sent += size
                    counter.sent += size
                    yield data
            except BaseException:
                counter.sent -= sent
                raise
            counter.part_md5s.append(md5.digest())

        return body()

    return make


async def upload_blob(
    client: RegistryClient,
    ref: RegistryRef,
    layer: Layer,
    path: Path,
    options: TransferOptions,
    counter: _Counter,
) -> None:
    """Upload one blob unless the registry has it (or can mount it from another repository)."""
    digest = parse_digest(layer.digest)
    total = await asyncio.to_thread(lambda: path.stat().st_size)
    start = ref.uploads_url()
    if layer.from_:
        source = ModelName.parse(layer.from_).registry_repository()
        start = with_query(start, mount=digest, **{"from": source})
    response = await client.send("POST", start)
    if response.status_code == 201:  # mounted: the registry has it now
        counter.sent = total
        return
    location = _location(response.headers, start)
    parts = split_parts(total, options.part_size_for(total))
    for part in parts:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(part.size),
            "Content-Range": f"{part.offset}-{part.end - 1}",
            "X-Redirect-Uploads": "1",
        }
        body = _part_body(path, part, counter)
        response = await client.send(
            "PATCH", location, headers=headers, content=body, follow_redirects=False
        )
        if response.status_code == 307:
            redirect = response.headers.get("location")
            if not redirect:
                raise RegistryError("upload redirect without a location")
            counter.sent = part.offset  # the bytes went to the redirect, not the registry
            del counter.part_md5s[part.n :]
            del headers["X-Redirect-Uploads"], headers["Content-Range"]
            await client.send("PUT", absolute(location, redirect), headers=headers, content=body)
        location = _location(response.headers, location)
    etag = hashlib.md5(b"".join(counter.part_md5s), usedforsecurity=False).hexdigest()
    finish = with_query(location, digest=digest, etag=f"{etag}-{len(parts)}")
    await client.send(
        "PUT", finish, headers={"Content-Type": "application/octet-stream", "Content-Length": "0"}
    )


async def _push_layer(
    client: RegistryClient, ref: RegistryRef, layer: Layer, path: Path, options: TransferOptions
) -> AsyncIterator[Chunk]:
    digest = parse_digest(layer.digest)
    status = f"pushing {short(digest)}"
    try:
        await client.send("HEAD", ref.blob_url(digest))
        yield {"status": status, "digest": digest, "total": layer.size, "completed": layer.size}
        return
    except RegistryNotFound:
        pass
    counter = _Counter()
    task = asyncio.ensure_future(upload_blob(client, ref, layer, path, options, counter))
    try:
        while True:
            await asyncio.wait({task}, timeout=options.progress_interval_s)
            if task.done():
                task.result()
                yield {
                    "status": status,
                    "digest": digest,
                    "total": layer.size,
                    "completed": layer.size,
                }
                return
            completed = min(counter.sent, layer.size)
            yield {"status": status, "digest": digest, "total": layer.size, "completed": completed}
    finally:
        if not task.done():
            task.cancel()


def _local_manifest(store: Store, name: ModelName, requested: str) -> tuple[Manifest, bytes]:
    resolved = store.manifests.resolve(name)
    if resolved is None:
        raise ModelNotFound(f'model "{requested}" not found')
    stored = store.manifests.read(resolved, requested)
    raw = store.manifests.path(resolved).read_bytes()
    return stored.manifest, raw


async def local_manifest(store: Store, ref: RegistryRef, requested: str) -> tuple[Manifest, bytes]:
    """The manifest to push (matched ignoring case), as the bytes stored, or ModelNotFound."""
    try:
        return await asyncio.to_thread(_local_manifest, store, ref.name, requested)
    except OSError as exc:
        raise store_error(exc, f"read manifest of {requested}") from None


async def push_model(
    store: Store,
    client: RegistryClient,
    ref: RegistryRef,
    manifest: Manifest,
    raw: bytes,
    options: TransferOptions,
) -> AsyncIterator[Chunk]:
    """Push ``ref`` from ``store``, yielding Ollama's progress messages."""
    yield {"status": "retrieving manifest"}
    try:
        for layer in [*manifest.layers, manifest.config]:
            path = store.blobs.path(layer.digest)
            if not await asyncio.to_thread(path.is_file):
                raise ModelNotFound(f"blob {parse_digest(layer.digest)} of {ref.name} is missing")
            async for chunk in _push_layer(client, ref, layer, path, options):
                yield chunk
        yield {"status": "pushing manifest"}
        await client.send(
            "PUT", ref.manifest_url(), headers={"Content-Type": MANIFEST_MEDIA_TYPE}, content=raw
        )
        yield {"status": "success"}
    except OSError as exc:
        raise store_error(exc, f"push {ref.name.display()}") from None
