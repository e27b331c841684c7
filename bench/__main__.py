"""``make bench``: Nexus against llama.cpp's ``llama-server`` on the same model, side by side;
then the gateway's overhead against LiteLLM's proxy (``bench.gateway``).

Same GGUF, threads, context per slot and greedy decoding for both; both servers stay up and every
measurement takes turns between them, several runs, medians. One model after another: the default
model, a given GGUF, or random-weight models in the shapes of real ones (``--synthetic``).
Prints a Markdown table and writes it as JSON and a PNG chart under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.engine_alone import start_engine_alone
from bench.engine_latency import engine_gpus, engine_latency
from bench.measure import (
    STORY,
    Burst,
    CpuTally,
    Target,
    child_pids,
    concurrent,
    cpu_ticks,
    gpu_memory_mib,
    process_tree,
    prompt_rate,
    request_latency,
    rss_bytes,
    stream_once,
    wait_ready,
)
from bench.peer import NoPeer, describe_engine, llama_server
from bench.report import render_chart, render_table
from bench.synthetic import SHAPES, WEIGHTS, synthesize
from nexus.runner.spec import default_threads
from nexus.store.create import CreateSpec, create_model
from nexus.store.default_model import default_gguf_path
from nexus.store.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "bench:latest"
TTFT_SAMPLES = 10  # per target and run (their median): a short request each, so cheap
CPU_STREAMS = [1, 4, 8, 16]
GPU_STREAMS = [1, 8, 32, 64]
ONE_TOKEN_ROUNDS = 30
ONE_TOKEN_WARMUP = 3  # rounds that warm caches and connections, not counted
#: Groups of a target's server processes whose CPU time is read, each a function giving their pids.
Watched = dict[str, Callable[[], list[int]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def watched_burst(
    client: httpx.AsyncClient, target: Target, streams: int, n_predict: int, watched: Watched
) -> tuple[Burst, dict[str, int]]:
    """Simultaneous generations, and the CPU ticks each group of server processes spent on them."""
    pids = {group: find() for group, find in watched.items()}
    before = {group: cpu_ticks(members) for group, members in pids.items()}
    burst = await concurrent(client, target, streams, n_predict)
    return burst, {group: cpu_ticks(members) - before[group] for group, members in pids.items()}


def measure_interleaved(
    targets: list[Target], watched: dict[str, Watched], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Every figure for every target, one value per run, the targets taking turns (their order
    rotating each run): slow drifts of a shared machine then weigh on all of them alike. CPU per
    token: the server processes' CPU time over all aggregate phases of a run, per token."""
    samples: dict[str, dict[str, list[float]]] = {t.name: {} for t in targets}

    def add(target: Target, key: str, value: float) -> None:
        samples[target.name].setdefault(key, []).append(value)

    async def all_runs() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=600) as client:
            for target in targets:
                await stream_once(client, target, STORY, 8)  # warm: loaded, caches primed
            for run in range(args.runs):
                shift = run % len(targets)
                order = targets[shift:] + targets[:shift]
                for target in order:
                    # the same prompt just before: it is then in a slot's cache on both servers,
                    # so the time to first token compares the servers, not their cache policies
                    await stream_once(client, target, STORY, 1)
                    ttfts = [
                        (await stream_once(client, target, STORY, 2)).ttft * 1000
                        for _ in range(TTFT_SAMPLES)
                    ]
                    add(target, "ttft_ms", statistics.median(ttfts))
                    single = await stream_once(client, target, STORY, args.n_predict)
                    add(target, "decode_tps", single.decode_rate)
                for target in order:
                    add(target, "prompt_tps", await prompt_rate(client, target))
                tallies = {target.name: CpuTally() for target in targets}
                for streams in args.concurrency:
                    for target in order:
                        burst, ticks = await watched_burst(
                            client, target, streams, args.n_predict, watched[target.name]
                        )
                        add(target, f"aggregate_{streams}_tps", burst.rate)
                        tallies[target.name].add(burst.tokens, ticks)
                for target in order:
                    for key, value in tallies[target.name].us_per_token().items():
                        add(target, key, value)

    asyncio.run(all_runs())
    return samples


