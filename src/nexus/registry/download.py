"""Downloading one blob in parallel ranged parts into a resumable partial file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from nexus.errors import NexusError, StoreError
from nexus.registry.client import (
    RegistryClient,
    absolute,
    describe_transport_error,
    new_http_client,
)
from nexus.registry.errors import (
    BlobDigestMismatch,
    DiskFull,
    RegistryError,
    RegistryUnreachable,
)
from nexus.registry.files import hash_file, store_error
from nexus.registry.options import TransferOptions
from nexus.registry.parts import Part, PartialFiles, split_parts

log = logging.getLogger(__name__)

Chunk = dict[str, Any]

_READ_CHUNK = 1 << 20
_CHECKPOINT_BYTES = 8 << 20
_MAX_REDIRECTS = 10


def short(digest: str) -> str:
    """The 12 hex characters Ollama shows for a digest."""
    return digest.removeprefix("sha256:")[:12]


class BlobDownload:
    """One blob's download: a task filling ``<blob>-partial`` that pulls can watch.

    Parts are saved after every ``_CHECKPOINT_BYTES`` and whenever an attempt ends, so a
    later download (even after the server was killed) resumes where this one stopped. It
    owns its HTTP client, so it outlives the pull that started it if another pull waits on it.
    """

    def __init__(
        self,
        *,
        url: str,
        host: str,
        token: str | None,
        digest: str,
        total: int,
        blob_path: Path,
        options: TransferOptions,
        trust_env: bool = True,
    ) -> None:
        self.url = url
        self.host = host
        self.token = token
        self.digest = digest
        self.total = total
        self.blob_path = blob_path
        self.files = PartialFiles(blob_path)
        self.options = options
        self.trust_env = trust_env
        self.completed = 0
        #: True when the blob turned out to be in the store already (nothing to verify).
        self.in_store = False
        self.task: asyncio.Task[None] | None = None
        self.watchers = 0
        # The bytes written in order from offset 0 are hashed as they arrive, so that
        # verifying only has to read what came in out of order (other parts, a resume).
        self._hasher = hashlib.sha256()
        self._hashed = 0
        self._hash_lock = threading.Lock()

    def hash_state(self) -> tuple[Any, int]:
        """A copy of the running hash and how many leading bytes of the blob it covers."""
        with self._hash_lock:
            return self._hasher.copy(), self._hashed

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    def progress(self) -> Chunk:
        return {
            "status": f"pulling {short(self.digest)}",
            "digest": self.digest,
            "total": self.total,
            "completed": min(self.completed, self.total),
        }

    async def watch(self) -> AsyncIterator[Chunk]:
        """Progress every ``progress_interval_s`` until done; raises the download's error.

        When the last watcher leaves early the download is cancelled (its parts stay saved).
        """
        task = self.task
        assert task is not None
        self.watchers += 1
        try:
            while True:
                await asyncio.wait({task}, timeout=self.options.progress_interval_s)
                if task.done():
                    task.result()
                    yield self.progress()
                    return
                yield self.progress()
        finally:
            self.watchers -= 1
            if self.watchers == 0 and not task.done():
                task.cancel()

    async def run(self) -> None:
        if await asyncio.to_thread(self.blob_path.is_file):
            self.in_store = True
            self.completed = self.total
            return
        try:
            parts = await asyncio.to_thread(self._prepare)
        except OSError as exc:
            raise store_error(exc, f"prepare download of {self.digest}") from None
        self.completed = sum(p.completed for p in parts)
        pending = [p for p in parts if not p.done]
        if not pending:
            return
        log.info(
            "downloading %s in %d part(s) of %d bytes (%d to go)",
            short(self.digest),
            len(parts),
            parts[0].size,
            len(pending),
        )
        async with new_http_client(
            trust_env=self.trust_env, timeout=self.options.read_timeout_s
        ) as http:
            client = RegistryClient(http, self.host, token=self.token)
            url = await self._direct_url(client)
            fd = await asyncio.to_thread(os.open, self.files.data, os.O_WRONLY)
            try:
                await self._fetch_all(client, url, fd, pending)
            finally:
                await asyncio.to_thread(os.close, fd)

    def _prepare(self) -> list[Part]:
        """Saved parts to resume, or a fresh plan (after checking there is room for it)."""
        parts = self.files.load(self.total)
        remaining = self.total - sum(p.completed for p in parts or [])
        self.blob_path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.blob_path.parent).free
        if remaining > free:
            raise DiskFull(
                f"insufficient disk space for {self.digest}: need {remaining} bytes, "
                f"{free} available"
            )
        if parts is None:
            parts = split_parts(self.total, self.options.part_size_for(self.total))
            self.files.create(parts, self.total)
        return parts

    async def _direct_url(self, client: RegistryClient) -> str:
        """Follow same-host redirects; the first redirect elsewhere (a CDN) is the data URL."""
        url = self.url
        origin = urlsplit(url).hostname
        for _ in range(_MAX_REDIRECTS):
            response = await client.send(
                "GET", url, headers={"Range": "bytes=0-0"}, stream=True, follow_redirects=False
            )
            await response.aclose()
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                return url
            target = absolute(url, location)
            if urlsplit(target).hostname != origin:
                return target
            url = target
        raise RegistryError(f"maximum redirects exceeded ({_MAX_REDIRECTS}) for {self.url}")

    async def _fetch_all(
        self, client: RegistryClient, url: str, fd: int, pending: list[Part]
    ) -> None:
        limit = asyncio.Semaphore(self.options.max_parallel)

        async def one(part: Part) -> None:
            async with limit:
                await self._fetch_part(client, url, fd, part)

        tasks = [asyncio.ensure_future(one(part)) for part in pending]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _fetch_part(self, client: RegistryClient, url: str, fd: int, part: Part) -> None:
        failures = 0
        while True:
            before = part.completed
            try:
                await self._stream_part(client, url, fd, part)
                return
            except (RegistryUnreachable, _Truncated) as exc:
                failure: NexusError | _Truncated = exc
            except RegistryError as exc:
                if not _retryable(exc):
                    raise
                failure = exc
            finally:
                await self._save(part)
            if part.completed == before:
                failures += 1
            if failures >= self.options.retries:
                message = str(failure)
                raise RegistryUnreachable(
                    f"{short(self.digest)} part {part.n}: max retries exceeded: {message}"
                )
            delay = self.options.backoff_s * 2 ** max(failures - 1, 0)
            log.info(
                "%s part %d failed (%s), retrying in %.1fs",
                short(self.digest),
                part.n,
                failure,
                delay,
            )
            await asyncio.sleep(delay)

    async def _save(self, part: Part) -> None:
        try:
            await asyncio.shield(asyncio.to_thread(self.files.save, part))
        except OSError as exc:
            log.warning("could not save progress of %s part %d: %s", self.digest, part.n, exc)

    async def _stream_part(self, client: RegistryClient, url: str, fd: int, part: Part) -> None:
        headers = {"Range": f"bytes={part.start}-{part.end - 1}", "Accept-Encoding": "identity"}
        response = await client.send("GET", url, headers=headers, stream=True)
        try:
            whole = part.start == 0 and part.end == self.total
            if response.status_code != 206 and not (response.status_code == 200 and whole):
                raise RegistryError(
                    f"unexpected status {response.status_code} for a ranged blob request"
                )
            since_checkpoint = 0
            try:
                async for data in response.aiter_raw(_READ_CHUNK):
                    data = data[: part.end - part.start]
                    if not data:
                        break
                    await self._write(fd, data, part.start)
                    part.completed += len(data)
                    self.completed += len(data)
                    since_checkpoint += len(data)
                    if part.done:
                        break
                    if since_checkpoint >= _CHECKPOINT_BYTES:
                        since_checkpoint = 0
                        await self._save(part)
            except httpx.TransportError as exc:
                raise RegistryUnreachable(
                    f"{short(self.digest)} part {part.n}: {describe_transport_error(exc)}"
                ) from None
            if not part.done:
                raise _Truncated(f"{short(self.digest)} part {part.n}: connection closed early")
        finally:
            await response.aclose()

    async def _write(self, fd: int, data: bytes, offset: int) -> None:
        try:
            await asyncio.to_thread(self._write_at, fd, data, offset)
        except OSError as exc:
            raise store_error(exc, f"write {self.files.data.name}") from None

    def _write_at(self, fd: int, data: bytes, offset: int) -> None:
        _pwrite_all(fd, data, offset)
        with self._hash_lock:
            if offset == self._hashed:
                self._hasher.update(data)
                self._hashed += len(data)


class _Truncated(Exception):
    """A part's response ended before the part did; the attempt is retried."""


