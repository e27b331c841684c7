"""The benchmark's outputs: a Markdown table and a throughput chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or not peer:
        return "—"
    return f"{ours / peer:.2f}x"


def render_table(results: dict[str, Any], concurrency: list[int]) -> str:
    nexus = results["nexus"]
    peer = results.get("peer") or {}
    chat, openai, peer_api = nexus["chat"], nexus["openai"], peer.get("openai") or {}
    rows: list[tuple[str, float | None, float | None, float | None, int]] = [
        ("Prompt tokens/s (1 stream)", chat["prompt_tps"], None, peer_api.get("prompt_tps"), 1),
        ("Decode tokens/s (1 stream)", chat["decode_tps"], openai["decode_tps"],
         peer_api.get("decode_tps"), 1),
        ("Time to first token (ms)", chat["ttft_ms"], openai["ttft_ms"],
         peer_api.get("ttft_ms"), 1),
    ]  # fmt: skip
    for n in concurrency:
        key = f"aggregate_{n}_tps"
        rows.append(
            (f"Aggregate decode tokens/s, {n} streams", chat[key], openai[key],
             peer_api.get(key), 1)
        )  # fmt: skip
    lines = [
        f"Model {results['model']}, {results['threads']} threads, context {results['ctx_per_slot']}"
        f" per slot, greedy, {results['n_predict']} tokens, median of {results['runs']} runs"
        f" with both servers up and taking turns ({results['machine']}, engine:"
        f" {results.get('engine_build', 'xllamacpp')}).",
        "",
        "| Measure | Nexus /api/chat | Nexus /v1 | llama-server | /api/chat / peer | /v1 / peer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, a, b, p, digits in rows:
        lines.append(
            f"| {label} | {_fmt(a, digits)} | {_fmt(b, digits)} | {_fmt(p, digits)} "
            f"| {_ratio(a, p)} | {_ratio(b, p)} |"
        )
    peer_ttft = peer_api.get("ttft_ms")
    extra = [
        ("TTFT overhead vs llama-server (ms)",
         _fmt(chat["ttft_ms"] - peer_ttft, 1) if peer_ttft else "—",
         _fmt(openai["ttft_ms"] - peer_ttft, 1) if peer_ttft else "—", "0"),
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
