"""The model store as a whole: blobs plus manifests, and the cleanup rules tying them."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from nexus.errors import InvalidDigest, ModelNotFound, StoreError
from nexus.store.blobs import BlobStore, digest_from_file_name, parse_digest
from nexus.store.manifests import TEMP_PREFIX, Manifest, ManifestStore
from nexus.store.names import ModelName

log = logging.getLogger(__name__)

PRUNE_GRACE_S = 3600.0
# In-progress downloads: the data file and the JSON state of each part.
_PARTIAL_RE = re.compile(r"sha256-[0-9a-fA-F]{64}-partial(-\d+)?")
_LEGACY_RE = re.compile(r"sha256:[0-9a-fA-F]{64}")
# Files a writer that died (kill -9, power loss) leaves behind and nothing ever resumes:
# a blob being stored (``sha256-XXXX.tmp``), a part state being replaced (``.<name>.tmp``).
_DEAD_TEMP_RE = re.compile(r"(sha256-[A-Za-z0-9_]+|\..+)\.tmp")
_UPLOAD_RE = re.compile(r"upload-[0-9a-f]{32}")
#: A registry upload (``/v2`` push) untouched for this long is abandoned.
UPLOAD_EXPIRY_S = 3600.0


class Store:
    def __init__(self, root: Path, noprune: bool = False) -> None:
        self.root = root
        self.noprune = noprune
        self.blobs = BlobStore(root)
        self.manifests = ManifestStore(root)
        # Serialises the steps that decide a blob is unused against those that start
        # using one (create), so a delete never removes a layer a new manifest needs.
        self.lock = threading.RLock()

    def _scan(self) -> tuple[set[str], int]:
        """Digests referenced by readable manifests, and how many manifests were corrupt."""
        referenced: set[str] = set()
        corrupt = 0
        for name in self.manifests.names():
            try:
                manifest = self.manifests.read(name).manifest
            except StoreError as exc:
                log.warning("%s", exc)
                corrupt += 1
                continue
            except ModelNotFound:  # deleted while we walked
                continue
            for digest in manifest.digests():
                try:
                    referenced.add(parse_digest(digest))
                except InvalidDigest:
                    log.warning("manifest %s names invalid digest %r", name.full(), digest)
        return referenced, corrupt

    def referenced_digests(self) -> set[str]:
        return self._scan()[0]

    def fix_blobs(self) -> None:
        """Rename legacy ``sha256:<hex>`` blob files to ``sha256-<hex>``."""
        if not self.blobs.dir.is_dir():
            return
        for entry in self.blobs.dir.iterdir():
            if _LEGACY_RE.fullmatch(entry.name) and entry.is_file():
                entry.replace(self.blobs.path(entry.name))

    def remove_leftovers(self, upload_expiry_s: float = UPLOAD_EXPIRY_S) -> int:
        """Start-up cleanup of what dead writers left; returns how many files went.

        Temporary files of blob and manifest writes are never resumed, so they go whatever
        their age; a ``/v2`` upload goes once untouched for ``upload_expiry_s`` (a pushing
        client may resume a younger one). Resumable pull data (``-partial``) stays. Runs even
        with ``OLLAMA_NOPRUNE``, which keeps unused blobs: none of these files is a blob.
        """
        removed = 0
        cutoff = time.time() - upload_expiry_s
        candidates: list[Path] = []
        if self.blobs.dir.is_dir():
            for entry in self.blobs.dir.iterdir():
                if _DEAD_TEMP_RE.fullmatch(entry.name):
                    candidates.append(entry)
                elif _UPLOAD_RE.fullmatch(entry.name):
                    try:
                        if entry.stat().st_mtime < cutoff:
                            candidates.append(entry)
                    except FileNotFoundError:
                        continue
        if self.manifests.dir.is_dir():
            candidates += [
                Path(d) / f
                for d, _, files in os.walk(self.manifests.dir)
                for f in files
                if f.startswith(TEMP_PREFIX)
            ]
        for path in candidates:
            try:
                if not path.is_file():
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            log.info("removed leftover %s", path.name)
            removed += 1
        return removed

    def prune(self, grace_s: float = PRUNE_GRACE_S) -> int:
        """Startup cleanup; returns how many files were removed from ``blobs/``.

        Files younger than ``grace_s`` survive, so a writer that is between storing a
        blob and writing its manifest never loses the blob.
        """
        if self.noprune:
            return 0
        with self.lock:
            return self._prune(grace_s)

    def _prune(self, grace_s: float) -> int:
        self.fix_blobs()
        referenced, corrupt = self._scan()
        if corrupt:
            log.warning(
                "corrupt manifests detected, skipping prune operation.  Re-pull or delete to clear"
            )
            return 0
        removed = 0
        if self.blobs.dir.is_dir():
            cutoff = time.time() - grace_s
            for entry in self.blobs.dir.iterdir():
                if not entry.is_file() or _PARTIAL_RE.fullmatch(entry.name):
                    continue
                digest = digest_from_file_name(entry.name)
                if digest is not None and digest in referenced:
                    continue
                try:
                    if entry.stat().st_mtime >= cutoff:
                        continue
                    entry.unlink()
                except FileNotFoundError:
                    continue
                log.info("pruned %s", entry.name)
                removed += 1
        self.manifests.remove_empty_dirs()
        return removed

    def remove_unused(self, old: Manifest) -> list[str]:
        """Delete blobs of ``old`` that no manifest references any more (pull/create)."""
        if self.noprune:
            return []
        with self.lock:
            referenced = self.referenced_digests()
            removed = []
            for digest in dict.fromkeys(old.digests()):
                try:
                    normal = parse_digest(digest)
                except InvalidDigest:
                    continue
                if normal not in referenced and self.blobs.exists(normal):
                    self.blobs.remove(normal)
                    removed.append(normal)
            return removed

    def delete_model(self, name: ModelName, requested: str | None = None) -> None:
        """Remove a model (matched ignoring case) and the blobs only it used."""
        with self.lock:
            target = self.manifests.resolve(name) or name
            stored = self.manifests.read(target, requested)
            self.manifests.delete(target, requested)
            self.remove_unused(stored.manifest)
