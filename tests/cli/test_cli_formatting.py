"""The CLI's pure pieces: Ollama's size/time/duration texts, tables, progress, wrapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nexus.cli.display import WordWrapper
from nexus.cli.humanize import go_duration, human_bytes, human_time, parse_time
from nexus.cli.main import _think_flag
from nexus.cli.models import processor_text, until_text
from nexus.cli.progress import follow
from nexus.cli.stats import summary_lines
from nexus.cli.tables import render_table
from nexus.store.gguf_meta import human_number

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_362_698, "98 MB"),
        (4_700_000_000, "4.7 GB"),
        (2_000_000_000, "2 GB"),
        (274_000_000, "274 MB"),
        (12_345_000_000_000, "12 TB"),
    ],
)
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(134_515_008, "134.52M"), (8_000_000_000, "8B"), (7_240_000_000, "7.2B"), (3_000, "3K")],
)
def test_human_number(count: int, text: str) -> None:
    assert human_number(count) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(milliseconds=300), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=42), "42 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(minutes=75), "About an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=90), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (timedelta(minutes=-4, seconds=-30), "4 minutes from now"),
        (timedelta(days=-365 * 30), "Forever"),
    ],
)
def test_human_time(delta: timedelta, text: str) -> None:
    assert human_time(NOW - delta, "Never", NOW) == text


def test_times_from_the_api() -> None:
    assert human_time(parse_time("0001-01-01T00:00:00Z"), "Never", NOW) == "Never"
    parsed = parse_time("2025-06-01T11:58:00.123456789-00:00")
    assert parsed is not None and human_time(parsed, "Never", NOW) == "About a minute ago"
    assert until_text(parse_time("2025-06-01T11:00:00Z"), NOW) == "Stopping..."
    assert until_text(parse_time("2318-01-01T00:00:00Z"), NOW) == "Forever"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (512, "512ns"),
        (44_776, "44.776µs"),
        (303_749_000, "303.749ms"),
        (1_000_000, "1ms"),
        (5_331_288_816, "5.331288816s"),
        (2_000_000_000, "2s"),
        (62_500_000_000, "1m2.5s"),
        (3_723_000_000_000, "1h2m3s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_summary_lines() -> None:
    final = {
        "total_duration": 5_331_288_816,
        "load_duration": 0,
        "prompt_eval_count": 31,
        "prompt_eval_duration": 303_749_000,
        "eval_count": 5,
        "eval_duration": 91_628_000,
    }
    assert summary_lines(final) == [
        "total duration:       5.331288816s",
        "prompt eval count:    31 token(s)",
        "prompt eval duration: 303.749ms",
        "prompt eval rate:     102.06 tokens/s",
        "eval count:           5 token(s)",
        "eval duration:        91.628ms",
        "eval rate:            54.57 tokens/s",
    ]


def test_processor_text() -> None:
    assert processor_text(100, 0) == "100% CPU"
    assert processor_text(100, 100) == "100% GPU"
    assert processor_text(100, 52) == "48%/52% CPU/GPU"
    assert processor_text(100, 150) == "Unknown"


def test_render_table() -> None:
    lines = render_table([["a", "bb"], ["cccc", "d"]], ("NAME", "ID"))
    assert lines == ["NAME    ID", "a       bb", "cccc    d"]
    assert render_table([["", "key", "value"]]) == ["    key    value"]


class FakeView:
    live = False

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def status(self, message: str) -> None:
        self.calls.append(("status", message))

    def retitle(self, message: str) -> None:
        self.calls.append(("retitle", message))

    def bar(self, key: str, label: str, total: int, completed: int) -> None:
        self.calls.append(("bar", label, total, completed))

    def stop(self) -> None:
        self.calls.append(("stop",))


def test_follow_pull_progress() -> None:
    digest = "sha256:" + "ab" * 32
    events = [
        {"status": "pulling manifest"},
        {"status": "pulling abababababab", "digest": digest, "total": 10, "completed": 0},
        {"status": "pulling abababababab", "digest": digest, "total": 10, "completed": 4},
        {"status": "pulling abababababab", "digest": digest, "total": 10, "completed": 10},
        {"status": "verifying sha256 digest"},
        {"status": "verifying sha256 digest"},
        {"status": "success"},
    ]
    view = FakeView()
    assert follow(view, events, verb="pulling", skip_unstarted=True) == "success"
    assert view.calls == [
        ("status", "pulling manifest"),
        ("bar", "pulling abababababab:", 10, 4),
        ("bar", "pulling abababababab:", 10, 10),
        ("status", "verifying sha256 digest"),
        ("status", "success"),
    ]


def test_follow_push_progress_labels() -> None:
    digest = "sha256:" + "cd" * 32
    view = FakeView()
    events = [{"digest": digest, "total": 5, "completed": 0}, {"status": "success"}]
    follow(view, events, verb="pushing", skip_unstarted=False)
    assert view.calls[0] == ("bar", "pushing cdcdcdcdcdcd...", 5, 0)


def test_word_wrapper_moves_a_word_to_the_next_line() -> None:
    wrapper = WordWrapper(width=20)  # lines of up to 15 columns
    out = wrapper.feed("hello there general kenobi")
    assert "\n" in out
    shown = out.replace("\x1b[3D\x1b[K", "<back>")  # "gen" is erased
    assert shown.startswith("hello there gen")
    assert "<back>\ngeneral" in shown


def test_a_bare_think_flag_means_true() -> None:
    assert _think_flag(["run", "m", "--think", "hello"]) == ["run", "m", "--think=true", "hello"]
    assert _think_flag(["run", "m", "--think", "high"]) == ["run", "m", "--think", "high"]
    assert _think_flag(["run", "m", "--think"]) == ["run", "m", "--think=true"]
