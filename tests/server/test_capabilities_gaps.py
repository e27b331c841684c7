"""Thinking and vision details Ollama has: earlier reasoning left out of the prompt,
``think`` reaching a GGUF's own Jinja template as ``enable_thinking``, and a vision model's
context of at least 2048 tokens."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import pytest
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

from tests.server.test_capabilities_thinking import TEMPLATE
from tests.server.test_capabilities_vision import build_projector
from tests.support import DEFAULT_MODEL, ServerProcess

ONE_TOKEN = {"temperature": 0, "seed": 1, "num_predict": 1}
#: Qwen3's way: a reply that must not think opens with an empty reasoning block.
JINJA = """{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>

{% endif %}{% endif %}"""


def _upload(http: httpx.Client, path: Path) -> str:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    r = http.post(f"/api/blobs/{digest}", content=path.read_bytes())
    assert r.status_code in (200, 201), r.text
    return digest


def _create(http: httpx.Client, body: dict[str, Any]) -> None:
    r = http.post("/api/create", json={**body, "stream": False})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def thinker(server: ServerProcess) -> Iterator[str]:
    name = f"nexus-test-history-{uuid.uuid4().hex[:8]}:latest"
    with server.client() as http:
        _create(http, {"model": name, "from": DEFAULT_MODEL, "template": TEMPLATE})
        yield name
        http.request("DELETE", "/api/delete", json={"model": name})


def _prompt_tokens(
    http: httpx.Client, model: str, messages: list[dict[str, Any]], **extra: Any
) -> int:
    body = {"model": model, "messages": messages, "stream": False, "options": ONE_TOKEN, **extra}
    r = http.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["prompt_eval_count"])


def test_earlier_reasoning_stays_out_of_the_prompt(http: httpx.Client, thinker: str) -> None:
    def history(answer: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "And 3+3?"},
        ]

    reasoned = "<think>\nTwo plus two: count two, then two more, which makes four.\n</think>\n\n4"
    plain = _prompt_tokens(http, thinker, history("4"))
    assert _prompt_tokens(http, thinker, history(reasoned)) == plain
    # a ``thinking`` field is rendered back only where the template shows it
    with_field = history("4")
    with_field[1]["thinking"] = "Two plus two: count two, then two more, which makes four."
    assert _prompt_tokens(http, thinker, with_field) > plain


def with_chat_template(source: Path, path: Path, template: str) -> None:
    """A copy of the GGUF at ``source`` whose chat template is ``template``."""
    reader = gguf.GGUFReader(str(source), "r")
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())
    writer = gguf.GGUFWriter(str(path), arch=arch, endianess=reader.endianess)
    details = MetadataDetails(gguf.GGUFValueType.STRING, template)
    copy_with_new_metadata(reader, writer, {gguf.Keys.Tokenizer.CHAT_TEMPLATE: details}, [])


@pytest.fixture(scope="module")
def jinja_thinker(
    server: ServerProcess, default_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    path = tmp_path_factory.mktemp("jinja") / "model.gguf"
    with_chat_template(default_gguf, path, JINJA)
    name = f"nexus-test-jinja-{uuid.uuid4().hex[:8]}:latest"
    with server.client() as http:
        _create(http, {"model": name, "files": {"model.gguf": _upload(http, path)}})
        yield name
        http.request("DELETE", "/api/delete", json={"model": name})


def test_think_reaches_a_jinja_template(http: httpx.Client, jinja_thinker: str) -> None:
    show = http.post("/api/show", json={"model": jinja_thinker}).json()
    assert "thinking" in show["capabilities"]
    messages = [{"role": "user", "content": "What is 2+2?"}]
    thinking = _prompt_tokens(http, jinja_thinker, messages, think=True)
    assert _prompt_tokens(http, jinja_thinker, messages) == thinking  # on by default
    assert _prompt_tokens(http, jinja_thinker, messages, think=False) > thinking

    def generated(think: bool) -> int:
        body = {"model": jinja_thinker, "prompt": "What is 2+2?", "stream": False, "think": think}
        r = http.post("/api/generate", json={**body, "options": ONE_TOKEN})
        assert r.status_code == 200, r.text
        return int(r.json()["prompt_eval_count"])

    assert generated(False) > generated(True)


def test_a_vision_model_gets_at_least_2048_tokens(
    http: httpx.Client, default_gguf: Path, tmp_path: Path
) -> None:
    projector = tmp_path / "mmproj.gguf"
    build_projector(projector, n_out=576)
    name = f"nexus-test-vision-ctx-{uuid.uuid4().hex[:8]}:latest"
    files = {"model.gguf": _upload(http, default_gguf), "mmproj.gguf": _upload(http, projector)}
    _create(http, {"model": name, "files": files})
    try:
        r = http.post("/api/generate", json={"model": name, "options": {"num_ctx": 1024}})
        assert r.status_code == 200, r.text
        loaded = [m for m in http.get("/api/ps").json()["models"] if m["name"] == name]
        assert loaded and loaded[0]["context_length"] == 2048
        r = http.post("/api/generate", json={"model": DEFAULT_MODEL, "options": {"num_ctx": 1024}})
        assert r.status_code == 200, r.text
        plain = [m for m in http.get("/api/ps").json()["models"] if m["name"] == DEFAULT_MODEL]
        assert plain and plain[0]["context_length"] == 1024
    finally:
        http.post("/api/generate", json={"model": name, "keep_alive": 0})
        http.request("DELETE", "/api/delete", json={"model": name})
