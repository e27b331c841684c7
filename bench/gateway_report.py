"""The gateway section's outputs: a Markdown table (direct, Nexus gateway, LiteLLM side by side)
and one line per target saying whether it was met."""

from __future__ import annotations

from typing import Any

COLUMNS = [("direct", "direct"), ("nexus", "Nexus gateway"), ("litellm", "LiteLLM")]
ADDED_P50_TARGET_MS = 1.0
RPS_TARGET_RATIO = 10.0
FLAT_RSS_PCT = 5.0  # growth from after the warm-up to the end, as a share of the warmed-up RSS

# label, case key, figure, how it is shown: "rps", "ms", "added" (minus direct), "pct", "count"
ROWS: list[tuple[str, str, str, str]] = [
    ("Requests/s, non-stream, concurrency 1", "c1", "rps", "rps"),
    ("p50 latency, c=1 (ms)", "c1", "p50_ms", "ms"),
    ("p90 latency, c=1 (ms)", "c1", "p90_ms", "ms"),
    ("p99 latency, c=1 (ms)", "c1", "p99_ms", "ms"),
    ("Added p50 over direct, c=1 (ms)", "c1", "p50_ms", "added"),
    ("Added p99 over direct, c=1 (ms)", "c1", "p99_ms", "added"),
    ("Proxy CPU per request, c=1 (ms)", "c1", "proxy_cpu_ms_per_req", "ms"),
    ("Requests/s, non-stream, concurrency 8", "c8", "rps", "rps"),
    ("p50 latency, c=8 (ms)", "c8", "p50_ms", "ms"),
    ("p90 latency, c=8 (ms)", "c8", "p90_ms", "ms"),
    ("p99 latency, c=8 (ms)", "c8", "p99_ms", "ms"),
    ("Added p50 over direct, c=8 (ms)", "c8", "p50_ms", "added"),
    ("Added p99 over direct, c=8 (ms)", "c8", "p99_ms", "added"),
    ("Proxy CPU per request, c=8 (ms)", "c8", "proxy_cpu_ms_per_req", "ms"),
    ("Proxy CPU use, c=8 (% of a core)", "c8", "proxy_cpu_pct", "pct"),
    ("Stub backend CPU per request, c=8 (ms)", "c8", "stub_cpu_ms_per_req", "ms"),
    ("Requests/s, stream (20 chunks), c=8", "stream_c8", "rps", "rps"),
    ("p50 stream latency, c=8 (ms)", "stream_c8", "p50_ms", "ms"),
    ("p99 stream latency, c=8 (ms)", "stream_c8", "p99_ms", "ms"),
    ("Added p50 over direct, stream (ms)", "stream_c8", "p50_ms", "added"),
    ("Time to first chunk p50, c=8 (ms)", "stream_c8", "ttfc_p50_ms", "ms"),
    ("Time to first chunk p99, c=8 (ms)", "stream_c8", "ttfc_p99_ms", "ms"),
    ("Proxy CPU per streamed request (ms)", "stream_c8", "proxy_cpu_ms_per_req", "ms"),
]
MEMORY_ROWS = [
    ("Proxy RSS after start (MiB)", "start"),
    ("Proxy RSS after warm-up (MiB)", "warm"),
    ("Proxy RSS at the end (MiB)", "end"),
    ("Proxy RSS growth, warm-up to end (MiB)", "delta"),
]


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rps":
        return f"{value:,.0f}"
    if kind in ("pct", "mib"):
        return f"{value:,.1f}"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return "—"  # an overhead within the noise (or below it) has no meaningful ratio
    ratio = ours / theirs
    if ratio >= 10:
        return f"{ratio:.0f}x"
    if ratio >= 1:
        return f"{ratio:.1f}x"
    return f"{ratio:.2g}x" if ratio >= 0.001 else "<0.001x"


def figure(results: dict[str, Any], target: str, case: str, key: str, kind: str) -> float | None:
    """One figure of one target, or None where it was not measured; ``added`` is the target's
    figure minus the direct one."""
    targets = results.get("targets", {})
    value = targets.get(target, {}).get("cases", {}).get(case, {}).get(key)
    if kind == "added" and target == "direct":
        return None  # the baseline itself
    if kind != "added" or value is None:
        return value
    base = targets.get("direct", {}).get("cases", {}).get(case, {}).get(key)
    return None if base is None else value - base


