"""The installed engine's own server alone: Nexus's runner process started bare, with the spec
Nexus gives it, spoken to over loopback TCP like llama-server, no Nexus front in the path.

It runs exactly the compiled engine code Nexus runs, with Nexus's settings. So Nexus against it
is what Nexus's own layers cost, and it against llama-server is what the engine's build costs
(the PyPI wheel's compiler and flags against the same sources built here)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.measure import rss_bytes
from nexus.runner.spec import RunnerSpec


class EngineAloneFailed(RuntimeError):
    """The bare runner ended before it said where it listens."""


def runner_spec(gguf: Path, ctx: int, parallel: int, threads: int) -> RunnerSpec:
    """What Nexus's scheduler would load for the bench's model (``num_thread`` as the bench
    sets it in the model's parameters)."""
    return RunnerSpec(model_path=str(gguf), num_ctx=ctx, num_parallel=parallel, num_thread=threads)


def start_engine_alone(
    gguf: Path, ctx: int, parallel: int, threads: int
) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    """The runner on a loopback port; its URL and cold load time. It lives until its stdin is
    closed or it is terminated (``stop``)."""
    spec = runner_spec(gguf, ctx, parallel, threads)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus.runner", json.dumps(spec.to_json())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the hello, once the model is loaded; b"" if it died
    if not line:
        proc.wait()
        raise EngineAloneFailed(f"the bare runner exited with status {proc.returncode}")
    address = str(json.loads(line)["address"])
    out = {
        "cold_load_s": time.perf_counter() - started,
        "loaded_rss_mb": rss_bytes(proc.pid) / 1e6,
    }
    return proc, address.rstrip("/"), out
