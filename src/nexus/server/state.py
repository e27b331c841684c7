"""What the routes share: settings, store, catalog, scheduler, inference, built per app."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from nexus.config import Settings
from nexus.inference.models import Model, ModelCatalog
from nexus.inference.service import InferenceService
from nexus.modelfile.render import format_parameters, render_modelfile
from nexus.registry.download import TransferTable
from nexus.scheduler import Scheduler
from nexus.store.manifests import StoredManifest
from nexus.store.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    catalog: ModelCatalog
    scheduler: Scheduler
    inference: InferenceService
    #: Downloads in flight, so concurrent pulls of one blob share a transfer.
    transfers: TransferTable = field(default_factory=TransferTable)
    _configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def details_for(self, item: StoredManifest) -> dict[str, Any]:
        """``details`` for a listing, from the config blob (cached by its digest)."""
        digest = item.manifest.config.digest
        config = self._configs.get(digest)
        if config is None:
            try:
                text = await asyncio.to_thread(self.store.blobs.path(digest).read_text)
                config = json.loads(text)
            except (OSError, ValueError):
                config = {}
            self._configs[digest] = config
        return {
            "parent_model": "",
            "format": config.get("model_format", "gguf"),
            "family": config.get("model_family", ""),
            "families": config.get("model_families"),
            "parameter_size": config.get("model_type", ""),
            "quantization_level": config.get("file_type", ""),
        }

    def show(self, model: Model, verbose: bool) -> dict[str, Any]:
        from nexus.server.native import iso

        result: dict[str, Any] = {
            "license": "\n".join(model.licenses),
            "modelfile": render_modelfile(
                short_name=model.display_name,
                model_path=str(model.model_path),
                adapters=[str(p) for p in model.adapters],
                projectors=[str(p) for p in model.projectors],
                template=model.template_text,
                system=model.system,
                params=model.params,
                licenses=model.licenses,
                messages=model.messages,
            ),
            "parameters": format_parameters(model.params),
            "template": model.template_text or model.gguf.chat_template or "",
            "system": model.system or "",
            "details": model.details(),
            "model_info": model.gguf.model_info(verbose),
            "capabilities": model.capabilities,
            "modified_at": iso(model.modified_at),
        }
        if model.messages:
            result["messages"] = model.messages
        if model.projectors:
            from nexus.store.gguf_meta import read_gguf_info

            result["projector_info"] = read_gguf_info(model.projectors[0]).model_info(verbose)
        if verbose:
            result["tensors"] = model.gguf.tensor_list()
        return result

    def catalog_changed(self) -> None:
        self._configs.clear()


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.nexus
    return state
