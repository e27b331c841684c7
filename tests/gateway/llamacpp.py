"""An OpenAI-compatible llama.cpp server on a loopback port, for tests of ``openai``-kind
backends: llama.cpp's own ``llama-server`` when a binary is at hand (``LLAMA_SERVER``, or the one
the bench builds under ``bench/.cache``), else the same server code as the engine runs it
(``python -m nexus.runner``, which prints its address)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from nexus.runner.spec import RunnerSpec
from tests.support import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTEXT = 2048
START_TIMEOUT = 120.0


def llama_server_binary() -> Path | None:
    """``LLAMA_SERVER`` if set, else a ``llama-server`` the bench built; never builds one."""
    named = os.environ.get("LLAMA_SERVER")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"LLAMA_SERVER={named} is not a file")
        return path
    built = sorted((REPO_ROOT / "bench" / ".cache").glob("**/build/bin/llama-server"))
    return built[-1] if built else None


def start_llamacpp_openai(
    gguf: Path, log: Path, *, binary: Path | bool | None = True
) -> tuple[str, Callable[[], None]]:
    """Start a llama.cpp server for ``gguf`` (chat, completions and mean-pooled embeddings);
    return its base URL (``/v1/...`` below it) and a function that stops it.

    ``binary``: True picks ``llama_server_binary()`` when there is one, a path names one, and
    False or None always uses the engine's server (``python -m nexus.runner``)."""
    chosen = llama_server_binary() if binary is True else binary or None
    handle = log.open("wb")
    if chosen is not None:
        port = free_port()
        proc = subprocess.Popen(
            [str(chosen), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
             "-c", str(CONTEXT), "-np", "1", "--embeddings", "--pooling", "mean"],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
    else:
        spec = RunnerSpec(model_path=str(gguf), num_ctx=CONTEXT, num_parallel=1)
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus.runner", json.dumps(spec.to_json())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle,
        )  # fmt: skip
        url = _hello_address(proc, log)
    handle.close()

    def stop() -> None:
        if proc.poll() is None:
            if proc.stdin is not None:
                proc.stdin.close()  # the runner ends when its stdin closes
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    try:
        _wait_healthy(url, proc, log)
    except BaseException:
        stop()
        raise
    return url, stop


def _hello_address(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The address line ``python -m nexus.runner`` prints once the engine listens."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            return str(json.loads(line)["address"]).rstrip("/")
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"llama.cpp runner did not start: {_tail(log)}")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited ({proc.returncode}): {_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"llama.cpp server at {url} did not become healthy: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"
