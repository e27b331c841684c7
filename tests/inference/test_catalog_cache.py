"""The catalog answers a model it has read before from memory while its manifest file is the
same, unchanged file, and reads it again as soon as the manifest is rewritten or removed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from nexus.errors import ModelNotFound
from nexus.inference.models import ModelCatalog
from nexus.store.default_model import ensure_default_model
from nexus.store.names import ModelName
from nexus.store.store import Store

NAME = "smollm2:135m"


@pytest.fixture
def catalog(tmp_path: Path) -> ModelCatalog:
    ensure_default_model(tmp_path, NAME)
    return ModelCatalog(Store(tmp_path))


def test_an_unchanged_manifest_is_not_read_again(
    catalog: ModelCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = asyncio.run(catalog.get(NAME))
    reads: list[str] = []
    original = catalog.store.manifests.read
    monkeypatch.setattr(
        catalog.store.manifests, "read", lambda *a, **k: reads.append("read") or original(*a, **k)
    )
    assert asyncio.run(catalog.get(NAME)) is first
    assert reads == []


def test_a_rewritten_manifest_is_read_again(catalog: ModelCatalog) -> None:
    first = asyncio.run(catalog.get(NAME))
    name = ModelName.parse(NAME)
    stored = catalog.store.manifests.read(name)
    manifest = stored.manifest.model_copy(update={"layers": list(stored.manifest.layers)})
    catalog.store.manifests.write(name, manifest)  # same content, a new file
    again = asyncio.run(catalog.get(NAME))
    assert again.name == first.name
    path = catalog.store.manifests.path(name)
    os.utime(path, ns=(1, 1))
    assert asyncio.run(catalog.get(NAME)).modified_at.year == 1970


def test_a_removed_model_is_not_answered_from_memory(catalog: ModelCatalog) -> None:
    asyncio.run(catalog.get(NAME))
    catalog.store.manifests.delete(ModelName.parse(NAME))
    with pytest.raises(ModelNotFound):
        asyncio.run(catalog.get(NAME))


def test_a_name_spelled_in_another_case_still_resolves(catalog: ModelCatalog) -> None:
    first = asyncio.run(catalog.get(NAME))
    assert asyncio.run(catalog.get(NAME.upper())).model_path == first.model_path
