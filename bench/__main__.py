"""``make bench``: Nexus against llama.cpp's ``llama-server`` on the same model, side by side;
then the gateway's overhead against LiteLLM's proxy (``bench.gateway``).

Same GGUF, threads, context per slot and greedy decoding for both; both servers stay up and every
measurement takes turns between them, several runs, medians.
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
from pathlib import Path
from typing import Any

import httpx

from bench.measure import (
    STORY,
    Target,
    concurrent,
    prompt_rate,
    request_latency,
    rss_bytes,
    stream_once,
    wait_ready,
)
from bench.report import render_chart, render_table
from nexus.runner.spec import default_threads
from nexus.store.create import CreateSpec, create_model
from nexus.store.default_model import default_gguf_path
from nexus.store.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "bench:latest"
TTFT_SAMPLES = 10  # per target and run (their median): a short request each, so cheap


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def measure_interleaved(
    targets: list[Target], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Every figure for every target, one value per run, the targets taking turns (their order
    rotating each run): slow drifts of a shared machine then weigh on all of them alike."""
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
                for streams in args.concurrency:
                    for target in order:
                        rate = await concurrent(client, target, streams, args.n_predict)
                        add(target, f"aggregate_{streams}_tps", rate)

    asyncio.run(all_runs())
    return samples


def summarize(
    runs: dict[str, list[float]], peer_runs: dict[str, list[float]] | None
) -> dict[str, Any]:
    """Medians over the runs; against the peer, the median of the per-run ratios (and of the
    per-run differences for the time to first token). Both were measured back to back in each
    run, so pairing them cancels the drift between runs that a ratio of medians keeps."""
    out: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    if peer_runs:
        out["vs_peer"] = {
            key: statistics.median(
                [ours / theirs for ours, theirs in zip(values, peer_runs[key], strict=True)]
            )
            for key, values in runs.items()
            if key in peer_runs and all(peer_runs[key])
        }
        out["ttft_overhead_ms"] = statistics.median(
            [
                ours - theirs
                for ours, theirs in zip(runs["ttft_ms"], peer_runs["ttft_ms"], strict=True)
            ]
        )
    return out


ONE_TOKEN = {"prompt": "Hello", "n_predict": 1, "temperature": 0}  # llama.cpp's request names
NEXUS_ONE_TOKEN = {"model": MODEL, "prompt": "Hello", "raw": True, "stream": False,
                   "options": {"num_predict": 1, "temperature": 0}}  # fmt: skip


def one_token_latencies(
    nexus_url: str, peer_url: str | None, args: argparse.Namespace, gguf: Path
) -> dict[str, float]:
    """Milliseconds for one one-token request: to Nexus (``/api/generate``), to llama-server
    (``/completion``) and to the same engine in this process without any HTTP, taking turns."""
    import xllamacpp as xlc

    from nexus.runner.__main__ import build_params
    from nexus.runner.spec import RunnerSpec

    spec = RunnerSpec(
        model_path=str(gguf), num_ctx=args.ctx, num_parallel=1, num_thread=args.threads
    )
    engine = xlc.Server(build_params(spec))

    async def run() -> dict[str, float]:
        times: dict[str, list[float]] = {"nexus": [], "engine": []}
        async with httpx.AsyncClient(trust_env=False, timeout=600) as client:

            async def in_process() -> float:
                start = time.perf_counter()
                engine.handle_completions(dict(ONE_TOKEN))
                return time.perf_counter() - start

            measures = {
                "nexus": lambda: request_latency(
                    client, f"{nexus_url}/api/generate", NEXUS_ONE_TOKEN
                ),
                "engine": in_process,
            }
            if peer_url:
                times["peer"] = []
                measures["peer"] = lambda: request_latency(
                    client, f"{peer_url}/completion", ONE_TOKEN
                )
            names = list(measures)
            for round_ in range(33):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed = await measures[name]()
                    if round_ >= 3:  # the first rounds warm caches and connections
                        times[name].append(elapsed * 1000)
        return {name: statistics.median(values) for name, values in times.items()}

    return asyncio.run(run())  # the engine stops when this frame goes


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
    args: argparse.Namespace, gguf: Path
) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    from bench.peer import llama_server

    binary = llama_server()
    port = free_port()
    parallel = max(args.concurrency)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "-np", str(parallel), "-c", str(args.ctx * parallel), "-t", str(args.threads),
         "-tb", str(args.threads), "--jinja", "--no-kv-unified"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        out["cold_load_s"] = asyncio.run(wait_ready(f"{url}/health"))
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


