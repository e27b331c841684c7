"""Fixtures for the registry tests: an in-process fake registry and a tiny model on it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.fake_registry import FakeRegistry, serve

TINY_REPO = "library/tiny"
TINY_TAG = "1"
MODEL_TYPE = "application/vnd.ollama.image.model"
SYSTEM_TYPE = "application/vnd.ollama.image.system"


def tiny_blob(size: int = 1 << 20, seed: int = 7) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    return random.Random(seed).randbytes(size)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve(FakeRegistry()) as fake:
        yield fake


@pytest.fixture
def tiny_model(registry: FakeRegistry) -> tuple[FakeRegistry, bytes, bytes]:
    """``library/tiny:1`` on the fake registry: a 1 MiB model layer, a system layer, a config."""
    weights = tiny_blob()
    config = b'{"model_format":"gguf","model_family":"tiny"}'
    manifest = registry.add_model(
        TINY_REPO, TINY_TAG, config, [(MODEL_TYPE, weights), (SYSTEM_TYPE, b"be brief")]
    )
    return registry, manifest, weights


def blob_files(models: Path) -> list[str]:
    directory = models / "blobs"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
