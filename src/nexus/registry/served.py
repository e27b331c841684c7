"""This node as a registry: find what to serve, receive uploads, accept pushed manifests.

Names resolve with this node as the registry host: ``<ns>/<model>:<tag>`` matches local
manifests of any host, an exact host match (the ``Host`` the client addressed) first, then
Ollama's default host.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from nexus.errors import InvalidDigest, InvalidModelName, ModelNotFound, StoreError
from nexus.registry.errors import RegistryError
from nexus.registry.files import hash_file, move_into_place
from nexus.registry.pull import parse_manifest
from nexus.store.blobs import parse_digest
from nexus.store.manifests import write_atomic
from nexus.store.names import DEFAULT_HOST, ModelName
from nexus.store.store import Store

_UPLOAD_RE = re.compile(r"[0-9a-f]{32}")
_WRITE_CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20


class DistributionError(Exception):
    """An error of the distribution API: its status, code and message, and extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"errors": [{"code": self.code, "message": self.message, "detail": None}]}


def _rank(name: ModelName, host: str) -> tuple[int, str]:
    if name.host.casefold() == host.casefold():
        return (0, "")
    if name.host.casefold() == DEFAULT_HOST:
        return (1, "")
    return (2, name.full())


def find_manifest(
    store: Store, namespace: str, model: str, reference: str, host: str
) -> ModelName | None:
    """The local manifest a request for ``<namespace>/<model>:<reference>`` means.

    ``reference`` is a tag, or a manifest digest (``sha256:…``) of that repository.
    """
    candidates = [
        name
        for name in store.manifests.names()
        if name.namespace.casefold() == namespace.casefold()
        and name.model.casefold() == model.casefold()
    ]
    if reference.startswith("sha256:"):
        try:
            want = parse_digest(reference)
        except InvalidDigest:
            return None
        for name in sorted(candidates, key=lambda n: _rank(n, host)):
            with contextlib.suppress(OSError):
                data = store.manifests.path(name).read_bytes()
                if f"sha256:{hashlib.sha256(data).hexdigest()}" == want:
                    return name
        return None
    tagged = [name for name in candidates if name.tag.casefold() == reference.casefold()]
    return min(tagged, key=lambda n: _rank(n, host), default=None)


def read_manifest(store: Store, name: ModelName) -> bytes:
    return store.manifests.path(name).read_bytes()


def manifest_digest(raw: bytes) -> str:
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


# --- write side ---------------------------------------------------------------------------


def check_token(configured: str | None, authorization: str) -> None:
    """Let a write through only with ``Authorization: Bearer <the configured token>``."""
    if not configured:
        raise DistributionError(
            405,
            "UNSUPPORTED",
            "pushing to this server is disabled (start it with NEXUS_PUSH_TOKEN to allow it)",
        )
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), configured.encode()
    ):
        return
    message = "invalid push token" if authorization else "push token required"
    raise DistributionError(
        401,
        "UNAUTHORIZED",
        message,
        headers={"WWW-Authenticate": 'Bearer realm="nexus", error="invalid_token"'},
    )


def upload_path(store: Store, upload_id: str) -> Path:
    if _UPLOAD_RE.fullmatch(upload_id) is None:
        raise DistributionError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    return store.blobs.dir / f"upload-{upload_id}"


def start_upload(store: Store) -> str:
    """A new, empty upload session; its file lives beside the blobs (same filesystem)."""
    upload_id = uuid.uuid4().hex
    store.blobs.dir.mkdir(parents=True, exist_ok=True)
    upload_path(store, upload_id).touch(mode=0o600, exist_ok=False)
    return upload_id


def upload_size(store: Store, upload_id: str) -> int:
    try:
        return upload_path(store, upload_id).stat().st_size
    except FileNotFoundError:
        raise DistributionError(
            404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"
        ) from None


def cancel_upload(store: Store, upload_id: str) -> None:
    upload_size(store, upload_id)
    upload_path(store, upload_id).unlink(missing_ok=True)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """``<start>-<end>`` (also with a ``bytes `` prefix or ``/total`` suffix), or None."""
    text = header.strip().removeprefix("bytes").strip().split("/", 1)[0]
    start, sep, end = text.partition("-")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        return None
    return int(start), int(end)


async def receive(path: Path, chunks: AsyncIterator[bytes]) -> int:
    """Append a request body to an upload file off the event loop; the new size."""
    async with await anyio.open_file(path, "ab") as f:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= _WRITE_CHUNK:
                await f.write(bytes(buffer))
                buffer.clear()
        if buffer:
            await f.write(bytes(buffer))
        await f.flush()
        return int(await f.tell())


def finish_upload(store: Store, upload_id: str, digest: str) -> str:
    """Verify the upload against ``digest`` and move it into the store; the digest."""
    try:
        want = parse_digest(digest)
    except InvalidDigest:
        raise DistributionError(400, "DIGEST_INVALID", "invalid digest") from None
    path = upload_path(store, upload_id)
    upload_size(store, upload_id)
    got = hash_file(path)
    if got != want:
        path.unlink(missing_ok=True)
        raise DistributionError(
            400, "DIGEST_INVALID", f"provided digest did not match uploaded content: got {got}"
        )
    with store.lock:
        final = store.blobs.path(want)
        if final.is_file():
            path.unlink(missing_ok=True)
            store.blobs.touch(want)
        else:
            move_into_place(path, final)
    return want


def accept_manifest(
    store: Store, namespace: str, model: str, tag: str, host: str, raw: bytes
) -> str:
    """Store a pushed manifest once every blob it names is here; its digest.

    It replaces the local manifest this node would serve under that name, else it becomes
    ``<default host>/<namespace>/<model>:<tag>``.
    """
    if tag.startswith("sha256:"):
        raise DistributionError(400, "TAG_INVALID", "manifests can only be pushed by tag")
    try:
        manifest = parse_manifest(raw)
    except RegistryError as exc:
        raise DistributionError(400, "MANIFEST_INVALID", exc.message) from None
    try:
        fallback = ModelName(DEFAULT_HOST, namespace, model, tag)
    except InvalidModelName:
        raise DistributionError(400, "NAME_INVALID", "invalid repository name or tag") from None
    with store.lock:
        missing = [d for d in manifest.digests() if not store.blobs.exists(d)]
        if missing:
            raise DistributionError(
                400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing[0]}"
            )
        target = find_manifest(store, namespace, model, tag, host) or fallback
        old = store.manifests.path(target)
        previous = None
        with contextlib.suppress(ModelNotFound, StoreError):
            previous = store.manifests.read(target).manifest
        write_atomic(old, raw)
        for digest in manifest.digests():
            store.blobs.touch(digest)
        if previous is not None:
            store.remove_unused(previous)
    return manifest_digest(raw)
