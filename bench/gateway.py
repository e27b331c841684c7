"""The gateway section of ``make bench``: what a proxy adds over an instant OpenAI backend.

One stub backend (``bench.stub``, its own process) answers at once; three targets in front of it
take the same loads, each load on each target in turn: the stub directly (the client's ceiling),
the Nexus gateway and LiteLLM's proxy, one worker each. The loads: non-streamed requests at
concurrency 1 and 8, streamed ones at concurrency 8; per target and load: requests/s, latency
percentiles, time to the first streamed chunk, the proxy's CPU per request; and the proxy's
resident memory after start, after the warm-up and at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx

from bench import stub

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
LITELLM_VENV = CACHE / "litellm-venv"
LITELLM_REQUIREMENT = "litellm[proxy]>=1.70,<2"
LITELLM_MASTER_KEY = "sk-bench-master"
WARMUP = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROMPT = [{"role": "user", "content": "Say hello."}]


class Unavailable(Exception):
    """A target that could not be started; its column reads the reason instead of figures."""


@dataclass(frozen=True)
class Case:
    """One measured load: how many requests, how many at once, streamed or not."""

    key: str
    label: str
    requests: int
    concurrency: int
    stream: bool


def cases(requests: int) -> list[Case]:
    """The three loads for ``requests`` non-streamed requests (a sixth of them streamed)."""
    streamed = max(1, requests // 6)
    return [
        Case("c1", "non-stream, concurrency 1", requests, 1, False),
        Case("c8", "non-stream, concurrency 8", requests, 8, False),
        Case("stream_c8", "stream, concurrency 8", streamed, 8, True),
    ]


def request_body(stream: bool) -> bytes:
    body: dict[str, Any] = {"model": stub.MODEL, "messages": PROMPT, "max_tokens": 16}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


# --- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Load:
    """What the client saw of one load: seconds per request (and to the first chunk)."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    failed: int = 0
    first_error: str | None = None


def summarize(load: Load, proxy_cpu_s: float | None, stub_cpu_s: float) -> dict[str, Any]:
    """A load's figures in milliseconds: rate, percentiles, CPU per request."""
    done = len(load.latencies)
    total = done + load.failed
    out: dict[str, Any] = {
        "requests": total,
        "failed": load.failed,
        "seconds": load.seconds,
        "rps": done / load.seconds if load.seconds > 0 else 0.0,
    }
    if load.first_error:
        out["first_error"] = load.first_error
    ms = [s * 1000 for s in load.latencies]
    for pct in (50, 90, 99):
        out[f"p{pct}_ms"] = percentile(ms, pct) if ms else None
    if load.first_chunks:
        first = [s * 1000 for s in load.first_chunks]
        out["ttfc_p50_ms"] = percentile(first, 50)
        out["ttfc_p99_ms"] = percentile(first, 99)
    if proxy_cpu_s is not None and total:
        out["proxy_cpu_ms_per_req"] = proxy_cpu_s * 1000 / total
        out["proxy_cpu_pct"] = 100 * proxy_cpu_s / load.seconds if load.seconds > 0 else None
    if total:
        out["stub_cpu_ms_per_req"] = stub_cpu_s * 1000 / total
    return out


# --- processes --------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, i = [pid], 0
    while i < len(tree):
        tree.extend(parents.get(tree[i], []))
        i += 1
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree, all threads, reaped children included."""
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of a process tree, MiB."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    """Seconds until ``url`` answers 200; a process that exits first stops the wait."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise Unavailable(f"exited with {proc.returncode}: {_tail(log)}")
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise Unavailable(f"{url} not ready after {timeout:.0f}s: {_tail(log)}")


@dataclass
class Target:
    """A measured endpoint; ``pid`` is the proxy's process (None for the stub itself)."""

    name: str
    url: str
    headers: dict[str, str]
    pid: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@contextmanager
def stub_backend(tmp: Path) -> Iterator[tuple[str, int]]:
    """``bench.stub`` in its own process (off the client's and the proxy's interpreter); its URL
    and process id."""
    port = free_port()
    log = tmp / "stub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.stub", "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/health", proc, log, 30)
        yield url, proc.pid
    finally:
        stop(proc)


def _nexus_bin() -> Path:
    return Path(sys.executable).parent / "nexus"


