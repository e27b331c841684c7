"""The usage recorder writing to a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from nexus.gateway.keys import KeyServices, KeyStore, UsageRecorder

NOW = datetime(2030, 5, 6, 7, 8, 30, tzinfo=UTC)


@pytest.fixture
def store(keys_db_url: str) -> Iterator[KeyStore]:
    opened = KeyStore.open(keys_db_url)
    yield opened
    opened.close()


def _totals(store: KeyStore) -> list[tuple[str, str, int, int, int]]:
    return [
        (t.key_name, t.model, t.requests, t.prompt_tokens, t.completion_tokens)
        for t in store.usage(NOW - timedelta(days=1))
    ]


async def test_exact_totals_after_stop(store: KeyStore) -> None:
    _, a = store.create_key("a")
    _, b = store.create_key("b")
    clock = [NOW]
    recorder = UsageRecorder(store, flush_interval=0.01, clock=lambda: clock[0])
    await recorder.start()

    async def client(key_id: str, model: str, n: int) -> None:
        for i in range(n):
            recorder.record(key_id, model, 10, i % 3)
            if i % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(
        client(a.record.id, "m1", 200),
        client(a.record.id, "m2", 50),
        client(b.record.id, "m1", 120),
    )
    clock[0] = NOW + timedelta(minutes=2)  # a second minute bucket
    await client(a.record.id, "m1", 10)
    await recorder.stop()
    completion = sum(i % 3 for i in range(200)) + sum(i % 3 for i in range(10))
    assert _totals(store) == [
        ("a", "m1", 210, 2100, completion),
        ("a", "m2", 50, 500, sum(i % 3 for i in range(50))),
        ("b", "m1", 120, 1200, sum(i % 3 for i in range(120))),
    ]
    assert recorder.pending == 0
    assert store.get_key("a").last_used_at == NOW + timedelta(minutes=2)
    assert store.get_key("b").last_used_at == NOW


async def test_a_full_buffer_is_written_before_the_interval(store: KeyStore) -> None:
    _, a = store.create_key("a")
    recorder = UsageRecorder(store, flush_interval=3600, max_batch=3, clock=lambda: NOW)
    await recorder.start()
    try:
        for model in ("m1", "m2", "m3"):
            recorder.record(a.record.id, model, 1, 1)
        deadline = time.monotonic() + 10
        while len(_totals(store)) < 3:
            assert time.monotonic() < deadline, "a full batch was not written"
            await asyncio.sleep(0.02)
    finally:
        await recorder.stop()


def test_a_failed_write_keeps_the_rows(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw, a = store.create_key("a")
    recorder = UsageRecorder(store, clock=lambda: NOW)
    recorder.record(a.record.id, "m", 5, 6)

    def failing(*_args: object) -> None:
        raise OSError("database unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(store, "add_usage", failing)
        with pytest.raises(OSError):
            recorder.flush()
        recorder.record(a.record.id, "m", 1, 1)
        with caplog.at_level(logging.DEBUG):
            asyncio.run(recorder._flush_logged())
    assert "could not write usage (1 rows kept for the next try): OSError" in caplog.text
    assert raw not in caplog.text
    assert recorder.flush() == 1
    assert _totals(store) == [("a", "m", 2, 6, 7)]
    assert store.get_key("a").last_used_at == NOW


def test_the_buffer_is_bounded(store: KeyStore) -> None:
    _, a = store.create_key("a")
    recorder = UsageRecorder(store, max_batch=2, max_pending=3, clock=lambda: NOW)
    for i in range(5):
        recorder.record(a.record.id, f"m{i}", 1, 1)
    recorder.record(a.record.id, "m4", 1, 1)  # an existing row still adds up
    assert recorder.pending == 3
    assert recorder.dropped == 2
    recorder.flush()
    assert [(m, n) for _, m, n, _, _ in _totals(store)] == [("m2", 1), ("m3", 1), ("m4", 2)]


async def test_key_services_open_serve_and_close(keys_db_url: str) -> None:
    services = await KeyServices.open(keys_db_url, key_refresh=0.05, usage_flush=3600)
    raw, info = services.store.create_key("alice", rpm=2)
    key = await services.auth.authenticate(f"Bearer {raw}")
    assert key == info.record
    services.limiter.check(key)
    services.limiter.add_tokens(key, 5)
    services.usage.record(key.id, "m", 3, 4)
    await services.close()
    reopened = KeyStore.open(keys_db_url)
    try:
        assert [
            (t.key_name, t.requests, t.total_tokens)
            for t in reopened.usage(NOW - timedelta(days=9999))
        ] == [("alice", 1, 7)]
    finally:
        reopened.close()
