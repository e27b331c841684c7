"""Routing through the gateway: by model, loaded first, and with the official clients."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import anthropic
import httpx
import ollama
import openai

from tests.gateway.e2e.conftest import Stack
from tests.support import DEFAULT_MODEL

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_a_model_on_one_backend_only_goes_there(stack: Stack) -> None:
    with stack.client() as http:
        for _ in range(3):
            reply = http.post(
                "/api/chat",
                json={"model": "other", "messages": MESSAGES, "stream": False,
                      "options": {"num_predict": 2}},
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-nexus-backend"] == "ollama-2"
            assert float(reply.headers["x-nexus-overhead-ms"]) >= 0
        v1 = http.post(
            "/v1/chat/completions",
            json={"model": "other:latest", "messages": MESSAGES, "max_tokens": 2},
        )
        assert v1.status_code == 200 and v1.headers["x-nexus-backend"] == "ollama-2"


def _loaded(http: httpx.Client) -> set[str]:
    return {m["name"] for m in http.get("/api/ps").json()["models"]}


def test_the_backend_with_the_model_loaded_is_preferred(stack: Stack) -> None:
    unload = {"model": DEFAULT_MODEL, "keep_alive": 0}
    for server in (stack.a, stack.b):
        with server.client() as direct:
            direct.post("/api/generate", json=unload).raise_for_status()
    with stack.b.client() as direct:
        direct.post(
            "/api/generate",
            json={"model": DEFAULT_MODEL, "prompt": "hi", "stream": False,
                  "options": {"num_predict": 1}, "keep_alive": "10m"},
        ).raise_for_status()  # fmt: skip
    with stack.a.client() as direct:
        assert DEFAULT_MODEL not in _loaded(direct)
    with stack.client() as http:
        deadline = time.monotonic() + 15
        while DEFAULT_MODEL not in _loaded(http) and time.monotonic() < deadline:
            time.sleep(0.05)  # the gateway learns it at its next poll
        for _ in range(4):
            reply = http.post(
                "/api/generate",
                json={"model": DEFAULT_MODEL, "prompt": "hi", "stream": False,
                      "options": {"num_predict": 1}},
            )  # fmt: skip
            assert reply.status_code == 200
            assert reply.headers["x-nexus-backend"] == "ollama-2"


def test_streams_through_the_official_clients(stack: Stack) -> None:
    client = openai.OpenAI(base_url=f"{stack.gateway.url}/v1", api_key=stack.key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=8, stream=True, temperature=0
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and all(c.choices for c in chunks)  # no usage-only chunk the client did not ask
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    whole = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=8, temperature=0
    )
    assert whole.choices[0].message.content == text
    with_usage = list(
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=MESSAGES, max_tokens=8, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0

    native = ollama.Client(host=stack.gateway.url, headers={"Authorization": f"Bearer {stack.key}"})
    parts = list(
        native.chat(model=DEFAULT_MODEL, messages=MESSAGES, stream=True,
                    options={"num_predict": 8, "temperature": 0})
    )  # fmt: skip
    assert parts[-1].done and parts[-1].eval_count and parts[-1].eval_count > 0
    assert "".join(p.message.content or "" for p in parts) == text
    embedded = native.embed(model=DEFAULT_MODEL, input=["one", "two"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) > 10
    assert [m.model for m in native.list().models] == ["smollm2:135m", "other:latest"]

    messages = anthropic.Anthropic(base_url=stack.gateway.url, api_key=stack.key, max_retries=0)
    with messages.messages.stream(
        model=DEFAULT_MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0 and final.content


def test_streams_pass_through_and_a_client_that_leaves_frees_the_backend(stack: Stack) -> None:
    body = {"model": DEFAULT_MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "raw": True,
            "options": {"num_predict": 2000, "temperature": 0}}  # fmt: skip
    with stack.client() as http:
        with http.stream("POST", "/api/generate", json=body) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            assert json.loads(next(lines))["done"] is False
            with stack.a.client() as a, stack.b.client() as b:
                # the first line came while the backend was still generating: not buffered
                assert sum(_slots_busy(s) for s in (a, b)) >= 1
            lines.close()  # the client leaves
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with stack.a.client() as a, stack.b.client() as b:
                busy = [s for s in (a, b) if _slots_busy(s)]
            if not busy:
                break
            time.sleep(0.1)
        assert not busy, "the backend kept generating for a client that left"
        with stack.a.client() as a, stack.b.client() as b:
            assert any(_loaded(s) for s in (a, b))  # idle slots, not an unloaded model
        ok = http.post("/api/show", json={"model": DEFAULT_MODEL})
        assert ok.status_code == 200


def _slots_busy(server: httpx.Client) -> float:
    """Busy slots on a backend, from its own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(server.get("/metrics").text)}
    return sum(s.value for s in families["nexus_slots_busy"].samples)


def test_the_command_line_works_through_the_gateway(stack: Stack) -> None:
    env = {**stack.env, "OLLAMA_HOST": stack.gateway.url, "NEXUS_API_KEY": stack.key}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nexus.cli.main", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "smollm2:135m" in listed.stdout and "other:latest" in listed.stdout
    ran = cli("run", "other", "Say hi", "--nowordwrap")
    assert ran.returncode == 0 and ran.stdout.strip(), ran.stderr
    env["NEXUS_API_KEY"] = "wrong"
    refused = cli("list")
    assert refused.returncode == 1 and "invalid API key" in refused.stderr
