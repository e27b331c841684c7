"""A model as the server uses it: its manifest's layers read into one object."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.errors import InvalidModelName, ModelNotFound, NexusError, StoreError
from nexus.inference.local_templates import LocalTemplates
from nexus.store import manifests as mt
from nexus.store.gguf_meta import GGUFInfo, read_gguf_info
from nexus.store.manifests import StoredManifest
from nexus.store.names import ModelName
from nexus.store.store import Store

if TYPE_CHECKING:
    from nexus.template import Template


@dataclass
class Model:
    name: ModelName
    digest: str
    modified_at: datetime
    size: int
    model_path: Path
    #: Bytes of the weights file (the model layer's size in the manifest).
    weights_size: int
    gguf: GGUFInfo
    config: dict[str, Any] = field(default_factory=dict)
    template: Template | None = None
    template_text: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapters: list[Path] = field(default_factory=list)
    projectors: list[Path] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name.display()

    @property
    def capabilities(self) -> list[str]:
        """What this model can be asked for; Nexus handles tool calls for every chat model."""
        caps: list[str] = []
        if self.gguf.is_embedding_only:
            return ["embedding"]
        caps.append("completion")
        caps.append("tools")
        if self.template is not None and self.template.uses("Suffix"):
            caps.append("insert")
        if self.gguf.has_vision or self.projectors:
            caps.append("vision")
        caps.append("embedding")
        thinking_tags = ("<think>", "<thinking>")
        text = (self.template_text or "") + (self.gguf.chat_template or "")
        if any(tag in text for tag in thinking_tags) or (
            self.template is not None and self.template.uses("Think")
        ):
            caps.append("thinking")
        return caps

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": self.config.get("model_format", "gguf"),
            "family": self.config.get("model_family") or self.gguf.family,
            "families": self.config.get("model_families") or self.gguf.families,
            "parameter_size": self.config.get("model_type") or self.gguf.parameter_size,
            "quantization_level": self.config.get("file_type") or self.gguf.quantization_level,
        }


class ModelCatalog:
    """Reads models from the store; caches what is costly to parse, keyed by content digest."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._gguf: dict[str, GGUFInfo] = {}
        self._templates: dict[str, Template] = {}
        #: Models by manifest digest and name: layers are content-addressed, so never stale.
        self._models: dict[str, Model] = {}
        #: GGUF chat templates rendered in the server once they render as the engine does.
        self.jinja = LocalTemplates()
        #: The model each manifest file gave, with that file's identity when it was read.
        self._seen: dict[str, tuple[tuple[int, int, int, int], Model]] = {}

    @staticmethod
    def parse_name(text: str) -> ModelName:
        if not text:
            raise InvalidModelName("model is required")
        return ModelName.parse(text)

    async def get(self, requested: str) -> Model:
        name = self.parse_name(requested)
        known = self._unchanged(name)
        if known is not None:
            return known
        return await asyncio.to_thread(self._load, name, requested)

    def _unchanged(self, name: ModelName) -> Model | None:
        """The model read before under this exact name when its manifest file is the same file,
        unchanged since (one ``stat``, cheap enough for the event loop): no thread, no parse."""
        try:
            path = self.store.manifests.path(name)
            stat = path.stat()
        except (OSError, NexusError):
            return None
        seen = self._seen.get(str(path))
        if seen is None or seen[0] != _identity(stat):
            return None
        model = seen[1]
        return model if model.model_path.exists() else None

    def template(self, text: str) -> Template:
        from nexus.template import parse

        tmpl = self._templates.get(text)
        if tmpl is None:
            tmpl = parse(text)
            if len(self._templates) > 256:
                self._templates.clear()
            self._templates[text] = tmpl
        return tmpl

    def _load(self, name: ModelName, requested: str) -> Model:
        resolved = self.store.manifests.resolve(name) or name
        path = self.store.manifests.path(resolved)
        try:
            before = _identity(path.stat())
        except OSError:
            before = None
        stored = self.store.manifests.read(resolved, requested=requested)
        key = f"{stored.digest}:{resolved.full()}"
        model = self._models.get(key)
        if model is not None and model.model_path.exists():
            model.modified_at = stored.modified_at
        else:
            model = self._read_model(resolved, stored, requested)
            if len(self._models) > 256:
                self._models.clear()
            self._models[key] = model
        if before is not None and resolved == name:
            if len(self._seen) > 256:
                self._seen.clear()
            self._seen[str(path)] = (before, model)
        return model

    def _read_model(self, resolved: ModelName, stored: StoredManifest, requested: str) -> Model:
        manifest = stored.manifest
        blobs = self.store.blobs
        model_layers = [ly for ly in manifest.layers if ly.mediaType == mt.MODEL_MEDIA_TYPE]
        if not model_layers:
            raise ModelNotFound(f"model '{requested}' not found")
        model_path = blobs.path(model_layers[0].digest)
        if not model_path.exists():
            raise ModelNotFound(f'model "{requested}" not found, try pulling it first')
        info = self._gguf.get(model_layers[0].digest)
        if info is None:
            try:
                info = read_gguf_info(model_path)
            except Exception as exc:  # a damaged weights file
                raise StoreError(f"cannot read model file of {requested}: {exc}") from exc
            self._gguf[model_layers[0].digest] = info
        model = Model(
            name=resolved,
            digest=stored.digest,
            modified_at=stored.modified_at,
            size=stored.size,
            model_path=model_path,
            weights_size=model_layers[0].size,
            gguf=info,
            projectors=[blobs.path(ly.digest) for ly in model_layers[1:]],
        )
        try:
            model.config = json.loads(blobs.path(manifest.config.digest).read_text())
        except (OSError, ValueError):
            model.config = {}
        for layer in manifest.layers:
            kind = layer.mediaType
            if kind in (mt.TEMPLATE_MEDIA_TYPE, mt.PROMPT_MEDIA_TYPE):
                model.template_text = blobs.path(layer.digest).read_text()
                model.template = self.template(model.template_text)
            elif kind == mt.SYSTEM_MEDIA_TYPE:
                model.system = blobs.path(layer.digest).read_text()
            elif kind == mt.PARAMS_MEDIA_TYPE:
                model.params = json.loads(blobs.path(layer.digest).read_text())
            elif kind == mt.MESSAGES_MEDIA_TYPE:
                model.messages = json.loads(blobs.path(layer.digest).read_text())
            elif kind == mt.LICENSE_MEDIA_TYPE:
                model.licenses.append(blobs.path(layer.digest).read_text())
            elif kind == mt.ADAPTER_MEDIA_TYPE:
                model.adapters.append(blobs.path(layer.digest))
            elif kind == mt.PROJECTOR_MEDIA_TYPE:
                model.projectors.append(blobs.path(layer.digest))
        return model


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a manifest is written (atomically: a new file) or touched."""
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size