def _retryable(exc: RegistryError) -> bool:
    status = exc.upstream_status
    return status is not None and (status >= 500 or status == 429)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def verify_partial(blob_path: Path, digest: str, start: tuple[Any, int] | None = None) -> None:
    """Hash a finished partial file; on a mismatch delete it (and its state) and raise.

    ``start`` is a hash of the file's leading bytes already taken, and how many it covers.
    """
    files = PartialFiles(blob_path)
    hasher, offset = start if start is not None else (None, 0)
    try:
        got = hash_file(files.data, hasher, offset)
    except FileNotFoundError:
        if blob_path.is_file():
            return  # a concurrent pull of the same blob verified and stored it first
        raise StoreError(f"verify {digest}: the downloaded file disappeared") from None
    except OSError as exc:
        raise store_error(exc, f"verify {digest}") from None
    if got != digest:
        files.clear()
        raise BlobDigestMismatch(digest, got)


class TransferTable:
    """Downloads in flight, by digest, so concurrent pulls of one blob share one download."""

    def __init__(self) -> None:
        self._active: dict[str, BlobDownload] = {}

    def download(self, digest: str, make: Callable[[], BlobDownload]) -> BlobDownload:
        current = self._active.get(digest)
        if current is not None and current.task is not None and not current.task.done():
            return current
        current = make()
        current.start()
        self._active[digest] = current
        assert current.task is not None
        current.task.add_done_callback(lambda _: self._forget(digest, current))
        return current

    def _forget(self, digest: str, download: BlobDownload) -> None:
        if self._active.get(digest) is download:
            del self._active[digest]
        task = download.task
        if task is not None and not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()  # retrieved here so an unwatched failure is not logged twice
