"""The bench's engine alone: Nexus's runner process started bare on a loopback port, answering
llama.cpp's own API as llama-server does, with the spec Nexus's scheduler gives it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx

from bench.__main__ import MODEL, import_model, stop
from bench.engine_alone import runner_spec, start_engine_alone
from nexus.config import Settings
from nexus.runner.spec import RunnerSpec
from nexus.server.app import build_state
from nexus.store.default_model import default_gguf_path


def test_the_spec_is_the_one_nexus_loads() -> None:
    spec = runner_spec(default_gguf_path(), 1024, 16, 2)
    assert (spec.num_ctx, spec.num_parallel, spec.threads) == (1024, 16, 2)
    assert spec.num_gpu == -1 and not spec.embeddings_only


def test_the_bare_runner_serves_on_loopback_and_stops() -> None:
    proc, url, out = start_engine_alone(default_gguf_path(), 512, 2, 1)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert out["cold_load_s"] > 0 and out["loaded_rss_mb"] > 0
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
        with httpx.Client(trust_env=False, timeout=60) as client:
            reply = client.post(f"{url}/v1/chat/completions", json={"model": "bench", **body})
            assert reply.status_code == 200
            assert reply.json()["usage"]["completion_tokens"] == 3
            one = client.post(f"{url}/completion", json={"prompt": "Hello", "n_predict": 1})
            assert one.status_code == 200 and one.json()["tokens_predicted"] == 1
    finally:
        stop(proc)
    assert proc.returncode is not None


def test_the_spec_is_the_schedulers_for_the_bench_model(tmp_path: Path) -> None:
    """What the server would load for the bench's model, with the bench's settings, is what the
    engine alone runs (the weights as the store's blob, the same bytes)."""
    gguf = default_gguf_path().resolve()
    import_model(gguf, tmp_path, 2)
    env = {"OLLAMA_MODELS": str(tmp_path), "OLLAMA_NUM_PARALLEL": "16",
           "OLLAMA_CONTEXT_LENGTH": "1024"}  # fmt: skip
    state = build_state(Settings.from_env(env))

    async def spec() -> RunnerSpec:
        model = await state.catalog.get(MODEL)
        return state.inference.runner_spec(model, state.inference.options_for(model, None))

    served = asyncio.run(spec())
    assert replace(served, model_path=str(gguf)) == runner_spec(gguf, 1024, 16, 2)
