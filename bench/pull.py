"""Pull throughput between two nodes on loopback, against a plain file copy of the same blob.

Node A serves the default model from its store; node B, with an empty store, pulls
``127.0.0.1:<A>/library/smollm2:135m`` over the registry protocol (``insecure``). The time
is that of B's whole ``/api/pull`` (manifest, download, verification, atomic commit).

    python -m bench.pull [--runs N] [--part-size BYTES]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from nexus.store.default_model import DEFAULT_MODEL, ensure_default_model
from nexus.store.manifests import MODEL_MEDIA_TYPE
from nexus.store.names import ModelName
from nexus.store.store import Store

MB = 1000 * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _node(models: Path, log: Path, **env: str) -> Iterator[str]:
    """A ``nexus serve`` on a free loopback port, for as long as the block runs."""
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "NEXUS_"))}
    full_env.update(
        {"OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models), "NO_PROXY": "*", **env}
    )
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus.cli.main", "serve"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _model_blob(models: Path, name: str) -> Path:
    store = Store(models)
    resolved = store.manifests.resolve(ModelName.parse(name))
    if resolved is None:
        raise RuntimeError(f"{name} is not in {models}")
    manifest = store.manifests.read(resolved).manifest
    layer = next(ly for ly in manifest.layers if ly.mediaType == MODEL_MEDIA_TYPE)
    return store.blobs.path(layer.digest)


def _time_copy(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    shutil.copyfile(src, dst)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def _time_pull(http: httpx.Client, node_b: str, name: str) -> float:
    start = time.perf_counter()
    response = http.post(
        f"{node_b}/api/pull", json={"model": name, "insecure": True, "stream": False}
    )
    elapsed = time.perf_counter() - start
    if response.json() != {"status": "success"}:
        raise RuntimeError(f"pull failed: {response.status_code} {response.text}")
    return elapsed


def measure_pull(
    runs: int = 3, part_size: int | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """Pull the default model from node A into node B's empty store ``runs`` times.

    Between runs B's copy is deleted, so each run transfers everything. Returns sizes, the
    median seconds and MB/s (decimal MB) of the pull and of ``shutil.copyfile`` of the blob.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        models_a, models_b = root / "a", root / "b"
        ensure_default_model(models_a, DEFAULT_MODEL)
        blob = _model_blob(models_a, DEFAULT_MODEL)
        size = sum(p.stat().st_size for p in (models_a / "blobs").iterdir())  # what a pull moves
        blob_size = blob.stat().st_size  # what the copy moves
        env_b = {"NEXUS_PULL_PART_SIZE": str(part_size)} if part_size else {}
        pulls: list[float] = []
        with (
            _node(models_a, root / "a.log") as node_a,
            _node(models_b, root / "b.log", **env_b) as node_b,
            httpx.Client(timeout=600, trust_env=False) as http,
        ):
            name = f"{node_a.removeprefix('http://')}/library/{DEFAULT_MODEL}"
            for _ in range(runs):
                pulls.append(_time_pull(http, node_b, name))
                http.request("DELETE", f"{node_b}/api/delete", json={"model": name})
        copies = [_time_copy(blob, root / "copy") for _ in range(runs)]
    pull_s, copy_s = statistics.median(pulls), statistics.median(copies)
    return {
        "model": DEFAULT_MODEL,
        "bytes": size,
        "blob_bytes": blob_size,
        "runs": runs,
        "part_size": part_size,
        "pull_s": pull_s,
        "pull_mb_s": size / MB / pull_s,
        "copy_s": copy_s,
        "copy_mb_s": blob_size / MB / copy_s,
        "pull_vs_copy": (size / MB / pull_s) / (blob_size / MB / copy_s),
    }


def markdown(result: dict[str, Any]) -> str:
    parts = result["part_size"] or "default (total/16 in [100 MB, 1000 MB])"
    return "\n".join(
        [
            f"Pull of `{result['model']}` ({result['bytes'] / MB:.1f} MB) node to node on "
            f"loopback, median of {result['runs']} runs, part size {parts}",
            "",
            "| method | seconds | MB/s |",
            "|---|---:|---:|",
            f"| `/api/pull` (registry protocol) | {result['pull_s']:.3f} "
            f"| {result['pull_mb_s']:.0f} |",
            f"| `shutil.copyfile` | {result['copy_s']:.3f} | {result['copy_mb_s']:.0f} |",
            "",
            f"Pull reaches {result['pull_vs_copy']:.0%} of the file-copy speed.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--part-size", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args()
    result = measure_pull(runs=args.runs, part_size=args.part_size)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
