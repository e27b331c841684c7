"""Thinking models end to end: a model created from the default GGUF with a thinking template
(reasoning between ``<think>`` tags, few-shot messages that show the model the format), asked
through every API. Greedy decoding keeps the answers fixed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess

TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>
{{ else }}<think>

</think>

{{ end }}"""
SHOTS = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "thinking": "Two plus two is four.", "content": "4"},
    {"role": "user", "content": "What is 3+3?"},
    {"role": "assistant", "thinking": "Three plus three is six.", "content": "6"},
]
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 40}
QUESTION = [{"role": "user", "content": "What is 4+4?"}]


@pytest.fixture(scope="module")
def thinker(server: ServerProcess) -> Iterator[str]:
    name = f"nexus-test-thinker-{uuid.uuid4().hex[:8]}:latest"
    with server.client() as http:
        body = {"model": name, "from": DEFAULT_MODEL, "template": TEMPLATE, "messages": SHOTS}
        r = http.post("/api/create", json={**body, "stream": False})
        assert r.status_code == 200, r.text
        yield name
        http.request("DELETE", "/api/delete", json={"model": name})


def _chat(http: httpx.Client, model: str, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": QUESTION, "stream": False, "options": GREEDY, **extra}
    r = http.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    message: dict[str, Any] = r.json()["message"]
    return message


def test_capabilities_from_the_template(http: httpx.Client, thinker: str) -> None:
    assert "thinking" in http.post("/api/show", json={"model": thinker}).json()["capabilities"]
    default = http.post("/api/show", json={"model": DEFAULT_MODEL}).json()["capabilities"]
    assert "thinking" not in default


@pytest.mark.parametrize("think", [None, True, "high"])
def test_native_chat_splits_reasoning(http: httpx.Client, thinker: str, think: Any) -> None:
    message = _chat(http, thinker, **({} if think is None else {"think": think}))
    assert message["thinking"].strip(), message
    assert "<think>" not in message["content"] and "</think>" not in message["content"]
    assert "</think>" not in message["thinking"]
    assert message["content"].strip()


def test_think_false_turns_it_off(http: httpx.Client, thinker: str) -> None:
    message = _chat(http, thinker, think=False)
    assert "thinking" not in message
    assert message["content"].strip()
    assert "<think>" not in message["content"]


def test_thinking_refused_for_a_model_without_it(http: httpx.Client) -> None:
    r = http.post("/api/chat", json={"model": DEFAULT_MODEL, "messages": QUESTION, "think": True})
    assert r.status_code == 400
    assert "does not support thinking" in r.json()["error"]


def test_streamed_thinking_is_its_own_field(http: httpx.Client, thinker: str) -> None:
    body = {"model": thinker, "messages": QUESTION, "options": GREEDY}
    chunks = []
    with http.stream("POST", "/api/chat", json=body) as r:
        assert r.status_code == 200
        chunks = [json.loads(line) for line in r.iter_lines() if line]
    thinking = [c["message"].get("thinking", "") for c in chunks]
    content = [c["message"]["content"] for c in chunks]
    assert sum(1 for t in thinking if t) >= 2  # streamed, not sent at the end
    first_answer = next(i for i, c in enumerate(content) if c)
    assert not any(thinking[first_answer:])
    whole = _chat(http, thinker)
    assert "".join(thinking) == whole["thinking"]
    assert "".join(content) == whole["content"]


def test_generate_thinking(http: httpx.Client, thinker: str) -> None:
    body = {"model": thinker, "prompt": "What is 5+5?", "stream": False, "options": GREEDY}
    reply = http.post("/api/generate", json=body).json()
    assert reply["thinking"].strip() and reply["response"].strip()
    off = http.post("/api/generate", json={**body, "think": False}).json()
    assert "thinking" not in off


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> openai.OpenAI:
    return server.openai_client()


def test_openai_reasoning_content(oai: openai.OpenAI, http: httpx.Client, thinker: str) -> None:
    native = _chat(http, thinker)
    reply = oai.chat.completions.create(
        model=thinker,
        messages=QUESTION,
        temperature=0,
        seed=42,
        max_tokens=40,  # type: ignore[arg-type]
    )
    message = reply.choices[0].message.model_dump()
    assert message["reasoning_content"] == native["thinking"]
    assert message["content"] == native["content"]
    stream = oai.chat.completions.create(
        model=thinker,
        messages=QUESTION,  # type: ignore[arg-type]
        temperature=0,
        seed=42,
        max_tokens=40,
        stream=True,
    )
    deltas = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == native["thinking"]
    assert "".join(d.get("content") or "" for d in deltas) == native["content"]
    off = oai.chat.completions.create(
        model=thinker,
        messages=QUESTION,  # type: ignore[arg-type]
        temperature=0,
        seed=42,
        max_tokens=40,
        reasoning_effort="none",  # type: ignore[arg-type]
    )
    assert not off.choices[0].message.model_dump().get("reasoning_content")


def test_responses_reasoning_item(oai: openai.OpenAI, http: httpx.Client, thinker: str) -> None:
    native = _chat(http, thinker)
    reply = oai.responses.create(
        model=thinker,
        input=QUESTION,
        temperature=0,
        max_output_tokens=40,  # type: ignore[arg-type]
    )
    kinds = [item.type for item in reply.output]
    assert kinds == ["reasoning", "message"], kinds
    reasoning = reply.output[0]
    assert reasoning.summary[0].text == native["thinking"]  # type: ignore[union-attr]
    assert reply.output_text == native["content"]
    events = list(
        oai.responses.create(
            model=thinker,
            input=QUESTION,  # type: ignore[arg-type]
            temperature=0,
            max_output_tokens=40,
            stream=True,
        )
    )
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == native["thinking"]
    assert events[-1].type == "response.completed"


def test_anthropic_thinking_blocks(server: ServerProcess, http: httpx.Client, thinker: str) -> None:
    native = _chat(http, thinker)
    client = anthropic.Anthropic(
        base_url=server.url,
        api_key="unused",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False, timeout=120),
    )
    message = client.messages.create(
        model=thinker,
        max_tokens=40,
        messages=QUESTION,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"temperature": 0, "seed": 42},
    )
    kinds = [block.type for block in message.content]
    assert kinds[0] == "thinking", kinds
    assert message.content[0].thinking == native["thinking"]  # type: ignore[union-attr]


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_format_applies_after_thinking(http: httpx.Client, thinker: str, seed: int | None) -> None:
    options = {**GREEDY, "num_predict": 96} if seed is None else {"seed": seed, "num_predict": 96}
    body = {
        "model": thinker,
        "messages": QUESTION,
        "format": PERSON,
        "stream": False,
        "options": options,
    }
    reply = http.post("/api/chat", json=body).json()
    message = reply["message"]
    assert message["thinking"].strip()
    if seed is not None and reply["done_reason"] == "length":
        assert not message["content"]  # the reasoning took every token: no answer yet
        return
    value = json.loads(message["content"])
    assert set(value) == {"name", "age"}, value


def test_forced_tool_call_after_thinking(oai: openai.OpenAI, thinker: str) -> None:
    reply = oai.chat.completions.create(
        model=thinker,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
        tool_choice="required",
        temperature=0,
        seed=42,
        max_tokens=160,
    )
    message = reply.choices[0].message
    assert message.model_dump().get("reasoning_content")
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert set(json.loads(message.tool_calls[0].function.arguments)) == {"city"}  # type: ignore[union-attr]
