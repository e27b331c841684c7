"""The benchmark's outputs: a Markdown table and a throughput chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def render_table(results: dict[str, Any], concurrency: list[int]) -> str:
    nexus = results["nexus"]
    peer = results.get("peer") or {}
    chat, openai, peer_api = nexus["chat"], nexus["openai"], peer.get("openai") or {}
    rows: list[tuple[str, str, bool]] = [
        ("Prompt tokens/s (1 stream)", "prompt_tps", False),
        ("Decode tokens/s (1 stream)", "decode_tps", True),
        ("Time to first token (ms)", "ttft_ms", True),
    ]
    rows += [
        (f"Aggregate decode tokens/s, {n} streams", f"aggregate_{n}_tps", True) for n in concurrency
    ]
    lines = [
        f"Model {results['model']}, {results['threads']} threads, context {results['ctx_per_slot']}"
        f" per slot, greedy, {results['n_predict']} tokens, median of {results['runs']} runs"
        f" with both servers up and taking turns ({results['machine']}, engine:"
        f" {results.get('engine_build', 'xllamacpp')}). Ratios: the median of each run's ratio.",
        "",
        "| Measure | Nexus /api/chat | Nexus /v1 | llama-server | /api/chat / peer | /v1 / peer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key, both in rows:
        v1 = openai.get(key) if both else None
        lines.append(
            f"| {label} | {_fmt(chat.get(key))} | {_fmt(v1)} | {_fmt(peer_api.get(key))} "
            f"| {_ratio(chat.get('vs_peer', {}).get(key))} "
            f"| {_ratio(openai.get('vs_peer', {}).get(key) if both else None)} |"
        )
    extra = [
        ("TTFT overhead vs llama-server (ms)", _fmt(chat.get("ttft_overhead_ms")),
         _fmt(openai.get("ttft_overhead_ms")), "0" if peer_api else "—"),
        ("Cold load of the model (s)", _fmt(nexus["cold_load_s"], 2), "",
         _fmt(peer.get("cold_load_s"), 2)),
        ("Memory, idle server (MB)", _fmt(nexus["idle_rss_mb"], 0), "", "—"),
        ("Memory, model loaded (MB)", _fmt(nexus["loaded_rss_mb"], 0), "",
         _fmt(peer.get("loaded_rss_mb"), 0)),
        ("One-token request latency (ms)", _fmt(nexus["request_latency_ms"], 2), "",
         _fmt(peer.get("request_latency_ms"), 2)),
    ]  # fmt: skip
    engine = results.get("engine")
    if engine:
        overhead = nexus["request_latency_ms"] - engine["request_latency_ms"]
        extra.append(
            ("HTTP layer overhead per request (ms): Nexus - engine in-process",
             _fmt(overhead, 2), "", "—")
        )  # fmt: skip
    for label, a, b, p in extra:
        lines.append(f"| {label} | {a} | {b} | {p} | | |")
    pull = results.get("pull")
    if pull:
        lines += [
            "",
            f"| Moving {pull['bytes'] / 1e6:.0f} MB on loopback | MB/s |",
            "|---|---:|",
            f"| Nexus pull from another Nexus node | {_fmt(pull['pull_mb_s'])} |",
            f"| Plain file copy of the same blob | {_fmt(pull['copy_mb_s'])} |",
            f"| Pull / copy | {pull['pull_vs_copy']:.2f}x |",
        ]
    return "\n".join(lines) + "\n"


def render_chart(results: dict[str, Any], concurrency: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = [
        ("Nexus /api/chat", results["nexus"]["chat"]),
        ("Nexus /v1", results["nexus"]["openai"]),
    ]
    if results.get("peer"):
        series.append(("llama-server", results["peer"]["openai"]))
    for label, data in series:
        ax.plot(
            concurrency, [data[f"aggregate_{n}_tps"] for n in concurrency], marker="o", label=label
        )
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate decode tokens/s")
    ax.set_xticks(concurrency)
    ax.set_title(f"Throughput against concurrency ({results['model']})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