@contextmanager
def nexus_gateway(tmp: Path, stub_url: str) -> Iterator[Target]:
    """``nexus gateway`` with one backend, the stub, and a key made for the bench."""
    nexus = _nexus_bin()
    try:
        probe = subprocess.run([str(nexus), "gateway", "--help"], capture_output=True, text=True)
    except OSError as exc:
        raise Unavailable(f"no `nexus` command: {exc}") from exc
    if probe.returncode != 0:
        raise Unavailable("`nexus gateway` is not available in this build")
    config = tmp / "gateway.yaml"
    config.write_text(
        f"backends:\n  - name: stub\n    kind: openai\n    url: {stub_url}\n", encoding="utf-8"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OLLAMA_"))}
    env.update(
        NEXUS_GATEWAY_HOST=f"127.0.0.1:{port}",
        NEXUS_GATEWAY_DB=f"sqlite:///{tmp}/gw.db",
        NEXUS_GATEWAY_CONFIG=str(config),
        DEFAULT_BACKEND="stub",
    )
    made = subprocess.run(
        [str(nexus), "gateway", "keys", "create", "bench"], env=env, capture_output=True, text=True
    )
    lines = made.stdout.strip().splitlines()
    if made.returncode != 0 or not lines:
        reason = (made.stderr.strip().splitlines() or ["no key printed"])[-1]
        raise Unavailable(f"`nexus gateway keys create` failed: {reason}")
    key = lines[-1].strip()
    log = tmp / "nexus-gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(nexus), "gateway"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        started = wait_ready(f"{url}/health/ready", proc, log, 60)
        yield Target(
            "nexus",
            url,
            {"Authorization": f"Bearer {key}"},
            proc.pid,
            {"startup_s": started, "version": _version(sys.executable, "nexus")},
        )
    finally:
        stop(proc)


def _version(python: str | Path, dist: str) -> str | None:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or None


def ensure_litellm() -> Path:
    """The ``litellm`` command from the bench's own environment, installed on first use."""
    litellm = LITELLM_VENV / "bin" / "litellm"
    if litellm.exists():
        return litellm
    print(f"installing {LITELLM_REQUIREMENT} into {LITELLM_VENV} ...", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "litellm-install.log"
    with open(log, "wb") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)],
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM_REQUIREMENT],
        ]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise Unavailable(f"installing LiteLLM failed (see {log}): {_tail(log, 2)}")
    if not litellm.exists():
        raise Unavailable(f"no {litellm} after the install")
    return litellm


