"""``make soak``: thousands of mixed requests against one ``nexus serve``, resources watched.

The mix: chat streamed and not, generate, embed with many inputs, tags, show, clients leaving
mid-stream and before the first byte, uploads that stall. A probe (``/api/tags``) runs beside
them all along. Reported: the server's and the runner's RSS (start, end, slope per 1,000
requests), open descriptors and threads before and after, 5xx count, and the probe's p99.
Written as JSON under ``bench/results/soak.json``.

    python -m bench.soak [--requests 3000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nexus.store.default_model import ensure_default_model

MODEL = "smollm2:135m"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Sample:
    at_request: int
    server_rss: int
    runner_rss: int


@dataclass
class Tally:
    done: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_stat(pid: int) -> dict[str, int]:
    """RSS (bytes), open descriptors and threads of a process."""
    out = {"rss": 0, "fds": 0, "threads": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def slope_per_1000(samples: list[tuple[int, int]]) -> float:
    """Least-squares slope of bytes against requests, per 1,000 requests."""
    if len(samples) < 3:
        return 0.0
    xs = [float(x) for x, _ in samples]
    ys = [float(y) for _, y in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return (
        0.0
        if den == 0
        else 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den
    )


class Soak:
    def __init__(self, url: str, tally: Tally) -> None:
        self.url = url
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.tally = tally
        self.client = httpx.AsyncClient(base_url=url, timeout=300, trust_env=False)

    def count(self, kind: str, status: int) -> None:
        self.tally.by_kind[kind] = self.tally.by_kind.get(kind, 0) + 1
        self.tally.statuses[status] = self.tally.statuses.get(status, 0) + 1
        if status >= 500:
            self.tally.errors.append(f"{kind}: {status}")

    async def one(self, kind: str) -> None:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}]}
        short = {"num_predict": 8}
        if kind == "tags":
            status = (await self.client.get("/api/tags")).status_code
        elif kind == "show":
            status = (await self.client.post("/api/show", json={"model": MODEL})).status_code
        elif kind == "generate":
            body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": short}
            status = (await self.client.post("/api/generate", json=body)).status_code
        elif kind == "chat":
            body = {**chat, "stream": False, "options": short}
            status = (await self.client.post("/api/chat", json=body)).status_code
        elif kind == "chat_stream":
            async with self.client.stream(
                "POST", "/api/chat", json={**chat, "options": short}
            ) as resp:
                async for _ in resp.aiter_lines():
                    pass
                status = resp.status_code
        elif kind == "v1_stream":
            body = {**chat, "stream": True, "max_tokens": 8}
            async with self.client.stream("POST", "/v1/chat/completions", json=body) as resp:
                async for _ in resp.aiter_lines():
                    pass
                status = resp.status_code
        elif kind == "embed":
            body = {"model": MODEL, "input": [f"item {i}" for i in range(40)]}
            status = (await self.client.post("/api/embed", json=body)).status_code
        elif kind == "leave_mid_stream":
            async with self.client.stream(
                "POST", "/api/chat", json={**chat, "options": {"num_predict": 64}}
            ) as resp:
                status = resp.status_code
                async for _ in resp.aiter_lines():
                    break  # first line, then gone
        elif kind == "leave_before_first_byte":
            status = await self.leave_early()
        elif kind == "stalled_upload":
            status = await self.stalled_upload()
        else:
            raise ValueError(kind)
        self.count(kind, status)

    async def leave_early(self) -> int:
        body = json.dumps({"model": MODEL, "prompt": "Tell a story."}).encode()
        _, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()
        return 499

    async def stalled_upload(self) -> int:
        digest = "sha256:" + os.urandom(32).hex()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 100000000\r\n\r\nab".encode()
        )
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.read(200), 60)  # the server's 408, or a close
        except TimeoutError:
            head = b""
        writer.close()
        parts = head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    async def probe(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60, trust_env=False) as c:
            while not stop.is_set():
                started = time.perf_counter()
                resp = await c.get("/api/tags")
                self.tally.probe_ms.append((time.perf_counter() - started) * 1000)
                if resp.status_code >= 500:
                    self.tally.errors.append(f"probe: {resp.status_code}")
                await asyncio.sleep(0.25)


MIX = {
    "tags": 30,
    "show": 10,
    "generate": 14,
    "chat": 8,
    "chat_stream": 12,
    "v1_stream": 6,
    "embed": 6,
    "leave_mid_stream": 6,
    "leave_before_first_byte": 6,
    "stalled_upload": 2,
}


async def run(url: str, server_pid: int, requests: int, concurrency: int) -> Tally:
    tally = Tally()
    soak = Soak(url, tally)
    kinds = random.Random(1).choices(list(MIX), weights=list(MIX.values()), k=requests)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for kind in kinds:
        queue.put_nowait(kind)

    async def worker() -> None:
        while not queue.empty():
            kind = queue.get_nowait()
            try:
                await soak.one(kind)
            except httpx.HTTPError as exc:
                tally.errors.append(f"{kind}: {type(exc).__name__} {exc}")
            tally.done += 1

    async def sampler(stop: asyncio.Event) -> None:
        while not stop.is_set():
            runners = children(server_pid)
            runner_rss = sum(proc_stat(pid)["rss"] for pid in runners)
            tally.samples.append(Sample(tally.done, proc_stat(server_pid)["rss"], runner_rss))
            await asyncio.sleep(2)

    stop = asyncio.Event()
    background = [asyncio.ensure_future(soak.probe(stop)), asyncio.ensure_future(sampler(stop))]
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stop.set()
    await asyncio.gather(*background)
    await soak.client.aclose()
    return tally


def snapshot(pid: int) -> dict[str, Any]:
    runners = children(pid)
    return {"server": proc_stat(pid), "runners": [proc_stat(r) for r in runners]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--models", type=Path, help="store to use (default: a fresh one)")
    args = parser.parse_args()
    models = args.models or Path(tempfile.mkdtemp(prefix="nexus-soak-")) / "models"
    ensure_default_model(models, MODEL)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="nexus-soak-log-")) / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS=str(models),
        OLLAMA_CONTEXT_LENGTH="1024",
        OLLAMA_NUM_PARALLEL="4",
        NEXUS_READ_TIMEOUT="5s",
        NO_PROXY="*",
    )
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus.cli.main", "serve"], env=env, stdout=handle, stderr=handle
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # warm up: the model loaded, every kind once, so "before" is a running server
        asyncio.run(run(url, proc.pid, len(MIX) * 2, 2))
        before = snapshot(proc.pid)
        started = time.monotonic()
        tally = asyncio.run(run(url, proc.pid, args.requests, args.concurrency))
        elapsed = time.monotonic() - started
        # settle: stalled uploads time out, streams of clients that left finish
        time.sleep(8)
        after = snapshot(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    probe = sorted(tally.probe_ms)
    p99 = probe[int(len(probe) * 0.99) - 1] if probe else 0.0
    runner_pts = [(s.at_request, s.runner_rss) for s in tally.samples if s.runner_rss]
    result = {
        "requests": tally.done,
        "seconds": round(elapsed, 1),
        "by_kind": tally.by_kind,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "server_errors_5xx": sum(v for k, v in tally.statuses.items() if k >= 500),
        "errors": tally.errors[:20],
        "probe_requests": len(probe),
        "probe_p50_ms": round(statistics.median(probe), 1) if probe else 0.0,
        "probe_p99_ms": round(p99, 1),
        "server_rss_mb": [
            round(before["server"]["rss"] / 2**20, 1),
            round(after["server"]["rss"] / 2**20, 1),
        ],
        "server_rss_slope_kb_per_1000": round(
            slope_per_1000([(s.at_request, s.server_rss) for s in tally.samples]) / 1024, 1
        ),
        "runner_rss_mb": [
            round(sum(r["rss"] for r in before["runners"]) / 2**20, 1),
            round(sum(r["rss"] for r in after["runners"]) / 2**20, 1),
        ],
        "runner_rss_slope_kb_per_1000": round(slope_per_1000(runner_pts) / 1024, 1),
        "server_fds": [before["server"]["fds"], after["server"]["fds"]],
        "server_threads": [before["server"]["threads"], after["server"]["threads"]],
        "runner_fds": [
            sum(r["fds"] for r in before["runners"]),
            sum(r["fds"] for r in after["runners"]),
        ],
        "runner_threads": [
            sum(r["threads"] for r in before["runners"]),
            sum(r["threads"] for r in after["runners"]),
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if result["server_errors_5xx"] or tally.errors:
        print("errors:", *tally.errors[:20], sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
