"""Blocking file steps of a transfer (hash, durable rename, raw manifest write).

Everything here blocks; async callers run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

from nexus.errors import StoreError
from nexus.registry.errors import DiskFull
from nexus.store.blobs import fsync_dir

CHUNK = 1 << 20
# Same prefix the manifest store uses for its in-flight writes, so listings skip ours too.


def hash_file(path: Path, hasher: Any = None, offset: int = 0) -> str:
    """``sha256:<hex>`` of a file's bytes.

    ``hasher`` may already hold the file's first ``offset`` bytes; hashing goes on from there.
    """
    hasher = hasher if hasher is not None else hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def store_error(exc: OSError, what: str) -> StoreError:
    """Our error for a failed file operation: disk full gets its own, clear message."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{what}: no space left on device")
    return StoreError(f"{what}: {exc.strerror or exc}")


def move_into_place(src: Path, dst: Path) -> None:
    """Make ``src`` durable, then rename it to ``dst`` (same directory, so atomic)."""
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    src.chmod(0o644)
    os.replace(src, dst)
    fsync_dir(dst.parent)
