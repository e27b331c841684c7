"""Fixtures for the API tests: unique model names that are deleted after each test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest


@pytest.fixture
def scratch_name(http: httpx.Client) -> Iterator[Callable[[str], str]]:
    """Make unique model names; whatever exists under them at teardown is deleted."""
    names: list[str] = []

    def make(prefix: str = "scratch") -> str:
        name = f"nexus-test-{prefix}-{uuid.uuid4().hex[:8]}:latest"
        names.append(name)
        return name

    yield make
    for name in names:
        http.request("DELETE", "/api/delete", json={"model": name})