def engine_build() -> str:
    """Which xllamacpp runs: the portable PyPI wheel, or one built here (``make engine-native``)."""
    from importlib.metadata import distribution

    dist = distribution("xllamacpp")
    tags = dist.read_text("WHEEL") or ""
    kind = "PyPI wheel" if "manylinux" in tags else "built for this machine"
    return f"xllamacpp {dist.version}, {kind}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: SmolLM2)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ctx", type=int, default=1024, help="context per slot")
    parser.add_argument("--n-predict", type=int, default=128)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 4, 8, 16])  # fmt: skip
    parser.add_argument("--skip-peer", action="store_true", help="measure Nexus alone")
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
    if args.only != "gateway":
        engine_bench(args)
    if args.only != "llama":
        gateway_bench(args)


def engine_bench(args: argparse.Namespace) -> None:
    """Nexus against llama-server on the same model, side by side."""
    gguf = (args.gguf or default_gguf_path()).resolve()
    results: dict[str, Any] = {
        "model": gguf.name,
        "threads": args.threads,
        "ctx_per_slot": args.ctx,
        "n_predict": args.n_predict,
        "runs": args.runs,
        "machine": f"{os.cpu_count()} CPUs",
        "engine_build": engine_build(),
    }
    nexus_proc = peer_proc = None
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        models = Path(tmp)
        store = Store(models)
        digest, _ = store.blobs.import_file(gguf)
        # the bench's thread count for Nexus too (llama-server gets it as -t/-tb)
        spec = CreateSpec(
            model=MODEL, files={gguf.name: digest}, parameters={"num_thread": args.threads}
        )
        create_model(store, spec, lambda status: None)
        try:
            print("starting Nexus ...", file=sys.stderr)
            nexus_proc, nexus_url, results["nexus"] = start_nexus(args, models)
            targets = [
                Target("chat", nexus_url, "ollama", MODEL),
                Target("openai", nexus_url, "openai", MODEL),
            ]
            if not args.skip_peer:
                print("starting llama-server ...", file=sys.stderr)
                peer_proc, peer_url, results["peer"] = start_peer(args, gguf)
                targets.append(Target("peer", peer_url, "openai", "bench"))
            print(f"measuring {len(targets)} targets, taking turns ...", file=sys.stderr)
            runs = measure_interleaved(targets, args)
            print(
                "one-token requests, and the engine in-process, taking turns ...", file=sys.stderr
            )
            latency = one_token_latencies(
                nexus_url, None if args.skip_peer else peer_url, args, gguf
            )
        finally:
            stop(nexus_proc)
            stop(peer_proc)
    peer_runs = runs.get("peer")
    results["nexus"]["chat"] = summarize(runs["chat"], peer_runs)
    results["nexus"]["openai"] = summarize(runs["openai"], peer_runs)
    if peer_runs:
        results["peer"]["openai"] = summarize(peer_runs, None)
        results["peer"]["request_latency_ms"] = latency["peer"]
    results["nexus"]["request_latency_ms"] = latency["nexus"]
    results["engine"] = {"request_latency_ms": latency["engine"]}
    if not args.skip_pull:
        from bench.pull import measure_pull

        print("measuring pull ...", file=sys.stderr)
        results["pull"] = measure_pull()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render_table(results, args.concurrency)
    (RESULTS / "bench.md").write_text(table)
    render_chart(results, args.concurrency, RESULTS / "throughput.png")
    print(table)


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
