"""The benchmark's outputs: a Markdown table and a throughput chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def render_table(results: dict[str, Any]) -> str:
    """One section per model variant, then the pull figures."""
    lines = [
        f"{results['threads']} threads, context {results['ctx_per_slot']} per slot, greedy,"
        f" {results['n_predict']} tokens, median of {results['runs']} runs with the servers up"
        f" and taking turns ({results['machine']}, engine:"
        f" {results.get('engine_build', 'xllamacpp')}). Engine alone: the installed engine's own"
        " server as Nexus runs it (its runner process), without Nexus's front."
        " Ratios: the median of each run's ratio."
        " CPU per token: the server processes' user + system time over the aggregate phases,"
        " divided by the tokens streamed in them.",
    ]
    for variant in results["variants"]:
        lines += ["", f"### {variant['model']}", "", *variant_rows(variant, results["concurrency"])]
    if results.get("pull"):
        lines += ["", *pull_rows(results["pull"])]
    return "\n".join(lines) + "\n"


CPU_ROWS = [
    ("Server CPU per streamed token (µs), all processes", "server_cpu_us_per_token", True),
    ("Server CPU per streamed token (µs), Nexus front", "front_cpu_us_per_token", True),
    ("Server CPU per streamed token (µs), Nexus runner", "runner_cpu_us_per_token", True),
]


def measure_rows(concurrency: list[int]) -> list[tuple[str, str, bool]]:
    """Label, key, and whether Nexus /v1 has the figure too."""
    return [
        ("Prompt tokens/s (1 stream)", "prompt_tps", False),
        ("Decode tokens/s (1 stream)", "decode_tps", True),
        ("Time to first token (ms)", "ttft_ms", True),
        *[
            (f"Aggregate decode tokens/s, {n} streams", f"aggregate_{n}_tps", True)
            for n in concurrency
        ],
        *CPU_ROWS,
    ]


HEADER = (
    "| Measure | Nexus /api/chat | Nexus /v1 | Engine alone | llama-server "
    "| /api/chat / peer | /v1 / peer | Engine alone / peer | /api/chat / alone | /v1 / alone |"
)


def variant_rows(variant: dict[str, Any], concurrency: list[int]) -> list[str]:
    """Nexus's two APIs, the engine's own server alone and llama-server, then the ratios: each
    against llama-server, and Nexus against the engine alone (what Nexus's layers cost)."""
    nexus = variant["nexus"]
    chat, openai = nexus["chat"], nexus["openai"]
    alone = (variant.get("alone") or {}).get("openai") or {}
    peer = (variant.get("peer") or {}).get("openai") or {}
    lines = [HEADER, "|---|" + "---:|" * 9]
    for label, key, both in measure_rows(concurrency):
        v1 = openai if both else {}
        values = [chat.get(key), v1.get(key), alone.get(key), peer.get(key)]
        ratios = [
            chat.get("vs_peer", {}).get(key),
            v1.get("vs_peer", {}).get(key),
            alone.get("vs_peer", {}).get(key),
            chat.get("vs_alone", {}).get(key),
            v1.get("vs_alone", {}).get(key),
        ]
        cells = [_fmt(v) for v in values] + [_ratio(r) for r in ratios]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, *cells in server_rows(variant):
        lines.append(f"| {label} | " + " | ".join(cells) + " |" + " |" * 5)
    return lines


def server_rows(variant: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Figures of a server rather than of an API: label, Nexus, (Nexus /v1 or blank), the engine
    alone, llama-server."""
    nexus = variant["nexus"]
    chat, openai = nexus["chat"], nexus["openai"]
    alone = variant.get("alone") or {}
    peer = variant.get("peer") or {}
    engine_ms = (variant.get("engine") or {}).get("request_latency_ms")

    def http_layer(total_ms: float | None) -> str:
        return _fmt(None if engine_ms is None or total_ms is None else total_ms - engine_ms, 2)

    alone_api = alone.get("openai") or {}
    return [
        (
            "TTFT overhead vs llama-server (ms)",
            _fmt(chat.get("ttft_overhead_ms")),
            _fmt(openai.get("ttft_overhead_ms")),
            _fmt(alone_api.get("ttft_overhead_ms")),
            "0" if peer.get("openai") else "—",
        ),
        (
            "TTFT overhead vs the engine alone (ms)",
            _fmt(chat.get("ttft_overhead_vs_alone_ms")),
            _fmt(openai.get("ttft_overhead_vs_alone_ms")),
            "0" if alone_api else "—",
            "",
        ),
        (
            "Cold load of the model (s)",
            _fmt(nexus["cold_load_s"], 2),
            "",
            _fmt(alone.get("cold_load_s"), 2),
            _fmt(peer.get("cold_load_s"), 2),
        ),
        ("Memory, idle server (MB)", _fmt(nexus["idle_rss_mb"], 0), "", "—", "—"),
        (
            "Memory, model loaded (MB)",
            _fmt(nexus["loaded_rss_mb"], 0),
            "",
            _fmt(alone.get("loaded_rss_mb"), 0),
            _fmt(peer.get("loaded_rss_mb"), 0),
        ),
        (
            "GPU memory (MiB)",
            _fmt(nexus.get("gpu_memory_mib"), 0),
            "",
            _fmt(alone.get("gpu_memory_mib"), 0),
            _fmt(peer.get("gpu_memory_mib"), 0),
        ),
        (
            "One-token request latency (ms)",
            _fmt(nexus["request_latency_ms"], 2),
            "",
            _fmt(alone.get("request_latency_ms"), 2),
            _fmt(peer.get("request_latency_ms"), 2),
        ),
        ("One-token request latency, engine in-process (ms)", _fmt(engine_ms, 2), "", "—", "—"),
        (
            "HTTP layer per request (ms): one-token request - engine in-process",
            http_layer(nexus["request_latency_ms"]),
            "",
            http_layer(alone.get("request_latency_ms")),
            http_layer(peer.get("request_latency_ms")),
        ),
    ]


def pull_rows(pull: dict[str, Any]) -> list[str]:
    return [
        f"| Moving {pull['bytes'] / 1e6:.0f} MB on loopback | MB/s |",
        "|---|---:|",
        f"| Nexus pull from another Nexus node | {_fmt(pull['pull_mb_s'])} |",
        f"| Plain file copy of the same blob | {_fmt(pull['copy_mb_s'])} |",
        f"| Pull / copy | {pull['pull_vs_copy']:.2f}x |",
    ]


def render_chart(results: dict[str, Any], path: Path) -> None:
    """Aggregate throughput against concurrency, one panel per model variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["variants"]
    fig, axes = plt.subplots(1, len(variants), figsize=(7 * len(variants), 4.5), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        chart_variant(ax, variant, results["concurrency"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def chart_variant(ax: Any, variant: dict[str, Any], concurrency: list[int]) -> None:
    series = [
        ("Nexus /api/chat", variant["nexus"]["chat"]),
        ("Nexus /v1", variant["nexus"]["openai"]),
    ]
    if variant.get("alone"):
        series.append(("engine alone", variant["alone"]["openai"]))
    if variant.get("peer"):
        series.append(("llama-server", variant["peer"]["openai"]))
    for label, data in series:
        ax.plot(
            concurrency, [data[f"aggregate_{n}_tps"] for n in concurrency], marker="o", label=label
        )
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate decode tokens/s")
    ax.set_xticks(concurrency)
    ax.set_title(f"Throughput against concurrency ({variant['model']})")
    ax.grid(True, alpha=0.3)
    ax.legend()
