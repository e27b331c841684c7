"""The key store on SQLite and PostgreSQL: migrations, keys, usage and rate counters."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from nexus.gateway.keys import db, tokens
from nexus.gateway.keys.errors import DatabaseURLError, KeyExists, KeyNotFound
from nexus.gateway.keys.names import normalise_model
from nexus.gateway.keys.store import KeyStore


@pytest.fixture
def store(keys_db_url: str) -> Iterator[KeyStore]:
    opened = KeyStore.open(keys_db_url)
    yield opened
    opened.close()


def test_migration_creates_the_schema(store: KeyStore) -> None:
    schema = inspect(store.engine)
    assert {"gateway_keys", "gateway_usage", "gateway_rate", "alembic_version"} <= set(
        schema.get_table_names()
    )
    columns = {c["name"]: c for c in schema.get_columns("gateway_keys")}
    assert set(columns) == {
        "id",
        "name",
        "salt",
        "hash",
        "models",
        "rpm",
        "tpm",
        "admin",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }
    assert columns["expires_at"]["nullable"] and not columns["name"]["nullable"]
    assert schema.get_pk_constraint("gateway_keys")["constrained_columns"] == ["id"]
    unique = schema.get_unique_constraints("gateway_keys")
    assert [u["column_names"] for u in unique] == [["name"]]
    usage_pk = schema.get_pk_constraint("gateway_usage")["constrained_columns"]
    assert usage_pk == ["key_id", "model", "bucket"]
    assert schema.get_pk_constraint("gateway_rate")["constrained_columns"] == ["key_id", "minute"]
    assert db.current_revision(store.engine) == db.head_revision() == "0001"


_OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from nexus.gateway.keys.store import KeyStore
go = Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
store = KeyStore.open(sys.argv[1])
print(len(store.list_keys()))
"""


