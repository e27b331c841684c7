"""The bench's summary: medians per target, and ratios paired run by run against the peer."""

from __future__ import annotations

import pytest

from bench.__main__ import summarize
from bench.report import render_table


def test_ratios_are_paired_run_by_run() -> None:
    """A machine that slows down between runs moves both servers alike; the paired ratio sees
    1.0 where a ratio of medians would not."""
    peer = {"decode_tps": [100.0, 50.0, 80.0], "ttft_ms": [10.0, 20.0, 12.0]}
    ours = {"decode_tps": [100.0, 50.0, 80.0], "ttft_ms": [12.0, 22.0, 14.0]}
    summary = summarize(ours, peer)
    assert summary["decode_tps"] == 80.0
    assert summary["vs_peer"]["decode_tps"] == pytest.approx(1.0)
    assert summary["ttft_overhead_ms"] == pytest.approx(2.0)
    assert "vs_peer" not in summarize(peer, None)


def test_table_shows_the_paired_ratios_and_the_overhead() -> None:
    runs = {
        "prompt_tps": [200.0, 220.0],
        "decode_tps": [90.0, 100.0],
        "ttft_ms": [15.0, 16.0],
        "aggregate_8_tps": [140.0, 150.0],
    }
    peer = {key: [value * 1.25 for value in values] for key, values in runs.items()}
    peer["ttft_ms"] = [12.0, 13.0]
    results = {
        "model": "m.gguf",
        "threads": 2,
        "ctx_per_slot": 1024,
        "n_predict": 128,
        "runs": 2,
        "machine": "2 CPUs",
        "nexus": {
            "chat": summarize(runs, peer),
            "openai": summarize(runs, peer),
            "cold_load_s": 0.8,
            "idle_rss_mb": 80.0,
            "loaded_rss_mb": 600.0,
            "request_latency_ms": 12.0,
        },
        "peer": {"openai": summarize(peer, None), "cold_load_s": 0.5, "loaded_rss_mb": 500.0,
                 "request_latency_ms": 10.0},
        "engine": {"request_latency_ms": 10.5},
    }  # fmt: skip
    table = render_table(results, [8])
    assert (
        "| Aggregate decode tokens/s, 8 streams | 145.0 | 145.0 | 181.2 | 0.80x | 0.80x |" in table
    )
    assert "| TTFT overhead vs llama-server (ms) | 3.0 | 3.0 | 0 | | |" in table
    assert "| HTTP layer overhead per request (ms): Nexus - engine in-process | 1.50 |" in table
