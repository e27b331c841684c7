"""``nexus gateway keys`` and ``nexus gateway usage`` on a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from nexus.cli.main import app
from nexus.gateway.cli import parse_period
from nexus.gateway.keys import Authenticator, KeyStore
from tests.support import free_port

KEY = re.compile(r"sk-nexus-[0-9a-f]{12}-[A-Za-z0-9_-]{32}")


def nexus(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "gateway", *args],
        env={**os.environ, "NEXUS_GATEWAY_DB": db_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    """The same command line in this process (quicker)."""
    result = CliRunner().invoke(app, ["gateway", *args], env={"NEXUS_GATEWAY_DB": db_url})
    return result.exit_code, result.stdout, result.stderr


async def test_create_prints_a_working_key_alone_on_the_last_line(keys_db_url: str) -> None:
    created = nexus(keys_db_url, "keys", "create", "alice", "--models", "Foo,bar:7b", "--rpm", "5")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert KEY.fullmatch(lines[-1])
    assert sum(bool(KEY.search(line)) for line in lines) == 1
    assert "foo:latest,bar:7b" in created.stdout
    store = KeyStore.open(keys_db_url)
    try:
        auth = Authenticator(store, refresh_interval=60)
        await auth.start()
        key = await auth.authenticate(f"Bearer {lines[-1]}")
        await auth.stop()
    finally:
        store.close()
    assert (key.name, key.models, key.rpm, key.tpm, key.admin) == (
        "alice",
        ("foo:latest", "bar:7b"),
        5,
        None,
        False,
    )
    duplicate = nexus(keys_db_url, "keys", "create", "alice")
    assert (duplicate.returncode, duplicate.stdout) == (1, "")
    assert duplicate.stderr == 'Error: key "alice" exists\n'


def test_list_and_revoke(keys_db_url: str) -> None:
    code, out, _ = run(keys_db_url, "keys", "create", "alice", "--tpm", "1000", "--expires", "30d")
    assert code == 0
    raw = out.splitlines()[-1]
    code, out, _ = run(keys_db_url, "keys", "create", "ops", "--admin", "--expires", "1d12h")
    assert code == 0
    code, out, _ = run(keys_db_url, "keys", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "NAME", "ID", "MODELS", "RPM", "TPM", "EXPIRES", "LAST", "USED", "STATUS"
    ]  # fmt: skip
    assert [row.split()[0] for row in rows] == ["alice", "ops"]
    alice = rows[0].split()
    assert alice[1] == raw[9:21]
    assert alice[2:5] == ["all", "-", "1000"]
    assert alice[-2:] == ["never", "active"]
    assert raw[21:] not in out
    code, out, err = run(keys_db_url, "keys", "revoke", "alice")
    assert (code, err) == (0, "")
    assert "alice" in out
    _, out, _ = run(keys_db_url, "keys", "list")
    assert out.splitlines()[1].split()[-1] == "revoked"
    assert run(keys_db_url, "keys", "revoke", "nobody") == (1, "", 'Error: no key "nobody"\n')


def test_expiry_and_names_are_checked(sqlite_url: str) -> None:
    code, out, err = run(sqlite_url, "keys", "create", "x", "--expires", "soon")
    assert (code, out) == (1, "")
    assert err.startswith("Error: invalid --expires 'soon'")
    code, _, err = run(sqlite_url, "keys", "create", "x", "--expires", "0d")
    assert code == 1 and "not a positive duration" in err
    code, _, err = run(sqlite_url, "keys", "create", "x", "--rpm", "0")
    assert code == 2
    code, _, err = run(sqlite_url, "keys", "create", " ")
    assert code == 1 and err == "Error: a key name needs 1 to 200 characters\n"


def test_an_expired_key_is_listed_as_expired(sqlite_url: str) -> None:
    store = KeyStore.open(sqlite_url)
    store.create_key("old", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    store.close()
    _, out, _ = run(sqlite_url, "keys", "list")
    assert out.splitlines()[1].split()[-1] == "expired"
    assert "2020-01-01 00:00" in out


def test_usage_table(keys_db_url: str) -> None:
    store = KeyStore.open(keys_db_url)
    _, a = store.create_key("alice")
    _, b = store.create_key("bob")
    now = datetime.now(UTC)
    store.add_usage(
        {
            (a.record.id, "smollm2:135m", now): (3, 30, 12),
            (b.record.id, "gpt-4o", now): (1, 5, 7),
            (a.record.id, "smollm2:135m", datetime(2020, 1, 1, tzinfo=UTC)): (9, 9, 9),
        },
        {a.record.id: now},
    )
    store.close()
    code, out, _ = run(keys_db_url, "usage")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["KEY", "MODEL", "REQUESTS", "PROMPT", "TOKENS", "COMPLETION", "TOKENS", "TOTAL"],
        ["alice", "smollm2:135m", "3", "30", "12", "42"],
        ["bob", "gpt-4o", "1", "5", "7", "12"],
    ]
    code, out, _ = run(keys_db_url, "usage", "--key", "bob", "--since", "1h")
    assert [line.split()[0] for line in out.splitlines()] == ["KEY", "bob"]
    assert run(keys_db_url, "usage", "--key", "carol") == (1, "", 'Error: no key "carol"\n')
    _, out, _ = run(keys_db_url, "keys", "list")
    assert "Less than a second ago" in out or "seconds ago" in out


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("nonsense", "Could not parse SQLAlchemy URL"),
        ("mysql://u:hunter2@h/db", "unsupported database"),
    ],
)
def test_a_bad_database_url_is_one_line(url: str, why: str) -> None:
    code, out, err = run(url, "keys", "list")
    assert (code, out) == (1, "")
    assert err.startswith("Error: invalid NEXUS_GATEWAY_DB=")
    assert why in err
    assert "hunter2" not in err
    assert err.count("\n") == 1


def test_an_unreachable_database_is_one_line() -> None:
    code, out, err = run(f"postgresql://nobody@127.0.0.1:{free_port()}/x", "keys", "list")
    assert (code, out) == (1, "")
    assert err.startswith("Error: could not open the gateway database:")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("1d12h", 129600), ("1.5d", 129600)],
)
def test_periods(text: str, seconds: float) -> None:
    assert parse_period(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0d", "-1h", "3", "d", "1x", "36501d", "9" * 30 + "d"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)