def test_processes_opening_a_new_database_together_all_succeed(
    keys_db_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_WHEN_TOLD, keys_db_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    go.touch()
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [
        (proc.returncode, out.strip()) for proc, (out, _) in zip(procs, results, strict=True)
    ] == [(0, "0")] * 3, [err for _, err in results]
    again = KeyStore.open(keys_db_url)
    assert db.current_revision(again.engine) == db.head_revision()
    again.create_key("one")
    assert [k.record.name for k in again.list_keys()] == ["one"]
    again.close()


def test_threads_opening_together_all_succeed(keys_db_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[KeyStore] = []

    def open_one() -> None:
        try:
            stores.append(KeyStore.open(keys_db_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(stores) == 3
    for opened in stores:
        opened.close()


def test_create_list_revoke(store: KeyStore) -> None:
    raw, info = store.create_key(
        "alice", models=["Llama3", "qwen:7b", "llama3"], rpm=5, tpm=100, admin=True
    )
    assert re.fullmatch(r"sk-nexus-[0-9a-f]{12}-[A-Za-z0-9_-]{32}", raw)
    assert raw.startswith(f"sk-nexus-{info.record.id}-")
    assert info.record.models == ("llama3:latest", "qwen:7b")
    (listed,) = store.list_keys()
    assert listed.record == info.record
    assert listed.status(datetime.now(UTC)) == "active"
    with pytest.raises(KeyExists, match='key "alice" exists'):
        store.create_key("alice")
    revoked = store.revoke("alice")
    assert revoked.revoked_at is not None
    assert revoked.status(datetime.now(UTC)) == "revoked"
    assert store.revoke("alice").revoked_at == revoked.revoked_at
    with pytest.raises(KeyNotFound, match='no key "bob"'):
        store.revoke("bob")
    (stored,) = store.load_keys()
    assert stored.revoked_at == revoked.revoked_at
    _, secret = tokens.parse(raw) or ("", "")
    assert tokens.verify(secret, stored.salt, stored.hash)
    assert not tokens.verify(
        secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored.salt, stored.hash
    )


def test_expiry_is_stored_in_utc(store: KeyStore) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    store.create_key("old", expires_at=past)
    (listed,) = store.list_keys()
    assert listed.record.expires_at == past
    assert listed.status(datetime.now(UTC)) == "expired"


def test_usage_adds_up_per_key_model_and_minute(store: KeyStore) -> None:
    _, a = store.create_key("a")
    _, b = store.create_key("b")
    minute = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    later = minute + timedelta(minutes=1)
    store.add_usage({(a.record.id, "m1", minute): (1, 10, 5)}, {a.record.id: minute})
    store.add_usage(
        {
            (a.record.id, "m1", minute): (2, 20, 10),
            (a.record.id, "m1", later): (1, 1, 1),
            (b.record.id, "m2", later): (4, 0, 7),
        },
        {a.record.id: later, b.record.id: later},
    )
    totals = store.usage(minute)
    assert [
        (t.key_name, t.model, t.requests, t.prompt_tokens, t.completion_tokens) for t in totals
    ] == [
        ("a", "m1", 4, 31, 16),
        ("b", "m2", 4, 0, 7),
    ]
    assert [(t.key_name, t.requests) for t in store.usage(later, key_name="a")] == [("a", 1)]
    with pytest.raises(KeyNotFound):
        store.usage(minute, key_name="nobody")
    assert {k.record.name: k.last_used_at for k in store.list_keys()} == {"a": later, "b": later}
    store.add_usage({}, {a.record.id: minute})  # never moves last use backwards
    assert store.get_key("a").last_used_at == later


def test_rate_rows_add_up_across_writers(store: KeyStore) -> None:
    assert store.sync_rates([("k1", 100, 1, 10)], 100) == {"k1": (1, 10)}
    assert store.sync_rates([("k1", 100, 2, 5), ("k2", 100, 1, 0)], 100) == {
        "k1": (3, 15),
        "k2": (1, 0),
    }
    assert store.sync_rates([], 101) == {}
    store.sync_rates([], 110)  # prunes rows of long-past minutes
    assert store.sync_rates([], 100) == {}


def test_raw_key_is_not_in_the_database_file(sqlite_url: str, tmp_path: Path) -> None:
    opened = KeyStore.open(sqlite_url)
    raw, _ = opened.create_key("secretive", models=["m"])
    _, secret = tokens.parse(raw) or ("", "")
    opened.close()
    files = list(tmp_path.glob("gateway.db*"))
    assert files
    for path in files:
        data = path.read_bytes()
        assert raw.encode() not in data
        assert secret.encode() not in data


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("not a url", "Could not parse"),
        ("mysql://u:pw@h/db", 'unsupported database "mysql"'),
        ("postgresql+nosuch://h/db", "not available"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_bad_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(DatabaseURLError, match=re.escape(why)):
        db.parse_url(url)


def test_postgresql_urls_use_psycopg3(tmp_path: Path) -> None:
    assert db.parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert db.parse_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert db.parse_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert db.default_url(tmp_path) == f"sqlite:///{tmp_path}/.nexus/gateway.db"
    assert db.url_from_env({}, tmp_path) == db.default_url(tmp_path)
    assert db.url_from_env({"NEXUS_GATEWAY_DB": "sqlite:////x.db"}) == "sqlite:////x.db"
    assert db.shown_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_default_folder_is_private(tmp_path: Path) -> None:
    opened = KeyStore.open(db.default_url(tmp_path))
    opened.close()
    assert (tmp_path / ".nexus" / "gateway.db").is_file()
    assert (tmp_path / ".nexus").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("foo", "foo:latest"),
        ("Foo:7B", "foo:7b"),
        ("registry.local:5000/lib/foo", "registry.local:5000/lib/foo:latest"),
        ("lib/foo:q4", "lib/foo:q4"),
    ],
)
def test_model_names_normalise_as_ollama_does(name: str, normalised: str) -> None:
    assert normalise_model(name) == normalised


def test_key_format() -> None:
    new = tokens.generate()
    assert tokens.parse(new.raw) == (
        new.key_id,
        new.raw.rsplit("-", 1)[-1] if False else new.raw[22:],
    )
    assert tokens.parse("sk-nexus-XYZ-abc") is None
    assert tokens.parse(new.raw + "x") is None
    assert len(new.salt) == 32 and len(new.hash) == 64
    assert new.raw not in (new.salt, new.hash)
