"""Routes: this node as a registry (``/v2/``), so other nodes can pull from it, and push to
it when it was started with ``NEXUS_PUSH_TOKEN``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from nexus.errors import InvalidDigest
from nexus.registry import served
from nexus.registry.files import store_error
from nexus.registry.served import DistributionError
from nexus.server.state import state_of
from nexus.server.streaming import JSONReply
from nexus.store.blobs import parse_digest
from nexus.store.manifests import MANIFEST_MEDIA_TYPE
from nexus.store.store import Store

router = APIRouter()

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_REPO = "/v2/{namespace}/{model}"


class BlobFile(FileResponse):
    """A blob, Range requests included, read off the event loop in 1 MiB chunks."""

    chunk_size = 1 << 20


def _error(exc: DistributionError) -> Response:
    return JSONReply(
        exc.body(), status_code=exc.status, headers={**API_VERSION_HEADER, **exc.headers}
    )


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except DistributionError as exc:
        return _error(exc)
    except OSError as exc:
        raise store_error(exc, "registry") from None


def _host(request: Request) -> str:
    return request.headers.get("host", "")


def _repo_url(namespace: str, model: str) -> str:
    return f"/v2/{quote(namespace)}/{quote(model)}"


@router.api_route("/v2/", methods=["GET", "HEAD"])
@router.api_route("/v2", methods=["GET", "HEAD"], include_in_schema=False)
async def base() -> Response:
    return JSONReply({}, headers=API_VERSION_HEADER)


@router.api_route(_REPO + "/manifests/{reference}", methods=["GET", "HEAD"])
async def get_manifest(request: Request, namespace: str, model: str, reference: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        name = await asyncio.to_thread(
            served.find_manifest, store, namespace, model, reference, _host(request)
        )
        if name is None:
            raise DistributionError(
                404, "MANIFEST_UNKNOWN", f"manifest unknown: {namespace}/{model}:{reference}"
            )
        try:
            raw = await asyncio.to_thread(served.read_manifest, store, name)
        except FileNotFoundError:
            raise DistributionError(404, "MANIFEST_UNKNOWN", "manifest unknown") from None
        headers = {
            **API_VERSION_HEADER,
            "Docker-Content-Digest": served.manifest_digest(raw),
            "Content-Length": str(len(raw)),
        }
        content = b"" if request.method == "HEAD" else raw
        return Response(content, media_type=MANIFEST_MEDIA_TYPE, headers=headers)

    return await _answer(work)


@router.api_route(_REPO + "/blobs/{digest}", methods=["GET", "HEAD"])
async def get_blob(request: Request, namespace: str, model: str, digest: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        try:
            normal = parse_digest(digest)
        except InvalidDigest:
            raise DistributionError(400, "DIGEST_INVALID", "invalid digest") from None
        path = store.blobs.path(normal)
        if not await asyncio.to_thread(path.is_file):
            raise DistributionError(404, "BLOB_UNKNOWN", f"blob unknown to registry: {normal}")
        headers = {**API_VERSION_HEADER, "Docker-Content-Digest": normal}
        return BlobFile(path, media_type="application/octet-stream", headers=headers)

    return await _answer(work)


# --- write side: only with the push token -----------------------------------------------


def _authorize(request: Request) -> None:
    token = state_of(request).settings.push_token
    served.check_token(token, request.headers.get("authorization", ""))


def _upload_headers(namespace: str, model: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        **API_VERSION_HEADER,
        "Location": f"{_repo_url(namespace, model)}/blobs/uploads/{upload_id}",
        "Docker-Upload-UUID": upload_id,
        "Range": f"0-{max(size - 1, 0)}",
    }


def _has_blob(store: Store, digest: str) -> bool:
    """Whether the blob is here, refreshing its mtime when it is (it is about to be reused)."""
    if not store.blobs.exists(digest):
        return False
    store.blobs.touch(digest)
    return True


def _blob_created(namespace: str, model: str, digest: str) -> Response:
    headers = {
        **API_VERSION_HEADER,
        "Location": f"{_repo_url(namespace, model)}/blobs/{digest}",
        "Docker-Content-Digest": digest,
    }
    return Response(status_code=201, headers=headers)


@router.post(_REPO + "/blobs/uploads/")
async def start_upload(request: Request, namespace: str, model: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        _authorize(request)
        mount = request.query_params.get("mount")
        if mount:
            try:
                digest: str | None = parse_digest(mount)
            except InvalidDigest:
                digest = None
            if digest is not None and await asyncio.to_thread(_has_blob, store, digest):
                return _blob_created(namespace, model, digest)
        upload_id = await asyncio.to_thread(served.start_upload, store)
        headers = _upload_headers(namespace, model, upload_id, 0)
        return Response(status_code=202, headers=headers)

    return await _answer(work)


@router.get(_REPO + "/blobs/uploads/{upload_id}")
async def upload_status(request: Request, namespace: str, model: str, upload_id: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        _authorize(request)
        size = await asyncio.to_thread(served.upload_size, store, upload_id)
        headers = _upload_headers(namespace, model, upload_id, size)
        return Response(status_code=204, headers=headers)

    return await _answer(work)


@router.delete(_REPO + "/blobs/uploads/{upload_id}")
async def cancel_upload(request: Request, namespace: str, model: str, upload_id: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        _authorize(request)
        await asyncio.to_thread(served.cancel_upload, store, upload_id)
        return Response(status_code=204, headers=API_VERSION_HEADER)

    return await _answer(work)


async def _append(request: Request, upload_id: str) -> int:
    """Append the request body to the upload, checking a ``Content-Range`` start if sent."""
    store = state_of(request).store
    size = await asyncio.to_thread(served.upload_size, store, upload_id)
    content_range = request.headers.get("content-range")
    if content_range:
        span = served.parse_content_range(content_range)
        if span is None or span[0] != size:
            raise DistributionError(
                416,
                "BLOB_UPLOAD_INVALID",
                f"content range {content_range!r} does not continue the upload at {size}",
                headers={"Range": f"0-{max(size - 1, 0)}"},
            )
    path = served.upload_path(store, upload_id)
    return await served.receive(path, request.stream())


@router.patch(_REPO + "/blobs/uploads/{upload_id}")
async def upload_chunk(request: Request, namespace: str, model: str, upload_id: str) -> Response:
    async def work() -> Response:
        _authorize(request)
        size = await _append(request, upload_id)
        headers = _upload_headers(namespace, model, upload_id, size)
        return Response(status_code=202, headers=headers)

    return await _answer(work)


@router.put(_REPO + "/blobs/uploads/{upload_id}")
async def finish_upload(request: Request, namespace: str, model: str, upload_id: str) -> Response:
    store = state_of(request).store

    async def work() -> Response:
        _authorize(request)
        digest = request.query_params.get("digest", "")
        await _append(request, upload_id)
        stored = await asyncio.to_thread(served.finish_upload, store, upload_id, digest)
        return _blob_created(namespace, model, stored)

    return await _answer(work)


@router.put(_REPO + "/manifests/{reference}")
async def put_manifest(request: Request, namespace: str, model: str, reference: str) -> Response:
    state = state_of(request)

    async def work() -> Response:
        _authorize(request)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > served.MAX_MANIFEST_BYTES:
                raise DistributionError(413, "SIZE_INVALID", "manifest too large")
        digest = await asyncio.to_thread(
            served.accept_manifest,
            state.store,
            namespace,
            model,
            reference,
            _host(request),
            bytes(raw),
        )
        state.catalog_changed()
        headers = {
            **API_VERSION_HEADER,
            "Location": f"{_repo_url(namespace, model)}/manifests/{quote(reference)}",
            "Docker-Content-Digest": digest,
        }
        return Response(status_code=201, headers=headers)

    return await _answer(work)
