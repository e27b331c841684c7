"""Fixtures of the key store's tests: an SQLite file, and a PostgreSQL cluster per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway import postgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """One PostgreSQL cluster for the whole session; the tests that need it skip without it."""
    try:
        cluster = postgres.start()
    except postgres.Unavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: postgres.Cluster) -> str:
    """A new, empty PostgreSQL database."""
    return pg_cluster.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def keys_db_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))
