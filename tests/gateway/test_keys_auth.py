"""The authenticator against a real key store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from nexus.gateway.errors import Unauthorized
from nexus.gateway.keys import Authenticator, KeyStore, token_from_headers


@pytest.fixture
def store(keys_db_url: str) -> Iterator[KeyStore]:
    opened = KeyStore.open(keys_db_url)
    yield opened
    opened.close()


@pytest.fixture
async def auth(store: KeyStore) -> AsyncIterator[Authenticator]:
    authenticator = Authenticator(store, refresh_interval=0.05)
    await authenticator.start()
    yield authenticator
    await authenticator.stop()


async def _refused(auth: Authenticator, token: str | None) -> str:
    with pytest.raises(Unauthorized) as caught:
        await auth.authenticate(token)
    assert caught.value.status == 401
    return caught.value.message


async def test_a_good_key_in_every_form(store: KeyStore, auth: Authenticator) -> None:
    raw, info = store.create_key("alice", models=["Foo"], rpm=3, admin=True)
    await auth.refresh()
    for token in (raw, f"Bearer {raw}", f"bearer {raw}", f"BEARER  {raw} "):
        key = await auth.authenticate(token)
        assert key == info.record
    assert key.allows("foo") and key.allows("FOO:latest") and not key.allows("bar")
    assert key.admin and key.rpm == 3
    assert token_from_headers(None, raw) == raw  # x-api-key, as the Anthropic SDK sends it
    assert token_from_headers(f"Bearer {raw}", None) == f"Bearer {raw}"
    assert token_from_headers(None, None) is None
    assert token_from_headers("Basic abc", raw) == raw
    assert token_from_headers("Basic abc", None) == "Basic abc"
    assert await auth.authenticate(token_from_headers(None, raw)) == info.record


async def test_missing_malformed_and_wrong_keys(store: KeyStore, auth: Authenticator) -> None:
    raw, _ = store.create_key("alice")
    assert "missing API key" in await _refused(auth, None)
    assert "Authorization: Bearer" in await _refused(auth, "  ")
    assert await _refused(auth, "Basic abc") == "invalid API key"
    assert await _refused(auth, "sk-nexus-short") == "invalid API key"
    assert await _refused(auth, raw[:-1]) == "invalid API key"
    wrong_secret = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert await _refused(auth, wrong_secret) == "invalid API key"
    unknown_id = f"sk-nexus-{secrets.token_hex(6)}-{raw[-32:]}"
    assert await _refused(auth, unknown_id) == "invalid API key"


async def test_a_key_created_after_start_works_at_once(store: KeyStore) -> None:
    auth = Authenticator(store, refresh_interval=3600)
    await auth.start()
    try:
        raw, info = store.create_key("late")
        assert await auth.authenticate(raw) == info.record
    finally:
        await auth.stop()


async def test_revocation_takes_effect_within_the_refresh_interval(
    store: KeyStore, auth: Authenticator
) -> None:
    raw, info = store.create_key("alice")
    assert await auth.authenticate(raw) == info.record
    store.revoke("alice")
    deadline = time.monotonic() + 10
    while True:
        try:
            await auth.authenticate(raw)
        except Unauthorized as exc:
            assert exc.message == "API key revoked"
            break
        assert time.monotonic() < deadline, "revoked key still accepted"
        await asyncio.sleep(0.01)


async def test_expired_keys_are_refused(store: KeyStore) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    clock = [now]
    auth = Authenticator(store, refresh_interval=3600, clock=lambda: clock[0])
    raw, _ = store.create_key("old", expires_at=now - timedelta(seconds=1))
    soon, soon_info = store.create_key("soon", expires_at=now + timedelta(minutes=1))
    await auth.start()
    try:
        assert await _refused(auth, raw) == "API key expired"
        assert await auth.authenticate(soon) == soon_info.record
        clock[0] = now + timedelta(minutes=1)
        assert await _refused(auth, soon) == "API key expired"
    finally:
        await auth.stop()


async def test_a_flood_of_unknown_keys_barely_touches_the_database(
    store: KeyStore, auth: Authenticator
) -> None:
    await auth.stop()  # only the refreshes caused by unknown keys count here
    before = auth.refreshes
    started = time.monotonic()
    fakes = [f"sk-nexus-{secrets.token_hex(6)}-{secrets.token_urlsafe(24)}" for _ in range(300)]
    results = await asyncio.gather(*(auth.authenticate(t) for t in fakes), return_exceptions=True)
    for token in fakes:
        with pytest.raises(Unauthorized):
            await auth.authenticate(token)
    elapsed = time.monotonic() - started
    assert all(isinstance(r, Unauthorized) for r in results)
    assert auth.refreshes - before <= 2 + elapsed / 0.25


async def test_no_key_material_in_logs(
    store: KeyStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)  # SQL statements and their parameters included
    raw, _ = store.create_key("alice")
    auth = Authenticator(store, refresh_interval=0.01)
    await auth.start()
    try:
        await auth.authenticate(raw)
        await _refused(auth, raw[:-1] + ("y" if raw.endswith("x") else "x"))  # a wrong key

        def failing() -> None:
            raise RuntimeError(f"database down while reading {raw}")

        monkeypatch.setattr(store, "load_keys", failing)
        deadline = time.monotonic() + 10
        while "could not reload API keys" not in caplog.text:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert (await auth.authenticate(raw)).name == "alice"  # the last snapshot still serves
    finally:
        await auth.stop()
    assert raw not in caplog.text
    assert raw[-32:] not in caplog.text
