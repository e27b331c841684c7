"""Uploaded models with Jinja chat templates, through a real server: a template the server
renders itself answers exactly as the engine renders it, and one outside the server's bounds
is left to the engine, with every request answered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nexus.runner.client import template_deadline
from tests.server.test_capabilities_gaps import ONE_TOKEN, _create, _upload, with_chat_template
from tests.support import ServerProcess

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' "
    "+ message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: Renders in the engine; refused by the server's sandbox (``range`` is not offered).
OUTSIDE = "{% for i in range(2) %}-{% endfor %}" + CHATML


def _model(server: ServerProcess, default_gguf: Path, directory: Path, template: str) -> str:
    path = directory / "model.gguf"
    with_chat_template(default_gguf, path, template)
    name = f"nexus-test-jinja-{uuid.uuid4().hex[:8]}:latest"
    with server.client() as http:
        _create(http, {"model": name, "files": {"model.gguf": _upload(http, path)}})
    return name


@pytest.fixture(scope="module")
def models(
    server: ServerProcess, default_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    names = {
        kind: _model(server, default_gguf, tmp_path_factory.mktemp(kind), template)
        for kind, template in (("inside", CHATML), ("outside", OUTSIDE))
    }
    yield names
    with server.client() as http:
        for name in names.values():
            http.request("DELETE", "/api/delete", json={"model": name})


@pytest.mark.parametrize("kind", ["inside", "outside"])
def test_every_request_gets_the_engines_prompt(
    http: httpx.Client, models: dict[str, str], kind: str
) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour, « en français » ?"},
    ]
    counts = set()
    replies = set()
    for _ in range(6):  # the checks, then rendered by the server where it may
        body = {"model": models[kind], "messages": conversation, "stream": False}
        r = http.post("/api/chat", json={**body, "options": ONE_TOKEN})
        assert r.status_code == 200, r.text
        counts.add(r.json()["prompt_eval_count"])
        replies.add(r.json()["message"]["content"])
    assert len(counts) == 1 and len(replies) == 1
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
    text = ("--" if kind == "outside" else "") + text + "<|im_start|>assistant\n"
    raw = {"model": models[kind], "prompt": text, "raw": True, "stream": False}
    r = http.post("/api/generate", json={**raw, "options": ONE_TOKEN})
    assert r.status_code == 200, r.text
    assert r.json()["prompt_eval_count"] == counts.pop()
    assert r.json()["response"] == replies.pop()


#: Cubic in the number of messages: instant for a few, hours for a few thousand.
CUBIC = (
    "{% for a in messages %}{% for b in messages %}{% for c in messages %}"
    "{% endfor %}{% endfor %}{% endfor %}" + CHATML
)


def test_a_template_that_will_not_finish_is_given_up_and_its_runner_stopped(
    server: ServerProcess, http: httpx.Client, default_gguf: Path, tmp_path: Path
) -> None:
    """The engine renders what the server does not (here: more messages than it renders
    itself); a render past the deadline is a 500 saying so, the runner still rendering is
    stopped, and the next request gets a fresh one."""
    name = _model(server, default_gguf, tmp_path, CUBIC)
    try:
        few = [{"role": "user", "content": "hi"}] * 4
        many = [{"role": "user", "content": "hi"}] * 400
        body = {"model": name, "stream": False, "options": ONE_TOKEN}
        assert http.post("/api/chat", json={**body, "messages": few}).status_code == 200
        pids = set(server.runner_pids())
        r = http.post("/api/chat", json={**body, "messages": many})
        assert r.status_code == 500, r.text
        deadline = template_deadline(len(many))
        assert r.json() == {
            "error": f"the model's chat template did not render within {deadline:g} s"
        }
        assert name not in [m["name"] for m in http.get("/api/ps").json()["models"]]
        assert http.post("/api/chat", json={**body, "messages": few}).status_code == 200
        assert set(server.runner_pids()) - pids  # a fresh runner
    finally:
        http.request("DELETE", "/api/delete", json={"model": name})