@contextmanager
def litellm_proxy(tmp: Path, stub_url: str) -> Iterator[Target]:
    """LiteLLM's proxy, one worker, one model mapped onto the stub, no database."""
    litellm = ensure_litellm()
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {stub.MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{stub.MODEL}\n"
        f"      api_base: {stub_url}/v1\n"
        "      api_key: sk-stub\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "DATABASE_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    log = tmp / "litellm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
             "--num_workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        started = wait_ready(f"{url}/health/liveliness", proc, log, 180)
        yield Target(
            "litellm",
            url,
            {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
            proc.pid,
            {"startup_s": started, "version": _version(LITELLM_VENV / "bin" / "python", "litellm")},
        )
    finally:
        stop(proc)


# --- load -------------------------------------------------------------------------------------


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Runs ``coro`` on uvloop: the client's own cost per request stays low."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def raw_request(url: str, headers: dict[str, str], body: bytes) -> bytes:
    """A whole HTTP/1.1 POST, built once and written as it is for every request of a load."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection, one request at a time, parsed by httptools: a lean
    client, so that the client's own cost stays well under a sub-millisecond overhead."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.first = 0.0  # when the first bytes of the body came
        self.tail = b""  # the body's last bytes, to see a stream's ``data: [DONE]``
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(exc)

    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
        self.tail = (self.tail + body)[-32:]

    def on_message_complete(self) -> None:
        self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(exc or ConnectionResetError("closed by the server"))

    def _finish(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    async def send(self, request: bytes) -> int:
        """Writes ``request`` and waits for the whole response; its status code."""
        assert self.transport is not None
        self.first, self.tail = 0.0, b""
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self.done
        return int(self.parser.get_status_code())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


async def load(
    url: str,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    stream: bool,
    timeout: float = 120.0,
) -> Load:
    """``requests`` POSTs of the chat body to ``url`` by ``concurrency`` workers, each over its
    own kept-alive connection (a new one only after the server closed it or a failure)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = raw_request(url, headers, request_body(stream))
    loop = asyncio.get_running_loop()
    remaining = requests
    result = Load(0.0)

    async def worker() -> None:
        nonlocal remaining
        conn: Connection | None = None
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            try:
                if conn is None or conn.closed:
                    _, conn = await loop.create_connection(Connection, host, port)
                async with asyncio.timeout(timeout):
                    status = await conn.send(request)
            except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                result.failed += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
                continue
            end = time.perf_counter()
            if status != 200 or (stream and b"data: [DONE]" not in conn.tail):
                result.failed += 1
                result.first_error = result.first_error or f"HTTP {status}"
            else:
                result.latencies.append(end - start)
                if stream:
                    result.first_chunks.append(conn.first - start)
            if not conn.parser.should_keep_alive():
                conn.close()
        if conn is not None:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def check(target: Target) -> None:
    """One plain and one streamed request must carry the stub's answer through unchanged."""
    try:
        _check(target)
    except (httpx.HTTPError, ValueError, LookupError, TypeError) as exc:
        raise Unavailable(f"the answer could not be read: {type(exc).__name__}: {exc}") from exc


def _check(target: Target) -> None:
    url = f"{target.url}/v1/chat/completions"
    headers = {**target.headers, "Content-Type": "application/json"}
    with httpx.Client(trust_env=False, timeout=60) as client:
        resp = client.post(url, content=request_body(False), headers=headers)
        if resp.status_code != 200:
            raise Unavailable(f"HTTP {resp.status_code} on a chat completion: {resp.text[:200]}")
        content = resp.json()["choices"][0]["message"]["content"]
        if content != stub.CONTENT:
            raise Unavailable(f"the answer came back changed: {content!r}")
        resp = client.post(url, content=request_body(True), headers=headers)
        if resp.status_code != 200:
            raise Unavailable(
                f"HTTP {resp.status_code} on a streamed completion: {resp.text[:200]}"
            )
    pieces = []
    for line in resp.text.splitlines():
        data = line.removeprefix("data: ").strip()
        if line.startswith("data: ") and data != "[DONE]":
            for choice in json.loads(data).get("choices") or []:
                pieces.append((choice.get("delta") or {}).get("content") or "")
    expected = "".join(f"w{i} " for i in range(stub.STREAM_CHUNKS))
    if "".join(pieces) != expected or "data: [DONE]" not in resp.text:
        raise Unavailable(f"the stream came back changed: {''.join(pieces)[:80]!r}")


def _chat_url(target: Target) -> str:
    return f"{target.url}/v1/chat/completions"


def prepare(target: Target, warmup: int) -> dict[str, Any]:
    """Checks a target's answers and warms it up; its memory after start and after the warm-up."""
    out: dict[str, Any] = dict(target.info)
    pid = target.pid
    rss = {"start": rss_mib(pid)} if pid else None
    check(target)

    async def warm_up() -> None:
        for stream, count in ((False, warmup), (True, max(1, warmup // 10))):
            warm = await load(_chat_url(target), target.headers, count, 8, stream)
            if warm.failed:
                raise Unavailable(f"{warm.failed} warm-up requests failed: {warm.first_error}")

    _run(warm_up())
    if rss is not None and pid:
        rss["warm"] = rss_mib(pid)
    out["rss_mib"] = rss
    out["cases"] = {}
    return out


def measure_case(target: Target, case: Case, stub_pid: int) -> dict[str, Any]:
    """One load on one target, with the proxy's and the stub's CPU time over it."""
    pid = target.pid
    print(f"  {target.name}: {case.label}, {case.requests} requests", file=sys.stderr)
    cpu0, stub0 = cpu_seconds(pid) if pid else None, cpu_seconds(stub_pid)
    result = _run(
        load(_chat_url(target), target.headers, case.requests, case.concurrency, case.stream)
    )
    cpu1, stub1 = cpu_seconds(pid) if pid else None, cpu_seconds(stub_pid)
    proxy_s = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return summarize(result, proxy_s, stub1 - stub0)


def finish(target: Target, out: dict[str, Any]) -> None:
    rss = out.get("rss_mib")
    if rss is not None and target.pid:
        rss["end"] = rss_mib(target.pid)
        rss["delta"] = rss["end"] - rss["warm"]


def run_gateway_bench(requests: int = 3000, skip_litellm: bool = False) -> dict[str, Any]:
    """Direct, Nexus gateway and LiteLLM all up, each load run on each of them in turn (so the
    machine's drift weighs on them alike); a target that fails to start or to answer gets
    ``{"error": reason}`` and the others go on."""
    warmup = min(WARMUP, requests)
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "python": platform.python_version(),
        "requests": requests,
        "stream_requests": cases(requests)[-1].requests,
        "warmup": warmup,
        "load_average": {"start": os.getloadavg()[0]},
        "targets": {},
    }
    starters: list[tuple[str, Callable[[Path, str], Any]]] = [("nexus", nexus_gateway)]
    if not skip_litellm:
        starters.append(("litellm", litellm_proxy))
    found: dict[str, Any] = results["targets"]
    with tempfile.TemporaryDirectory(prefix="nexus-gw-bench-") as name, ExitStack() as stack:
        tmp = Path(name)
        print("starting the stub backend ...", file=sys.stderr)
        stub_url, stub_pid = stack.enter_context(stub_backend(tmp))
        targets = [Target("direct", stub_url, {})]
        for key, starter in starters:
            print(f"starting {key} ...", file=sys.stderr)
            try:
                targets.append(stack.enter_context(starter(tmp, stub_url)))
            except Unavailable as exc:
                print(f"  {key} not measured: {exc}", file=sys.stderr)
                found[key] = {"error": str(exc)}
        live = []
        for target in targets:
            try:
                found[target.name] = prepare(target, warmup)
                live.append(target)
            except Unavailable as exc:
                print(f"  {target.name} not measured: {exc}", file=sys.stderr)
                found[target.name] = {**target.info, "error": str(exc)}
        for case in cases(requests):
            for target in live:
                found[target.name]["cases"][case.key] = measure_case(target, case, stub_pid)
        for target in live:
            finish(target, found[target.name])
    results["load_average"]["end"] = os.getloadavg()[0]
    return results
