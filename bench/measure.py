"""Client-side measurements over HTTP (time to first token, decode and prompt speed, load) and
the servers' side of them read from /proc and nvidia-smi (CPU time, resident and GPU memory)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

STORY = "Write a very long story about a dragon who learns to bake bread."
LONG_PROMPT = "Summarise the following notes in one sentence. " + " ".join(
    f"Note {i}: the quarterly figures for region {i % 7} were revised." for i in range(40)
)


@dataclass
class Stream:
    """One streamed generation as the client saw it."""

    ttft: float
    tokens: int
    first_to_last: float
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.first_to_last if self.first_to_last > 0 else 0.0


@dataclass(frozen=True)
class Target:
    """An endpoint to measure: Nexus's native chat, Nexus's /v1 chat, or llama-server's /v1."""

    name: str
    base_url: str
    api: str  # "ollama" or "openai"
    model: str


async def _lines(resp: httpx.Response) -> AsyncIterator[str]:
    async for line in resp.aiter_lines():
        if line:
            yield line


async def stream_once(
    client: httpx.AsyncClient, target: Target, prompt: str, n_predict: int
) -> Stream:
    """One streamed generation; sent again once if the server had closed the kept-alive
    connection under it (``llama-server`` closes them after a number of requests)."""
    try:
        return await _stream_once(client, target, prompt, n_predict)
    except httpx.RemoteProtocolError:
        return await _stream_once(client, target, prompt, n_predict)


async def _stream_once(
    client: httpx.AsyncClient, target: Target, prompt: str, n_predict: int
) -> Stream:
    messages = [{"role": "user", "content": prompt}]
    if target.api == "ollama":
        url = f"{target.base_url}/api/chat"
        body: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "stream": True,
            "options": {"temperature": 0, "seed": 1, "num_predict": n_predict},
        }
    else:
        url = f"{target.base_url}/v1/chat/completions"
        body = {
            "model": target.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            "seed": 1,
            "max_tokens": n_predict,
        }
    start = time.perf_counter()
    first = last = 0.0
    tokens = prompt_tokens = 0
    prompt_seconds = 0.0
    async with client.stream("POST", url, json=body) as resp:
        resp.raise_for_status()
        async for line in _lines(resp):
            if target.api == "ollama":
                chunk = json.loads(line)
                if chunk.get("message", {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                if chunk.get("done"):
                    tokens = int(chunk.get("eval_count", 0))
                    prompt_tokens = int(chunk.get("prompt_eval_count", 0))
                    prompt_seconds = chunk.get("prompt_eval_duration", 0) / 1e9
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]" or not line.startswith("data: "):
                continue
            chunk = json.loads(data)
            choices = chunk.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens", 0))
                prompt_tokens = int(chunk["usage"].get("prompt_tokens", 0))
            timings = chunk.get("timings")
            if timings:
                prompt_seconds = timings.get("prompt_ms", 0.0) / 1000
    return Stream(first - start, tokens, last - first, prompt_tokens, prompt_seconds)


@dataclass(frozen=True)
class Burst:
    """Simultaneous generations: the tokens streamed in all, and the seconds they took."""

    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


async def concurrent(
    client: httpx.AsyncClient, target: Target, streams: int, n_predict: int
) -> Burst:
    """``streams`` simultaneous generations (their aggregate rate is ``Burst.rate``)."""
    nonce = secrets.token_hex(4)  # fresh prompts: no run profits from another's prompt cache
    start = time.perf_counter()
    results = await asyncio.gather(
        *(stream_once(client, target, f"[{nonce}-{i}] {STORY}", n_predict) for i in range(streams))
    )
    elapsed = time.perf_counter() - start
    return Burst(sum(r.tokens for r in results), elapsed)


async def prompt_rate(client: httpx.AsyncClient, target: Target) -> float:
    """Prompt tokens/s as the server reports it, for a fresh (uncached) long prompt."""
    nonce = secrets.token_hex(8)
    result = await stream_once(client, target, f"[{nonce}] {LONG_PROMPT}", 2)
    return result.prompt_tokens / result.prompt_seconds if result.prompt_seconds else 0.0


async def request_latency(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    try:
        resp = await client.post(url, json=body)
    except httpx.RemoteProtocolError:  # a kept-alive connection closed by the server
        start = time.perf_counter()
        resp = await client.post(url, json=body)
    resp.raise_for_status()
    return time.perf_counter() - start


async def wait_ready(url: str, timeout: float = 120.0) -> float:
    """Seconds until ``url`` answers 200 (polling), for measuring start-up."""
    start = time.perf_counter()
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.perf_counter() - start < timeout:
            try:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    tree, i = [pid], 0
    while i < len(tree):
        tree.extend(child_pids(tree[i]))
        i += 1
    return tree


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of ``/proc/PID/stat``."""
    fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 on: the name may hold spaces
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pids: list[int]) -> int:
    """CPU time the processes have used so far (their threads included, not their children)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                total += parse_cpu_ticks(fh.read())
        except OSError:
            pass
    return total


def cpu_us_per_token(ticks: int, tokens: int, ticks_per_second: int | None = None) -> float | None:
    """Microseconds of CPU per streamed token; None without tokens."""
    if tokens <= 0:
        return None
    per_second = ticks_per_second or os.sysconf("SC_CLK_TCK")
    return ticks / per_second / tokens * 1e6


@dataclass
class CpuTally:
    """CPU ticks per group of server processes, and the tokens streamed meanwhile."""

    tokens: int = 0
    ticks: dict[str, int] = field(default_factory=dict)

    def add(self, tokens: int, ticks: dict[str, int]) -> None:
        self.tokens += tokens
        for group, value in ticks.items():
            self.ticks[group] = self.ticks.get(group, 0) + value

    def us_per_token(self) -> dict[str, float]:
        """``<group>_cpu_us_per_token`` for each group, and ``server_cpu_us_per_token`` for all
        of them together (a server that is one process may simply name its group "server")."""
        out: dict[str, float] = {}
        for group, ticks in {**self.ticks, "server": sum(self.ticks.values())}.items():
            value = cpu_us_per_token(ticks, self.tokens)
            if value is not None:
                out[f"{group}_cpu_us_per_token"] = value
        return out


def parse_compute_apps(csv: str) -> dict[int, float]:
    """MiB per process from ``nvidia-smi --query-compute-apps=pid,used_memory
    --format=csv,noheader,nounits``, summed where a process holds several GPUs."""
    used: dict[int, float] = {}
    for line in csv.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                used[int(parts[0])] = used.get(int(parts[0]), 0.0) + float(parts[1])
            except ValueError:  # "[N/A]"
                continue
    return used


def gpu_memory_mib(pids: list[int]) -> float | None:
    """GPU memory of the processes, MiB; None where nvidia-smi is missing or fails."""
    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    used = parse_compute_apps(out.stdout)
    return sum(used.get(pid, 0.0) for pid in pids)