def memory(results: dict[str, Any], target: str, key: str) -> float | None:
    rss = results.get("targets", {}).get(target, {}).get("rss_mib") or {}
    return rss.get(key)


def failed(results: dict[str, Any], target: str) -> int | None:
    data = results.get("targets", {}).get(target, {})
    if "cases" not in data:
        return None
    return sum(int(case.get("failed", 0)) for case in data["cases"].values())


def targets_met(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """Each target: its wording, met (None: not measured) and the measured figure."""
    out: list[tuple[str, bool | None, str]] = []
    added = figure(results, "nexus", "c1", "p50_ms", "added")
    out.append(
        (f"Nexus added p50 at concurrency 1 under {ADDED_P50_TARGET_MS:g} ms",
         None if added is None else added < ADDED_P50_TARGET_MS,
         "—" if added is None else f"{added:.2f} ms")
    )  # fmt: skip
    ours, theirs = (
        figure(results, "nexus", "c8", "rps", "rps"),
        figure(results, "litellm", "c8", "rps", "rps"),
    )
    ratio = ours / theirs if ours is not None and theirs else None
    measured = "—" if ratio is None else f"{ratio:.1f}x"
    cpu = [figure(results, t, "c8", "proxy_cpu_ms_per_req", "ms") for t in ("nexus", "litellm")]
    if ratio is not None and cpu[0] and cpu[1]:
        # CPU per request does not depend on how much of the machine the proxy got
        measured += f" (CPU per request {cpu[1] / cpu[0]:.0f}x less)"
    out.append(
        (f"Nexus requests/s at least {RPS_TARGET_RATIO:g}x LiteLLM's (concurrency 8, one worker"
         " each)", None if ratio is None else ratio >= RPS_TARGET_RATIO, measured)
    )  # fmt: skip
    warm, delta = memory(results, "nexus", "warm"), memory(results, "nexus", "delta")
    flat = None if warm is None or delta is None else delta <= warm * FLAT_RSS_PCT / 100
    out.append(
        (f"Nexus RSS flat (growth from warm-up to end at most {FLAT_RSS_PCT:g}%)", flat,
         "—" if delta is None or warm is None else f"{delta:+.1f} MiB on {warm:.1f} MiB")
    )  # fmt: skip
    return out


def render_gateway_table(results: dict[str, Any]) -> str:
    targets = results.get("targets", {})
    versions = ", ".join(
        f"{label} {targets[key]['version']}"
        for key, label in COLUMNS
        if targets.get(key, {}).get("version")
    )
    load = results.get("load_average")
    lines = [
        "Gateway overhead over an instant OpenAI stub backend: "
        f"{results['requests']:,} non-streamed requests per concurrency and "
        f"{results['stream_requests']:,} streamed, after a {results['warmup']}-request warm-up;"
        " one worker per proxy; client, stub and proxy share the machine"
        f" ({results['machine']}, Python {results['python']}"
        + (f"; {versions}" if versions else "")
        + (
            f"; load average {load['start']:.1f} at the start, {load['end']:.1f} at the end"
            if load
            else ""
        )
        + "). The direct column is the client's ceiling.",
        "",
    ]
    for key, label in COLUMNS:
        if targets.get(key, {}).get("error"):
            lines.append(f"{label}: not measured, {targets[key]['error']}")
    if lines[-1]:
        lines.append("")
    lines += [
        "| Measure | direct | Nexus gateway | LiteLLM | Nexus/LiteLLM |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, case, key, kind in ROWS:
        values = [figure(results, target, case, key, kind) for target, _ in COLUMNS]
        cells = " | ".join(_fmt(v, kind) for v in values)
        lines.append(f"| {label} | {cells} | {_ratio(values[1], values[2])} |")
    for label, key in MEMORY_ROWS:
        values = [memory(results, target, key) for target, _ in COLUMNS]
        cells = " | ".join(_fmt(v, "mib") for v in values)
        lines.append(f"| {label} | {cells} | {_ratio(values[1], values[2])} |")
    counts = [failed(results, target) for target, _ in COLUMNS]
    lines.append(f"| Failed requests | {' | '.join(_fmt(c, 'count') for c in counts)} | |")
    lines.append("")
    for wording, met, measured in targets_met(results):
        verdict = "not measured" if met is None else ("met" if met else "not met")
        lines.append(f"- {wording}: {measured}, {verdict}")
    return "\n".join(lines) + "\n"
