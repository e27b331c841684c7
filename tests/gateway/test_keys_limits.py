"""Per-key rate limits with a test clock (no sleeping), shared through a real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nexus.gateway.errors import RateLimited
from nexus.gateway.keys import KeyRecord, KeyStore, Limiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


START = 1_800_000_000.0  # a whole minute: 30_000_000 * 60
MINUTE = int(START // 60)


@pytest.fixture
def store(keys_db_url: str) -> Iterator[KeyStore]:
    opened = KeyStore.open(keys_db_url)
    yield opened
    opened.close()


def _key(store: KeyStore, name: str, **limits: int) -> KeyRecord:
    return store.create_key(name, **limits)[1].record


def test_requests_per_minute(store: KeyStore) -> None:
    clock = Clock(START + 15)
    limiter = Limiter(store, sync_interval=1.0, clock=clock)
    key = _key(store, "alice", rpm=3)
    for _ in range(3):
        limiter.check(key)
    for _ in range(2):
        with pytest.raises(RateLimited) as caught:
            limiter.check(key)
    error = caught.value
    assert error.message == "rate limit exceeded: 3 requests per minute for key alice"
    assert error.status == 429
    assert error.retry_after == pytest.approx(45)
    assert error.headers == {"Retry-After": "45"}
    clock.now = START + 59.5
    with pytest.raises(RateLimited) as caught:
        limiter.check(key)
    assert caught.value.headers == {"Retry-After": "1"}
    clock.now = START + 60  # a new minute
    for _ in range(3):
        limiter.check(key)
    with pytest.raises(RateLimited):
        limiter.check(key)


def test_refused_requests_do_not_count(store: KeyStore) -> None:
    clock = Clock(START)
    limiter = Limiter(store, sync_interval=1.0, clock=clock)
    key = _key(store, "alice", rpm=2)
    limiter.check(key)
    limiter.check(key)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.check(key)
    limiter.sync()
    assert store.sync_rates([], MINUTE) == {key.id: (2, 0)}


def test_tokens_per_minute(store: KeyStore) -> None:
    clock = Clock(START + 30)
    limiter = Limiter(store, sync_interval=1.0, clock=clock)
    key = _key(store, "bob", tpm=100)
    limiter.check(key)
    limiter.add_tokens(key, 60)
    limiter.check(key)  # 60 used: still under
    limiter.add_tokens(key, 40)
    with pytest.raises(RateLimited) as caught:
        limiter.check(key)
    assert caught.value.message == "rate limit exceeded: 100 tokens per minute for key bob"
    assert caught.value.retry_after == pytest.approx(30)
    clock.now = START + 60
    limiter.check(key)


def test_a_key_without_limits_costs_nothing(store: KeyStore) -> None:
    limiter = Limiter(store, sync_interval=1.0, clock=Clock(START))
    key = _key(store, "free")
    for _ in range(1000):
        limiter.check(key)
        limiter.add_tokens(key, 1000)
    limiter.sync()
    assert store.sync_rates([], MINUTE) == {}


def test_replicas_share_counts_after_a_sync(store: KeyStore, keys_db_url: str) -> None:
    other_store = KeyStore.open(keys_db_url)
    clock = Clock(START + 5)
    first = Limiter(store, sync_interval=1.0, clock=clock)
    second = Limiter(other_store, sync_interval=1.0, clock=clock)
    key = _key(store, "shared", rpm=5, tpm=1000)
    for _ in range(3):
        first.check(key)
    first.add_tokens(key, 400)
    first.sync()
    second.sync()
    second.check(key)
    second.check(key)
    with pytest.raises(RateLimited):
        second.check(key)  # 3 + 2 = 5 across both replicas
    second.add_tokens(key, 600)
    second.sync()
    first.sync()
    with pytest.raises(RateLimited):
        first.check(key)
    assert store.sync_rates([], MINUTE) == {key.id: (5, 1000)}
    other_store.close()


def test_counts_survive_a_failed_sync(store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(START)
    limiter = Limiter(store, sync_interval=1.0, clock=clock)
    key = _key(store, "alice", rpm=3)
    limiter.check(key)
    limiter.check(key)

    def failing(*_args: object) -> None:
        raise OSError("database unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(store, "sync_rates", failing)
        with pytest.raises(OSError):
            limiter.sync()
    limiter.check(key)
    with pytest.raises(RateLimited):
        limiter.check(key)
    limiter.sync()
    assert store.sync_rates([], MINUTE) == {key.id: (3, 0)}


async def test_stop_writes_what_is_left(store: KeyStore) -> None:
    clock = Clock(START)
    limiter = Limiter(store, sync_interval=3600, clock=clock)
    await limiter.start()
    key = _key(store, "alice", rpm=10)
    limiter.check(key)
    await limiter.stop()
    assert store.sync_rates([], MINUTE) == {key.id: (1, 0)}
