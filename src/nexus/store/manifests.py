"""Manifests under ``<models>/manifests/<host>/<namespace>/<model>/<tag>``."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nexus.errors import InvalidModelName, ModelNotFound, StoreError
from nexus.store.blobs import fsync_dir
from nexus.store.names import ModelName

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
ADAPTER_MEDIA_TYPE = "application/vnd.ollama.image.adapter"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"
TEMPLATE_MEDIA_TYPE = "application/vnd.ollama.image.template"
PROMPT_MEDIA_TYPE = "application/vnd.ollama.image.prompt"  # legacy name of template
SYSTEM_MEDIA_TYPE = "application/vnd.ollama.image.system"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"
MESSAGES_MEDIA_TYPE = "application/vnd.ollama.image.messages"
LICENSE_MEDIA_TYPE = "application/vnd.ollama.image.license"
EMBED_MEDIA_TYPE = "application/vnd.ollama.image.embed"  # deprecated, ignored
TENSOR_MEDIA_TYPE = "application/vnd.ollama.image.tensor"
JSON_MEDIA_TYPE = "application/vnd.ollama.image.json"
DRAFT_MEDIA_TYPE = "application/vnd.ollama.image.draft"

TEMP_PREFIX = ".tmp-"  # never a valid tag, so listings skip in-flight writes


class Layer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mediaType: str
    digest: str
    size: int
    from_: str | None = Field(default=None, alias="from")
    name: str | None = None

    @field_validator("from_", "name")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        # Ollama writes these with omitempty, so "" and missing mean the same.
        return value or None


class Manifest(BaseModel):
    schemaVersion: int = 2
    mediaType: str = MANIFEST_MEDIA_TYPE
    config: Layer
    layers: list[Layer]

    def to_bytes(self) -> bytes:
        """Compact JSON plus a newline, byte-compatible with what Ollama writes."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode() + b"\n"

    def digests(self) -> list[str]:
        return [self.config.digest, *(layer.digest for layer in self.layers)]

    def total_size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class StoredManifest:
    name: ModelName
    manifest: Manifest
    digest: str
    modified_at: datetime
    size: int


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


class ManifestStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "manifests"

    def path(self, name: ModelName) -> Path:
        parts = name.manifest_parts()
        # Names are validated on construction; this guards against that ever regressing.
        if any(p in ("", ".", "..") or any(c in p for c in "/\\\0") for p in parts):
            raise InvalidModelName()
        return self.dir.joinpath(*parts)

    def read(self, name: ModelName, requested: str | None = None) -> StoredManifest:
        path = self.path(name)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ModelNotFound(f"model '{requested or name.display()}' not found") from None
        try:
            manifest = Manifest.model_validate_json(data)
        except ValidationError as exc:
            raise StoreError(f"corrupt manifest for {name.display()}: {exc}") from None
        return StoredManifest(
            name=name,
            manifest=manifest,
            digest=hashlib.sha256(data).hexdigest(),
            modified_at=datetime.fromtimestamp(mtime, UTC),
            size=manifest.total_size(),
        )

    def write(self, name: ModelName, manifest: Manifest) -> str:
        data = manifest.to_bytes()
        write_atomic(self.path(name), data)
        return hashlib.sha256(data).hexdigest()

    def delete(self, name: ModelName, requested: str | None = None) -> None:
        path = self.path(name)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            raise ModelNotFound(f"model '{requested or name.display()}' not found") from None
        self._remove_empty_parents(path.parent)

    def _remove_empty_parents(self, directory: Path) -> None:
        while directory != self.dir and directory.is_relative_to(self.dir):
            try:
                directory.rmdir()
            except OSError:  # not empty, or already gone
                return
            directory = directory.parent

    def names(self) -> list[ModelName]:
        """Every validly named manifest file, exactly four levels down."""
        found: builtins.list[ModelName] = []
        if not self.dir.is_dir():
            return found
        for path in self.dir.glob("*/*/*/*"):
            if not path.is_file():
                continue
            parts = path.relative_to(self.dir).parts
            try:
                found.append(ModelName(*parts))
            except InvalidModelName:
                if not parts[-1].startswith(TEMP_PREFIX):
                    log.warning("skipping manifest with invalid name: %s", path)
        return found

    def list(self) -> list[StoredManifest]:
        """All readable manifests, newest first; corrupt ones are logged and skipped."""
        stored = []
        for name in self.names():
            try:
                stored.append(self.read(name))
            except (StoreError, ModelNotFound) as exc:
                log.warning("skipping manifest %s: %s", name.full(), exc)
        stored.sort(key=lambda s: s.modified_at, reverse=True)
        return stored

    def resolve(self, name: ModelName) -> ModelName | None:
        """The stored spelling of ``name`` when a manifest matches it ignoring case."""
        if self.path(name).is_file():
            return name
        for existing in self.names():
            if existing.equal_fold(name):
                return existing
        return None

    def copy(self, src: ModelName, dst: ModelName, requested: str | None = None) -> None:
        """Byte copy of the manifest; ``requested`` is the source as the caller spelled it."""
        src_path, dst_path = self.path(src), self.path(dst)
        if src_path == dst_path:
            if not src_path.is_file():
                raise ModelNotFound(f'model "{requested or src.display()}" not found')
            return
        try:
            data = src_path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ModelNotFound(f'model "{requested or src.display()}" not found') from None
        write_atomic(dst_path, data)
        # names are case-insensitive: the copy replaces one spelled differently
        for existing in self.names():
            if existing.equal_fold(dst) and self.path(existing) != dst_path:
                self.path(existing).unlink(missing_ok=True)

    def remove_empty_dirs(self) -> None:
        """Drop empty directories left under ``manifests/`` (never the root itself)."""
        if not self.dir.is_dir():
            return
        for directory, _, _ in sorted(os.walk(self.dir), key=lambda w: -len(w[0])):
            if Path(directory) != self.dir:
                with contextlib.suppress(OSError):
                    Path(directory).rmdir()
