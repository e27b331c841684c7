"""Shared fixtures: a clean environment, and one real server per session on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nexus.store.default_model import default_gguf_path, ensure_default_model
from tests.support import DEFAULT_MODEL, ServerProcess, free_port, shared_server, start_server

__all__ = ["DEFAULT_MODEL", "ServerProcess", "free_port", "start_server"]


@pytest.fixture(autouse=True)
def _scrub_ollama_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OLLAMA_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    return default_gguf_path()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    ensure_default_model(models, DEFAULT_MODEL)
    return models


@pytest.fixture(scope="session")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server: default settings but a smaller context, so loads stay quick."""
    yield from shared_server(models_dir, tmp_path_factory.mktemp("logs"))


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
