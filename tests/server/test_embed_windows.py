"""Embeddings of more inputs than two windows are streamed as they are computed: the official
clients read them as they read a whole reply, in order, with the counts at the end."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import ollama
import pytest

from nexus.inference.embedding import EMBED_BATCH
from tests.support import DEFAULT_MODEL, ServerProcess

pytestmark = pytest.mark.integration

MANY = 2 * EMBED_BATCH + 7  # past the two windows a reply waits for before it is sent


def texts(n: int) -> list[str]:
    return [f"item {i}" for i in range(n)]


def test_ollama_client_reads_a_streamed_embedding_whole(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    many = client.embed(model=DEFAULT_MODEL, input=texts(MANY), dimensions=32)
    assert len(many.embeddings) == MANY
    assert all(len(v) == 32 for v in many.embeddings)
    assert many.prompt_eval_count and many.prompt_eval_count >= MANY
    assert many.total_duration and many.total_duration > 0
    # the same vectors as when each window is a reply of its own
    few = client.embed(model=DEFAULT_MODEL, input=texts(MANY)[-3:], dimensions=32)
    assert np.allclose(many.embeddings[-3:], few.embeddings, atol=1e-5)


def test_openai_client_reads_a_streamed_embedding_whole(server: ServerProcess) -> None:
    with server.openai_client() as client:
        floats = client.embeddings.create(model=DEFAULT_MODEL, input=texts(MANY))
        packed = client.embeddings.create(
            model=DEFAULT_MODEL, input=texts(MANY), encoding_format="base64"
        )
    assert [d.index for d in floats.data] == list(range(MANY))
    assert floats.usage.prompt_tokens == floats.usage.total_tokens >= MANY
    assert floats.model == DEFAULT_MODEL
    last = np.frombuffer(base64.b64decode(str(packed.data[-1].embedding)), dtype="<f4")
    assert np.allclose(last, floats.data[-1].embedding, atol=1e-5)


def test_a_streamed_embedding_refuses_a_late_long_input_with_a_400(server: ServerProcess) -> None:
    """The refusal comes before the reply starts, however late the long input is."""
    inputs = [*texts(MANY), "word " * 5000]
    with httpx.Client(base_url=server.url, trust_env=False, timeout=120) as http:
        resp = http.post(
            "/api/embed", json={"model": DEFAULT_MODEL, "input": inputs, "truncate": False}
        )
    assert resp.status_code == 400
    assert "exceeds the context length" in resp.json()["error"]
