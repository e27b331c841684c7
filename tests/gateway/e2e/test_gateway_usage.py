"""Usage written by the gateway equals the backends' own token counts; /metrics on both."""

from __future__ import annotations

import subprocess
import sys
import time

import ollama
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.e2e.conftest import Stack
from tests.gateway.harness import create_key
from tests.support import DEFAULT_MODEL

MESSAGES = [{"role": "user", "content": "Name a colour"}]


def usage_rows(stack: Stack, key_name: str) -> dict[str, tuple[int, int, int]]:
    """``nexus gateway usage --key NAME``: model -> (requests, prompt, completion)."""
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli.main", "gateway", "usage", "--key", key_name],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 6 and cells[0] == key_name:
            rows[cells[1]] = (int(cells[2]), int(cells[3]), int(cells[4]))
    return rows


def test_usage_counts_exactly_what_the_backends_counted(stack: Stack) -> None:
    key = create_key(stack.env, "metered")
    expected_prompt = expected_completion = 0
    native = ollama.Client(host=stack.gateway.url, headers={"Authorization": f"Bearer {key}"})
    reply = native.chat(model=DEFAULT_MODEL, messages=MESSAGES, options={"num_predict": 5})
    expected_prompt += reply.prompt_eval_count or 0
    expected_completion += reply.eval_count or 0
    parts = list(
        native.chat(model=DEFAULT_MODEL, messages=MESSAGES, stream=True, options={"num_predict": 4})
    )
    expected_prompt += parts[-1].prompt_eval_count or 0
    expected_completion += parts[-1].eval_count or 0
    generated = native.generate(model=DEFAULT_MODEL, prompt="Hi", options={"num_predict": 3})
    expected_prompt += generated.prompt_eval_count or 0
    expected_completion += generated.eval_count or 0

    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=key, max_retries=0)
    whole = client.chat.completions.create(model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=3)
    assert whole.usage is not None
    expected_prompt += whole.usage.prompt_tokens
    expected_completion += whole.usage.completion_tokens
    streamed = list(
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=3, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    usage = streamed[-1].usage
    assert usage is not None
    expected_prompt += usage.prompt_tokens
    expected_completion += usage.completion_tokens
    requests = 5

    deadline = time.monotonic() + 20
    rows: dict[str, tuple[int, int, int]] = {}
    while time.monotonic() < deadline:
        rows = usage_rows(stack, "metered")
        if rows.get(DEFAULT_MODEL, (0, 0, 0))[0] >= requests:
            break
        time.sleep(0.2)
    assert rows == {DEFAULT_MODEL: (requests, expected_prompt, expected_completion)}


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_on_the_gateway_and_the_server(stack: Stack) -> None:
    with stack.client() as http:
        before = _samples(http.get("/metrics").text)
        reply = http.post(
            "/api/chat",
            json={"model": DEFAULT_MODEL, "messages": MESSAGES, "stream": False,
                  "options": {"num_predict": 3}},
        )  # fmt: skip
        assert reply.status_code == 200
        data = reply.json()
        scraped = http.get("/metrics")
        assert scraped.headers["content-type"].startswith("text/plain")
        after = _samples(scraped.text)

    labels = {("route", "/api/chat"), ("model", DEFAULT_MODEL), ("status", "200")}
    ok = ("nexus_gateway_requests_total", frozenset(labels))
    assert after[ok] - before.get(ok, 0) == 1
    prompt = (
        "nexus_gateway_tokens_total",
        frozenset({("model", DEFAULT_MODEL), ("kind", "prompt")}),
    )
    done = (
        "nexus_gateway_tokens_total",
        frozenset({("model", DEFAULT_MODEL), ("kind", "completion")}),
    )
    assert after[prompt] - before.get(prompt, 0) == data["prompt_eval_count"]
    assert after[done] - before.get(done, 0) == data["eval_count"]
    for backend in ("ollama", "ollama-2"):
        assert after[("nexus_gateway_backend_up", frozenset({("backend", backend)}))] == 1
    latency = ("nexus_gateway_request_duration_seconds_count",
               frozenset({("route", "/api/chat"), ("model", DEFAULT_MODEL)}))  # fmt: skip
    assert after[latency] - before.get(latency, 0) == 1

    for server in (stack.a, stack.b):
        with server.client() as direct:
            text = direct.get("/metrics").text
        names = {family.name for family in text_string_to_metric_families(text)}
        assert any(name.startswith("nexus_") for name in names)
