"""The gateway bench's pure parts (statistics, table, the stub's answers) and its stub and load
generator against each other on a real port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import stub
from bench.gateway import (
    Load,
    Target,
    Unavailable,
    _run,
    cases,
    check,
    cpu_seconds,
    free_port,
    load,
    percentile,
    process_tree,
    raw_request,
    rss_mib,
    stub_backend,
    summarize,
    wait_ready,
)
from bench.gateway_report import _ratio, render_gateway_table, targets_met


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_in_milliseconds_with_cpu_per_request() -> None:
    result = Load(
        seconds=2.0,
        latencies=[0.001 * i for i in range(1, 101)],
        first_chunks=[0.0005] * 100,
        failed=0,
    )
    summary = summarize(result, proxy_cpu_s=0.5, stub_cpu_s=0.1)
    assert summary["rps"] == pytest.approx(50.0)
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["ttfc_p50_ms"] == pytest.approx(0.5)
    assert summary["proxy_cpu_ms_per_req"] == pytest.approx(5.0)
    assert summary["proxy_cpu_pct"] == pytest.approx(25.0)
    assert summary["stub_cpu_ms_per_req"] == pytest.approx(1.0)
    direct = summarize(Load(1.0, [0.001], failed=1, first_error="HTTP 500"), None, 0.0)
    assert direct["requests"] == 2 and direct["failed"] == 1
    assert direct["first_error"] == "HTTP 500"
    assert "proxy_cpu_ms_per_req" not in direct and "ttfc_p50_ms" not in direct


def test_cases_scale_with_the_request_count() -> None:
    assert [(c.key, c.requests, c.concurrency, c.stream) for c in cases(3000)] == [
        ("c1", 3000, 1, False),
        ("c8", 3000, 8, False),
        ("stream_c8", 500, 8, True),
    ]
    assert cases(60)[-1].requests == 10


def test_stub_completion_is_a_small_chat_completion_with_usage() -> None:
    body = stub.completion_body()
    assert 250 <= len(body) <= 360
    answer = json.loads(body)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == stub.MODEL
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": stub.CONTENT}
    assert answer["usage"]["total_tokens"] == (
        answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    )
    assert json.loads(stub.completion_body("other"))["model"] == "other"


def _events(events: tuple[bytes, ...]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        data = event[6:-2]
        out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


def test_stub_stream_has_twenty_chunks_then_done_and_usage_on_request() -> None:
    plain = _events(stub.stream_events(stub.MODEL, False))
    assert len(plain) == stub.STREAM_CHUNKS + 1 and plain[-1] == "[DONE]"
    assert plain[0]["choices"][0]["delta"]["role"] == "assistant"
    assert plain[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in plain[:-1])
    with_usage = _events(stub.stream_events(stub.MODEL, True))
    assert len(with_usage) == stub.STREAM_CHUNKS + 2 and with_usage[-1] == "[DONE]"
    assert with_usage[-2]["choices"] == [] and with_usage[-2]["usage"] == stub.USAGE
    content = "".join(c["choices"][0]["delta"]["content"] for c in with_usage[:-2])
    assert content == "".join(f"w{i} " for i in range(stub.STREAM_CHUNKS))


def _results(nexus_rps: float, nexus_p50: float, delta: float) -> dict[str, Any]:
    def case(rps: float, p50: float, cpu: float | None = None) -> dict[str, Any]:
        out = {"rps": rps, "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.5, "failed": 0}
        return out if cpu is None else {**out, "proxy_cpu_ms_per_req": cpu}

    cases_ = {"c1": case(5000, 0.2), "c8": case(8000, 1.0), "stream_c8": case(2000, 3.0)}
    nexus = {
        "c1": case(2000, nexus_p50),
        "c8": case(nexus_rps, 4.0, 0.2),
        "stream_c8": case(900, 9),
    }
    litellm = {"c1": case(100, 9.0), "c8": case(120, 65.0, 9.0), "stream_c8": case(40, 180)}
    return {
        "machine": "2 CPUs, x86_64",
        "python": "3.11.7",
        "requests": 3000,
        "stream_requests": 500,
        "warmup": 200,
        "load_average": {"start": 1.25, "end": 2.0},
        "targets": {
            "direct": {"cases": cases_, "rss_mib": None},
            "nexus": {"cases": nexus, "version": "0.1.0",
                      "rss_mib": {"start": 80.0, "warm": 90.0, "end": 90 + delta,
                                  "delta": delta}},
            "litellm": {"cases": litellm, "version": "1.108.7",
                        "rss_mib": {"start": 324.0, "warm": 380.0, "end": 419.0,
                                    "delta": 39.0}},
        },
    }  # fmt: skip


def test_table_side_by_side_with_targets() -> None:
    table = render_gateway_table(_results(nexus_rps=2400, nexus_p50=0.6, delta=0.5))
    lines = table.splitlines()
    assert "| Measure | direct | Nexus gateway | LiteLLM | Nexus/LiteLLM |" in lines
    assert "| Requests/s, non-stream, concurrency 8 | 8,000 | 2,400 | 120 | 20x |" in lines
    assert "| Added p50 over direct, c=1 (ms) | — | 0.40 | 8.80 | 0.045x |" in lines
    assert "| Proxy RSS growth, warm-up to end (MiB) | — | 0.5 | 39.0 | 0.013x |" in lines
    assert "| Failed requests | 0 | 0 | 0 | |" in lines
    assert "| Requests/s, non-stream, concurrency 1 | 5,000 | 2,000 | 100 | 20x |" in lines
    assert "| Requests/s, stream (20 chunks), c=8 | 2,000 | 900 | 40 | 22x |" in lines
    assert "0.1.0" in lines[0] and "1.108.7" in lines[0]
    assert "load average 1.2 at the start, 2.0 at the end" in lines[0]
    assert "- Nexus added p50 at concurrency 1 under 1 ms: 0.40 ms, met" in lines
    assert any(line.endswith("20.0x (CPU per request 45x less), met") for line in lines)
    assert "| Proxy CPU per request, c=8 (ms) | — | 0.20 | 9.00 | 0.022x |" in lines
    assert any(line.endswith("+0.5 MiB on 90.0 MiB, met") for line in lines)


def test_targets_not_met_and_not_measured() -> None:
    verdicts = [met for _, met, _ in targets_met(_results(600, 1.5, 20.0))]
    assert verdicts == [False, False, False]
    results = _results(600, 1.5, 20.0)
    results["targets"]["nexus"] = {"error": "`nexus gateway` is not available in this build"}
    assert [met for _, met, _ in targets_met(results)] == [None, None, None]
    table = render_gateway_table(results)
    assert "Nexus gateway: not measured, `nexus gateway` is not available in this build" in table
    assert "| Requests/s, non-stream, concurrency 1 | 5,000 | — | 100 | — |" in table
    assert table.count("not measured") == 4


def test_process_figures_of_this_process() -> None:
    me = os.getpid()
    assert process_tree(me)[0] == me
    assert rss_mib(me) > 1
    assert cpu_seconds(me) > 0


def test_stub_and_load_generator_on_a_real_port(tmp_path: Path) -> None:
    """The stub as the bench starts it, answered over HTTP; the load generator counts every
    request and the check of a target passes on the stub itself."""
    with stub_backend(tmp_path) as (url, pid):
        assert pid in process_tree(pid)
        models = httpx.get(f"{url}/v1/models", trust_env=False).json()
        assert [m["id"] for m in models["data"]] == [stub.MODEL]
        assert httpx.get(f"{url}/health", trust_env=False).status_code == 200
        assert httpx.get(f"{url}/nowhere", trust_env=False).status_code == 404
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": stub.MODEL, "messages": [{"role": "user", "content": "hi"}]},
            trust_env=False,
        )
        assert answer.content == stub.completion_body()

        async def both() -> tuple[Load, Load]:
            endpoint = f"{url}/v1/chat/completions"
            plain = await load(endpoint, {"Authorization": "Bearer k"}, 40, 4, False)
            streamed = await load(endpoint, {}, 12, 3, True)
            return plain, streamed

        check(Target("direct", url, {}))
        plain, streamed = _run(both())
    assert plain.failed == 0 and len(plain.latencies) == 40
    assert streamed.failed == 0 and len(streamed.first_chunks) == 12
    assert all(0 < f <= t for f, t in zip(streamed.first_chunks, streamed.latencies, strict=True))


def test_load_counts_failures(tmp_path: Path) -> None:
    with stub_backend(tmp_path) as (url, _):
        result = _run(load(f"{url}/v1/missing", {}, 5, 2, False))
        with pytest.raises(Unavailable, match="HTTP 404 on a chat completion"):
            check(Target("elsewhere", f"{url}/elsewhere", {}))
    assert result.failed == 5 and not result.latencies
    assert result.first_error == "HTTP 404"


def test_load_counts_a_refused_connection() -> None:
    port = free_port()  # nothing listens there
    result = _run(load(f"http://127.0.0.1:{port}/v1/chat/completions", {}, 3, 1, False))
    assert result.failed == 3 and result.first_error
    assert result.first_error.startswith("ConnectionRefusedError")
    with pytest.raises(Unavailable, match="could not be read: ConnectError"):
        check(Target("nothing", f"http://127.0.0.1:{port}", {}))


def test_raw_request_is_one_http11_post() -> None:
    url = "http://127.0.0.1:8080/v1/chat/completions"
    request = raw_request(url, {"Authorization": "Bearer k"}, b'{"a":1}')
    head, body = request.split(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert head.split(b"\r\n") == [
        b"POST /v1/chat/completions HTTP/1.1",
        b"Host: 127.0.0.1:8080",
        b"Content-Type: application/json",
        b"Content-Length: 7",
        b"Authorization: Bearer k",
    ]


def test_a_target_that_exits_at_start_is_unavailable(tmp_path: Path) -> None:
    """A proxy that dies while starting makes its column read the reason, not a hang."""
    log = tmp_path / "proxy.log"
    log.write_text("bad config: no backends\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(Unavailable, match="exited with 3: bad config: no backends"):
        wait_ready(f"http://127.0.0.1:{free_port()}/health", proc, log, 60)


def test_ratio_column_reads_easily() -> None:
    assert [_ratio(a, b) for a, b in [(35.5, 1), (2.25, 1), (0.0455, 1), (1e-5, 1)]] == [
        "36x",
        "2.2x",
        "0.045x",
        "<0.001x",
    ]
    assert _ratio(-0.01, 5.0) == "—" and _ratio(None, 1.0) == "—" and _ratio(1.0, 0.0) == "—"
