"""Content-addressed blob files under ``<models>/blobs/sha256-<hex>``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nexus.errors import BlobNotFound, DigestMismatch, InvalidDigest

_DIGEST_RE = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_BLOB_FILE_RE = re.compile(r"sha256-[0-9a-f]{64}")
_CHUNK = 1 << 20


def parse_digest(text: str) -> str:
    """Normalise ``sha256:<hex>`` / ``sha256-<hex>`` (any case) to ``sha256:<lower hex>``."""
    match = _DIGEST_RE.fullmatch(text)
    if match is None:
        raise InvalidDigest()
    return f"sha256:{match.group(1).lower()}"


def blob_file_name(digest: str) -> str:
    return parse_digest(digest).replace(":", "-", 1)


def digest_from_file_name(name: str) -> str | None:
    """The digest a canonical blob file name stands for, or None for any other file."""
    if _BLOB_FILE_RE.fullmatch(name) is None:
        return None
    return name.replace("-", ":", 1)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


@dataclass(frozen=True)
class StoredBlob:
    """Outcome of a write: ``created`` is False when the blob was already there."""

    digest: str
    size: int
    created: bool


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "blobs"

    def path(self, digest: str) -> Path:
        return self.dir / blob_file_name(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f'blob "{parse_digest(digest)}" not found') from None

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f'blob "{parse_digest(digest)}" not found') from None

    def put(self, chunks: Iterable[bytes], expected_digest: str | None = None) -> StoredBlob:
        """Stream ``chunks`` into a blob, hashing as it goes; nothing partial is ever visible.

        The data lands in a temp file beside the blobs (same filesystem, so the final
        rename is atomic) and is fsynced before the rename.
        """
        expected = parse_digest(expected_digest) if expected_digest is not None else None
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.dir, prefix="sha256-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    hasher.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = f"sha256:{hasher.hexdigest()}"
            if expected is not None and digest != expected:
                raise DigestMismatch(
                    f'digest mismatch, expected "{expected_digest}", got "{digest}"'
                )
            final = self.path(digest)
            if final.is_file():
                self.touch(digest)
                return StoredBlob(digest, size, created=False)
            tmp.chmod(0o644)
            os.replace(tmp, final)
            fsync_dir(self.dir)
            return StoredBlob(digest, size, created=True)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put([data])

    def write_stream(
        self, chunks: Iterable[bytes], expected_digest: str | None = None
    ) -> tuple[str, int]:
        blob = self.put(chunks, expected_digest)
        return blob.digest, blob.size

    def write_bytes(self, data: bytes) -> tuple[str, int]:
        return self.write_stream([data])

    def import_file(self, src: Path) -> tuple[str, int]:
        """Copy a file in; a file already stored is hashed once and never copied again."""
        hasher = hashlib.sha256()
        for chunk in _read_chunks(src):
            hasher.update(chunk)
        digest = f"sha256:{hasher.hexdigest()}"
        if self.exists(digest):
            self.touch(digest)
            return digest, self.size(digest)
        # Verifying against the first pass catches a source that changed in between.
        return self.write_stream(_read_chunks(src), digest)

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all_digests(self) -> set[str]:
        if not self.dir.is_dir():
            return set()
        found = set()
        for entry in self.dir.iterdir():
            digest = digest_from_file_name(entry.name)
            if digest is not None and entry.is_file():
                found.add(digest)
        return found

    def touch(self, digest: str) -> None:
        """Refresh the mtime so a reused blob is inside the prune grace period."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(digest))