def summarize(
    runs: dict[str, list[float]],
    peer_runs: dict[str, list[float]] | None,
    alone_runs: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Medians over the runs; against the peer (and the engine's server alone), the median of the
    per-run ratios (and of the per-run differences for the time to first token). Both were
    measured back to back in each run, so pairing them cancels the drift between runs that a
    ratio of medians keeps."""
    out: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    for name, ref in (("peer", peer_runs), ("alone", alone_runs)):
        if ref:
            out[f"vs_{name}"] = paired_ratios(runs, ref)
            out[f"ttft_overhead_vs_{name}_ms"] = statistics.median(
                [
                    ours - theirs
                    for ours, theirs in zip(runs["ttft_ms"], ref["ttft_ms"], strict=True)
                ]
            )
    if peer_runs:
        out["ttft_overhead_ms"] = out["ttft_overhead_vs_peer_ms"]
    return out


def paired_ratios(runs: dict[str, list[float]], ref: dict[str, list[float]]) -> dict[str, float]:
    """Per figure both have, the median of the run-by-run ratios."""
    return {
        key: statistics.median(
            [ours / theirs for ours, theirs in zip(values, ref[key], strict=True)]
        )
        for key, values in runs.items()
        if key in ref and all(ref[key])
    }


ONE_TOKEN = {"prompt": "Hello", "n_predict": 1, "temperature": 0}  # llama.cpp's request names
NEXUS_ONE_TOKEN = {"model": MODEL, "prompt": "Hello", "raw": True, "stream": False,
                   "options": {"num_predict": 1, "temperature": 0}}  # fmt: skip


def one_token_latencies(nexus_url: str, others: dict[str, str]) -> dict[str, float]:
    """Milliseconds for one one-token request to Nexus (``/api/generate``) and to each llama.cpp
    server in ``others`` (name: URL; ``/completion``), taking turns; the engine without HTTP is
    measured apart (``bench.engine_latency``)."""

    async def run() -> dict[str, float]:
        urls = {"nexus": (f"{nexus_url}/api/generate", NEXUS_ONE_TOKEN)}
        urls.update({name: (f"{url}/completion", ONE_TOKEN) for name, url in others.items()})
        times: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        async with httpx.AsyncClient(trust_env=False, timeout=600) as client:
            for round_ in range(ONE_TOKEN_WARMUP + ONE_TOKEN_ROUNDS):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed = await request_latency(client, *urls[name])
                    if round_ >= ONE_TOKEN_WARMUP:
                        times[name].append(elapsed * 1000)
        return {name: statistics.median(values) for name, values in times.items()}

    return asyncio.run(run())


def start_nexus(
    args: argparse.Namespace, models: Path
) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS=str(models),
        OLLAMA_NUM_PARALLEL=str(max(args.concurrency)),
        OLLAMA_CONTEXT_LENGTH=str(args.ctx),
        OLLAMA_KEEP_ALIVE="-1",
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus.cli.main", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        asyncio.run(wait_ready(url))
        out["startup_s"] = time.perf_counter() - started
        out["idle_rss_mb"] = rss_bytes(proc.pid) / 1e6

        async def cold() -> float:
            async with httpx.AsyncClient(trust_env=False, timeout=600) as client:
                return await request_latency(client, f"{url}/api/generate", NEXUS_ONE_TOKEN)

        out["cold_load_s"] = asyncio.run(cold())
        out["loaded_rss_mb"] = (
            rss_bytes(proc.pid) + sum(rss_bytes(p) for p in child_pids(proc.pid))
        ) / 1e6
    except BaseException:
        stop(proc)
        raise
    return proc, url, out


def start_peer(
    args: argparse.Namespace, gguf: Path, gpu: bool
) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    binary = args.peer
    port = free_port()
    parallel = max(args.concurrency)
    # every layer on the GPU, as Nexus's runner fits all it can (n_gpu_layers -1)
    offload = ["-ngl", "999"] if gpu else []
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "-np", str(parallel), "-c", str(args.ctx * parallel), "-t", str(args.threads),
         "-tb", str(args.threads), "--jinja", "--no-kv-unified", *offload],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        out["cold_load_s"] = asyncio.run(wait_ready(f"{url}/health", timeout=600))
        out["startup_s"] = time.perf_counter() - started
        out["loaded_rss_mb"] = rss_bytes(proc.pid) / 1e6
    except BaseException:
        stop(proc)
        raise
    return proc, url, out


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        proc.wait(30)


def comma_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(item.strip()) for item in text.split(",") if item.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: SmolLM2)")
    model.add_argument(
        "--synthetic",
        choices=sorted(SHAPES),
        help="random weights in the shape of SmolLM2-135M, Llama-3.2-1B or Llama-3.1-8B, "
        "with SmolLM2's tokenizer",
    )
    parser.add_argument(
        "--weights",
        type=comma_list(str),
        default=None,
        help=f"with --synthetic: weight types, measured in turn (default: {','.join(WEIGHTS)})",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ctx", type=int, default=1024, help="context per slot")
    parser.add_argument("--n-predict", type=int, default=128)
    parser.add_argument(
        "--concurrency",
        type=comma_list(int),
        default=None,
        help="stream counts (default: 1,8,32,64 with a GPU, else 1,4,8,16)",
    )
    parser.add_argument("--skip-peer", action="store_true", help="measure Nexus alone")
    parser.add_argument(
        "--skip-engine-alone",
        action="store_true",
        help="leave out the installed engine's own server without Nexus's front",
    )
    parser.add_argument(
        "--peer",
        type=Path,
        default=None,
        help="llama-server binary (default: built from the installed engine's own sources)",
    )
    parser.add_argument("--skip-pull", action="store_true", help="skip the pull measurement")
    parser.add_argument(
        "--only",
        choices=["llama", "gateway"],
        default=None,
        help="one section: Nexus against llama-server, or the gateway's overhead",
    )
    parser.add_argument(
        "--gateway-requests",
        type=int,
        default=3000,
        help="non-streamed requests per gateway case (a sixth of it streamed)",
    )
    parser.add_argument("--skip-litellm", action="store_true",
                        help="gateway section without LiteLLM's proxy")  # fmt: skip
    args = parser.parse_args()
    if args.weights is not None and not args.synthetic:
        parser.error("--weights goes with --synthetic")
    if args.weights and not set(args.weights) <= set(WEIGHTS):
        parser.error(f"--weights: choose from {','.join(WEIGHTS)}")
    if args.only != "gateway":
        engine_bench(args)
    if args.only != "llama":
        gateway_bench(args)


def model_files(args: argparse.Namespace) -> list[Path]:
    """The GGUFs to measure in turn, synthetic ones written first if not cached."""
    if not args.synthetic:
        return [(args.gguf or default_gguf_path()).resolve()]
    return [synthesize(args.synthetic, weights) for weights in args.weights or WEIGHTS]


def engine_bench(args: argparse.Namespace) -> None:
    """Nexus against llama-server on the same models, side by side."""
    gpus = engine_gpus()
    if not args.skip_peer and args.peer is None:
        try:
            args.peer = llama_server()
        except NoPeer as exc:
            print(f"measuring Nexus alone: {exc}", file=sys.stderr)
            args.skip_peer = True
    if args.concurrency is None:
        args.concurrency = GPU_STREAMS if gpus else CPU_STREAMS
    machine = f"{os.cpu_count()} CPUs" + (f", {', '.join(gpus)}" if gpus else "")
    results: dict[str, Any] = {
        "threads": args.threads,
        "ctx_per_slot": args.ctx,
        "n_predict": args.n_predict,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "machine": machine,
        "engine_build": describe_engine(),
        "variants": [],
    }
    for gguf in model_files(args):
        print(f"model {gguf.name}:", file=sys.stderr)
        results["variants"].append(bench_variant(gguf, args, bool(gpus)))
    if not args.skip_pull:
        from bench.pull import measure_pull

        print("measuring pull ...", file=sys.stderr)
        results["pull"] = measure_pull()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render_table(results)
    (RESULTS / "bench.md").write_text(table)
    print(table)
    write_chart(results)


def write_chart(results: dict[str, Any]) -> None:
    try:
        render_chart(results, RESULTS / "throughput.png")
    except ImportError as exc:  # matplotlib comes with the bench extra, which make bench installs
        print(f"no chart: {exc}", file=sys.stderr)


def import_model(gguf: Path, models: Path, threads: int) -> None:
    store = Store(models)
    digest, _ = store.blobs.import_file(gguf)
    # the bench's thread count for Nexus too (llama-server gets it as -t/-tb)
    spec = CreateSpec(model=MODEL, files={gguf.name: digest}, parameters={"num_thread": threads})
    create_model(store, spec, lambda status: None)


def bench_variant(gguf: Path, args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    """Every figure for one model: the servers up and taking turns, then the engine in-process."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        import_model(gguf, Path(tmp), args.threads)
        variant, runs, latency = measure_servers(gguf, Path(tmp), args, gpu)
    # after the HTTP rounds, with the servers stopped: the engine without HTTP, in a child process
    print("one-token requests to the engine in-process ...", file=sys.stderr)
    engine = engine_latency(gguf, args.ctx, args.threads)
    return summarize_variant(variant, runs, latency, engine)


def measure_servers(
    gguf: Path, models: Path, args: argparse.Namespace, gpu: bool
) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]], dict[str, float]]:
    """Start-up figures, the per-run samples of every target, the one-token latencies."""
    variant: dict[str, Any] = {"model": gguf.name}
    procs: dict[str, subprocess.Popen[bytes]] = {}  # "nexus", "alone", "peer"
    others: dict[str, str] = {}  # llama.cpp servers beside Nexus: name, URL
    try:
        print("starting Nexus ...", file=sys.stderr)
        procs["nexus"], nexus_url, variant["nexus"] = start_nexus(args, models)
        front = procs["nexus"].pid
        nexus_watch: Watched = {"front": lambda: [front], "runner": lambda: child_pids(front)}
        targets = [
            Target("chat", nexus_url, "ollama", MODEL),
            Target("openai", nexus_url, "openai", MODEL),
        ]
        watched = {"chat": nexus_watch, "openai": nexus_watch}
        if not args.skip_engine_alone:
            print("starting the engine alone ...", file=sys.stderr)
            procs["alone"], others["alone"], variant["alone"] = start_engine_alone(
                gguf, args.ctx, max(args.concurrency), args.threads
            )
        if not args.skip_peer:
            print("starting llama-server ...", file=sys.stderr)
            procs["peer"], others["peer"], variant["peer"] = start_peer(args, gguf, gpu)
        for name, url in others.items():
            targets.append(Target(name, url, "openai", "bench"))
            watched[name] = {"server": lambda pid=procs[name].pid: [pid]}
        print(f"measuring {len(targets)} targets, taking turns ...", file=sys.stderr)
        runs = measure_interleaved(targets, watched, args)
        for name, proc in procs.items():
            variant[name]["gpu_memory_mib"] = gpu_memory_mib(process_tree(proc.pid))
        print("one-token requests, taking turns ...", file=sys.stderr)
        latency = one_token_latencies(nexus_url, others)
    finally:
        for proc in procs.values():
            stop(proc)
    return variant, runs, latency


