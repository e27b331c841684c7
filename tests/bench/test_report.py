"""The bench's summary: medians per target, and ratios paired run by run against the peer; its
table, one section per model variant."""

from __future__ import annotations

from typing import Any

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


def test_cpu_per_token_pairs_only_where_the_peer_has_the_figure() -> None:
    """llama-server is one process: its CPU per token pairs with Nexus's front and runner
    together, while the front and the runner alone have no counterpart."""
    ours = {
        "ttft_ms": [12.0, 14.0],
        "server_cpu_us_per_token": [300.0, 330.0],
        "front_cpu_us_per_token": [100.0, 110.0],
        "runner_cpu_us_per_token": [200.0, 220.0],
    }
    peer = {"ttft_ms": [10.0, 12.0], "server_cpu_us_per_token": [200.0, 220.0]}
    summary = summarize(ours, peer)
    assert summary["vs_peer"]["server_cpu_us_per_token"] == pytest.approx(1.5)
    assert "front_cpu_us_per_token" not in summary["vs_peer"]
    assert summary["runner_cpu_us_per_token"] == pytest.approx(210.0)


def variant(model: str, scale: float, engine_ms: float | None) -> dict[str, Any]:
    runs = {
        "prompt_tps": [200.0 * scale, 220.0 * scale],
        "decode_tps": [90.0 * scale, 100.0 * scale],
        "ttft_ms": [15.0, 16.0],
        "aggregate_8_tps": [140.0 * scale, 150.0 * scale],
        "server_cpu_us_per_token": [500.0, 520.0],
        "front_cpu_us_per_token": [40.0, 44.0],
        "runner_cpu_us_per_token": [460.0, 476.0],
    }
    peer = {
        key: [value * 1.25 for value in values]
        for key, values in runs.items()
        if not key.startswith(("front", "runner"))
    }
    peer["ttft_ms"] = [12.0, 13.0]
    # the engine's server alone: as fast as Nexus, 1 ms sooner to the first token
    alone = {key: values for key, values in runs.items() if not key.startswith(("front", "runner"))}
    alone["ttft_ms"] = [14.0, 15.0]
    return {
        "model": model,
        "nexus": {
            "chat": summarize(runs, peer, alone),
            "openai": summarize(runs, peer, alone),
            "cold_load_s": 0.8,
            "idle_rss_mb": 80.0,
            "loaded_rss_mb": 600.0,
            "gpu_memory_mib": None,
            "request_latency_ms": 12.0,
        },
        "peer": {"openai": summarize(peer, None), "cold_load_s": 0.5, "loaded_rss_mb": 500.0,
                 "gpu_memory_mib": 1234.0, "request_latency_ms": 10.0},
        "alone": {"openai": summarize(alone, peer), "cold_load_s": 0.4, "loaded_rss_mb": 520.0,
                  "gpu_memory_mib": 1200.0, "request_latency_ms": 11.0},
        "engine": None if engine_ms is None else {"request_latency_ms": engine_ms},
    }  # fmt: skip


def results(*variants: dict[str, Any]) -> dict[str, Any]:
    return {
        "threads": 2,
        "ctx_per_slot": 1024,
        "n_predict": 128,
        "runs": 2,
        "concurrency": [8],
        "machine": "2 CPUs",
        "variants": list(variants),
    }


def section(table: str, model: str) -> str:
    return table.split(f"### {model}\n", 1)[1].split("### ", 1)[0]


def test_table_shows_the_paired_ratios_and_the_overhead() -> None:
    """Each figure against llama-server, and Nexus against the engine's own server alone."""
    table = render_table(results(variant("m.gguf", 1.0, 10.5)))
    assert (
        "| Aggregate decode tokens/s, 8 streams | 145.0 | 145.0 | 145.0 | 181.2 "
        "| 0.80x | 0.80x | 0.80x | 1.00x | 1.00x |" in table
    )
    assert "| TTFT overhead vs llama-server (ms) | 3.0 | 3.0 | 2.0 | 0 | | | | | |" in table
    assert "| TTFT overhead vs the engine alone (ms) | 1.0 | 1.0 | 0 |  | | | | | |" in table
    row = (
        "| HTTP layer per request (ms): one-token request - engine in-process "
        "| 1.50 |  | 0.50 | -0.50 |"
    )
    assert row in table


def test_table_without_the_engine_alone() -> None:
    """``--skip-engine-alone``: its columns are dashes, the rest as before."""
    data = variant("m.gguf", 1.0, 10.5)
    del data["alone"]
    for api in ("chat", "openai"):
        data["nexus"][api] = {k: v for k, v in data["nexus"][api].items() if "alone" not in k}
    table = render_table(results(data))
    assert (
        "| Aggregate decode tokens/s, 8 streams | 145.0 | 145.0 | — | 181.2 "
        "| 0.80x | 0.80x | — | — | — |" in table
    )
    assert "| One-token request latency (ms) | 12.00 |  | — | 10.00 | | | | | |" in table


def test_table_has_cpu_per_token_and_gpu_memory() -> None:
    table = render_table(results(variant("m.gguf", 1.0, 10.5)))
    assert (
        "| Server CPU per streamed token (µs), all processes | 510.0 | 510.0 | 510.0 | 637.5 "
        "| 0.80x | 0.80x | 0.80x | 1.00x | 1.00x |" in table
    )
    assert (
        "| Server CPU per streamed token (µs), Nexus front | 42.0 | 42.0 | — | — "
        "| — | — | — | — | — |" in table
    )
    assert "| Server CPU per streamed token (µs), Nexus runner | 468.0 | 468.0 | — |" in table
    assert "| GPU memory (MiB) | — |  | 1,200 | 1,234 | | | | | |" in table


def test_one_section_per_variant_and_a_missing_engine_phase() -> None:
    table = render_table(results(variant("a-f16.gguf", 1.0, 10.5), variant("a-q4.gguf", 2.0, None)))
    assert table.count("| Measure | Nexus /api/chat |") == 2
    f16, q4 = section(table, "a-f16.gguf"), section(table, "a-q4.gguf")
    assert "| Decode tokens/s (1 stream) | 95.0 |" in f16
    assert "| Decode tokens/s (1 stream) | 190.0 |" in q4
    assert "| One-token request latency, engine in-process (ms) | 10.50 |" in f16
    assert "| One-token request latency, engine in-process (ms) | — |" in q4
    assert "| HTTP layer per request (ms): one-token request - engine in-process | — |" in q4
