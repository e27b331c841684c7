"""``created_at`` as Ollama writes it, the date and time of day formatted once a second."""

from __future__ import annotations

import pytest

from nexus.inference import service


def test_created_at_follows_the_clock_across_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000_123_456_789]
    monkeypatch.setattr(service.time, "time_ns", lambda: now[0])
    assert service.now_iso() == "2023-11-14T22:13:20.123456Z"
    now[0] += 876_543_211  # exactly the next second
    assert service.now_iso() == "2023-11-14T22:13:21.000000Z"
    now[0] += 999_999  # within it: the cached text, the new microseconds
    assert service.now_iso() == "2023-11-14T22:13:21.000999Z"
    now[0] = 1_800_000_000_000_000_000  # far ahead
    assert service.now_iso() == "2027-01-15T08:00:00.000000Z"