def summarize_variant(
    variant: dict[str, Any],
    runs: dict[str, dict[str, list[float]]],
    latency: dict[str, float],
    engine: dict[str, Any] | None,
) -> dict[str, Any]:
    """Medians and paired ratios; ``engine`` None where its child process gave no result."""
    peer_runs, alone_runs = runs.get("peer"), runs.get("alone")
    nexus = variant["nexus"]
    nexus["chat"] = summarize(runs["chat"], peer_runs, alone_runs)
    nexus["openai"] = summarize(runs["openai"], peer_runs, alone_runs)
    nexus["request_latency_ms"] = latency["nexus"]
    if alone_runs:
        variant["alone"]["openai"] = summarize(alone_runs, peer_runs)
        variant["alone"]["request_latency_ms"] = latency["alone"]
    if peer_runs:
        variant["peer"]["openai"] = summarize(peer_runs, None)
        variant["peer"]["request_latency_ms"] = latency["peer"]
    variant["engine"] = engine
    return variant


def gateway_bench(args: argparse.Namespace) -> None:
    """The gateway's overhead: direct, Nexus gateway and LiteLLM over one instant stub backend."""
    from bench.gateway import run_gateway_bench
    from bench.gateway_report import render_gateway_table

    results = run_gateway_bench(args.gateway_requests, skip_litellm=args.skip_litellm)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render_gateway_table(results)
    (RESULTS / "gateway.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
