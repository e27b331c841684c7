"""The engine without HTTP, in a process of its own: one-token request latency of an
``xllamacpp.Server`` called in-process, and which devices the engine sees.

The bench runs this module as a child (``python -m bench.engine_latency``) and never loads the
engine itself: on a CUDA build the bench died with SIGSEGV in this phase when it did, and whatever
an engine does on its way out, the bench must outlive it. The child prints one JSON line and
ends with ``os._exit(0)``, as Nexus's runner does; a child that fails costs the bench its figure,
not its tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ONE_TOKEN = {"prompt": "Hello", "n_predict": 1, "temperature": 0}  # llama.cpp's request names
WARMUP_ROUNDS = 3
ROOT = Path(__file__).resolve().parent.parent


# --- in the child -----------------------------------------------------------------------------


def gpu_names() -> list[str]:
    """The devices other than the CPU that the engine would offload to."""
    import xllamacpp as xlc

    cpu = xlc.ggml_backend_dev_type.GGML_BACKEND_DEVICE_TYPE_CPU
    return [str(d["name"]) for d in xlc.get_device_info() if d["type"] != cpu]


def start_engine(gguf: str, ctx: int, threads: int) -> Any:
    import xllamacpp as xlc

    from nexus.runner.__main__ import build_params
    from nexus.runner.spec import RunnerSpec

    spec = RunnerSpec(model_path=gguf, num_ctx=ctx, num_parallel=1, num_thread=threads)
    return xlc.Server(build_params(spec))


def timed_requests(engine: Any, rounds: int) -> list[float]:
    """Milliseconds per one-token request, after a few unmeasured ones."""
    times = []
    for round_ in range(WARMUP_ROUNDS + rounds):
        start = time.perf_counter()
        engine.handle_completions(dict(ONE_TOKEN))
        if round_ >= WARMUP_ROUNDS:
            times.append((time.perf_counter() - start) * 1000)
    return times


def measure(args: argparse.Namespace) -> dict[str, Any]:
    engine = start_engine(args.gguf, args.ctx, args.threads)
    check = engine.handle_completions(
        {"prompt": "Hello", "n_predict": args.check_tokens, "temperature": 0}
    )
    times = timed_requests(engine, args.rounds)
    return {
        "request_latency_ms": statistics.median(times),
        "generated_tokens": int(check["usage"]["completion_tokens"]),
    }


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_latency", description=__doc__)
    parser.add_argument("--devices", action="store_true", help="list the engine's GPUs only")
    parser.add_argument("--gguf")
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--check-tokens", type=int, default=4, help="tokens of a first request")
    args = parser.parse_args(argv)
    result = {"gpus": gpu_names()} if args.devices else measure(args)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --- in the bench -----------------------------------------------------------------------------


def failure(returncode: int) -> str:
    """How a child ended, naming the signal of a shell-style status such as 139 too."""
    number = -returncode if returncode < 0 else returncode - 128
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"exit status {returncode}"
    return f"killed by {name}" if returncode < 0 else f"exit status {returncode} ({name})"


def last_json_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def run_child(argv: list[str], timeout: float, what: str) -> dict[str, Any] | None:
    """This module's JSON answer in a child process, or None with the reason on stderr."""
    command = [sys.executable, "-m", "bench.engine_latency", *argv]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"{what}: no result ({exc})", file=sys.stderr)
        return None
    result = last_json_line(done.stdout) if done.returncode == 0 else None
    if result is None:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        reason = failure(done.returncode) if done.returncode else "no JSON line on stdout"
        print(f"{what}: no result ({reason})\n{tail}", file=sys.stderr)
    return result


def engine_latency(
    gguf: Path, ctx: int, threads: int, rounds: int = 30, timeout: float = 900
) -> dict[str, Any] | None:
    """The in-process engine's one-token latency and a check generation's token count."""
    argv = ["--gguf", str(gguf), "--ctx", str(ctx), "--threads", str(threads)]
    return run_child([*argv, "--rounds", str(rounds)], timeout, "engine in-process")


def engine_gpus(timeout: float = 120) -> list[str]:
    """The GPUs the engine sees; none when the child cannot tell."""
    result = run_child(["--devices"], timeout, "engine devices")
    return [str(name) for name in result["gpus"]] if result else []


if __name__ == "__main__":
    child_main()
