"""Create a model from the default one, then talk to it: its SYSTEM, TEMPLATE, PARAMETER and
MESSAGE settings visibly change what it does (greedy decoding keeps it deterministic)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.modelfile.parser import parse_modelfile, to_create_request
from tests.support import DEFAULT_MODEL

pytestmark = pytest.mark.integration

GREEDY = {"temperature": 0, "seed": 7, "num_predict": 12}
QUESTION = "What is the capital of France?"


@pytest.fixture
def new_model(http: httpx.Client) -> Iterator[Callable[..., str]]:
    """Create models from the default one; each is deleted when the test ends."""
    names: list[str] = []

    def make(**settings: Any) -> str:
        name = f"nexus-test-create-{uuid.uuid4().hex[:8]}:latest"
        names.append(name)
        body = {"model": name, "from": DEFAULT_MODEL, "stream": False, **settings}
        r = http.post("/api/create", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "success"}
        return name

    yield make
    for name in names:
        http.request("DELETE", "/api/delete", json={"model": name})


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict)
    return body


def generate(http: httpx.Client, model: str, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "prompt": prompt, "stream": False, **extra}
    body.setdefault("options", GREEDY)
    return ok(http.post("/api/generate", json=body))


def chat(
    http: httpx.Client, model: str, messages: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {"model": model, "messages": messages, "stream": False, **extra}
    body.setdefault("options", GREEDY)
    return ok(http.post("/api/chat", json=body))


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------------------- PARAMETER


def test_parameter_num_predict_limits_the_answer(
    http: httpx.Client, new_model: Callable[..., str]
) -> None:
    name = new_model(parameters={"num_predict": 3, "temperature": 0})
    body = generate(http, name, "Tell me a long story about a dragon.", options={})
    assert (body["eval_count"], body["done_reason"]) == (3, "length")
    body = chat(http, name, user("Tell me a long story about a dragon."), options={})
    assert (body["eval_count"], body["done_reason"]) == (3, "length")
    # A request's options still win over the model's.
    body = generate(http, name, "Tell me a long story.", options={"num_predict": 5})
    assert (body["eval_count"], body["done_reason"]) == (5, "length")
    # The base model is not limited that way.
    base = generate(http, DEFAULT_MODEL, "Tell me a long story.", options={"num_predict": 9})
    assert base["eval_count"] == 9


def test_parameter_stop_ends_the_answer(http: httpx.Client, new_model: Callable[..., str]) -> None:
    prompt = "Count from 1 to 20, separated by commas: 1, 2, 3,"
    base = generate(http, DEFAULT_MODEL, prompt, raw=True, options={**GREEDY, "num_predict": 16})
    words = re.findall(r"\d+", base["response"])
    assert len(words) >= 3, base["response"]
    stop = words[1]
    name = new_model(parameters={"stop": [stop]})
    body = generate(http, name, prompt, raw=True, options={**GREEDY, "num_predict": 16})
    assert body["done_reason"] == "stop"
    assert body["response"] == base["response"][: base["response"].index(stop)]


# ----------------------------------------------------------------------------- TEMPLATE

QA_TEMPLATE = "Question: {{ .Prompt }}\nShort answer:"


def test_template_shapes_the_prompt(http: httpx.Client, new_model: Callable[..., str]) -> None:
    name = new_model(template=QA_TEMPLATE)
    templated = generate(http, name, QUESTION)
    # The same text sent raw to the base model: same prompt, same greedy answer.
    raw = generate(http, DEFAULT_MODEL, f"Question: {QUESTION}\nShort answer:", raw=True)
    assert templated["prompt_eval_count"] == raw["prompt_eval_count"]
    assert templated["response"] == raw["response"]
    # The base model renders its own (ChatML) template: a different prompt.
    base = generate(http, DEFAULT_MODEL, QUESTION)
    assert base["prompt_eval_count"] != templated["prompt_eval_count"]
    # Chat goes through the same template.
    chatted = chat(http, name, user(QUESTION))
    assert chatted["prompt_eval_count"] == templated["prompt_eval_count"]
    assert chatted["message"]["content"] == templated["response"]


def test_template_makes_the_model_continue_a_text(
    http: httpx.Client, new_model: Callable[..., str]
) -> None:
    prefix = "Once upon a time, in a small village by the sea,"
    name = new_model(template=prefix + "{{ .Prompt }}")
    own = generate(http, name, " there lived")
    raw = generate(http, DEFAULT_MODEL, prefix + " there lived", raw=True)
    assert own["response"] == raw["response"]
    assert own["prompt_eval_count"] == raw["prompt_eval_count"]
    assert own["response"].strip()


def test_template_that_does_not_parse_is_refused(http: httpx.Client) -> None:
    for stream in (False, True):
        name = f"nexus-test-badtemplate-{uuid.uuid4().hex[:8]}:latest"
        body = {
            "model": name,
            "from": DEFAULT_MODEL,
            "template": "{{ if .Prompt }}{{ .Prompt }}",
            "stream": stream,
        }
        r = http.post("/api/create", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert "template" in message and "{{end}}" in message, message
        r = http.post("/api/create", json={**body, "template": "{{ .Prompt "})
        assert r.status_code == 400, r.text
        assert "unclosed action" in r.json()["error"]
        r = http.post("/api/create", json={**body, "template": "{{ nosuchfunc .Prompt }}"})
        assert r.status_code == 400, r.text
        assert '"nosuchfunc" not defined' in r.json()["error"]
        names = [m["name"] for m in ok(http.get("/api/tags"))["models"]]
        assert name not in names


# ----------------------------------------------------------------------------- SYSTEM

PIRATE = "You are a pirate. Answer every question in pirate speak and start with 'Arr'."


def test_system_changes_the_answer(http: httpx.Client, new_model: Callable[..., str]) -> None:
    name = new_model(system=PIRATE)
    own = chat(http, name, user(QUESTION))
    base = chat(http, DEFAULT_MODEL, user(QUESTION))
    assert own["message"]["content"] != base["message"]["content"]
    # Exactly as if the request carried the system message itself.
    explicit = chat(http, DEFAULT_MODEL, [{"role": "system", "content": PIRATE}, *user(QUESTION)])
    assert own["message"]["content"] == explicit["message"]["content"]
    assert own["prompt_eval_count"] == explicit["prompt_eval_count"]
    # A system message in the request replaces the model's.
    replaced = chat(http, name, [{"role": "system", "content": "Be brief."}, *user(QUESTION)])
    brief = chat(http, DEFAULT_MODEL, [{"role": "system", "content": "Be brief."}, *user(QUESTION)])
    assert replaced["prompt_eval_count"] == brief["prompt_eval_count"]
    # Generate uses it too, unless the request gives its own.
    gen = generate(http, name, QUESTION)
    gen_explicit = generate(http, DEFAULT_MODEL, QUESTION, system=PIRATE)
    assert gen["response"] == gen_explicit["response"]
    assert gen["prompt_eval_count"] == gen_explicit["prompt_eval_count"]


def test_system_with_template(http: httpx.Client, new_model: Callable[..., str]) -> None:
    template = "{{ if .System }}[{{ .System }}]\n{{ end }}Q: {{ .Prompt }}\nA:"
    name = new_model(template=template, system="Answer in French.")
    body = generate(http, name, QUESTION)
    raw = generate(http, DEFAULT_MODEL, f"[Answer in French.]\nQ: {QUESTION}\nA:", raw=True)
    assert (body["prompt_eval_count"], body["response"]) == (
        raw["prompt_eval_count"],
        raw["response"],
    )


# ----------------------------------------------------------------------------- MESSAGE

SEED = [
    {"role": "user", "content": "My favourite colour is teal. Please remember it."},
    {"role": "assistant", "content": "Noted: your favourite colour is teal."},
]


def test_messages_are_put_before_the_chat(
    http: httpx.Client, new_model: Callable[..., str]
) -> None:
    name = new_model(messages=SEED)
    question = user("What is my favourite colour?")
    own = chat(http, name, question)
    base = chat(http, DEFAULT_MODEL, question)
    assert own["prompt_eval_count"] > base["prompt_eval_count"] + 15
    explicit = chat(http, DEFAULT_MODEL, [*SEED, *question])
    assert own["prompt_eval_count"] == explicit["prompt_eval_count"]
    assert own["message"]["content"] == explicit["message"]["content"]
    # Generate puts them in the prompt as well.
    gen = generate(http, name, "What is my favourite colour?")
    gen_base = generate(http, DEFAULT_MODEL, "What is my favourite colour?")
    assert gen["prompt_eval_count"] > gen_base["prompt_eval_count"] + 15


# ----------------------------------------------------------------------------- /api/show

SHOW_TEMPLATE = '{{ if .System }}<|system|>{{ .System }}\n{{ end }}<|user|>"{{ .Prompt }}"\n<|bot|>'
SHOW_PARAMS = {"num_predict": 4, "temperature": 0.5, "top_k": 7, "stop": ["<|user|>", "END"]}


def test_show_reports_the_settings_and_the_modelfile_parses_back(
    http: httpx.Client, new_model: Callable[..., str]
) -> None:
    system = "You are terse.\nNever use more than five words."
    name = new_model(template=SHOW_TEMPLATE, system=system, parameters=SHOW_PARAMS, messages=SEED)
    shown = ok(http.post("/api/show", json={"model": name}))
    assert shown["template"] == SHOW_TEMPLATE
    assert shown["system"] == system
    lines = shown["parameters"].splitlines()
    assert any(re.fullmatch(r"num_predict\s+4", line) for line in lines), lines
    assert any(re.fullmatch(r"top_k\s+7", line) for line in lines), lines
    assert any(re.fullmatch(r'stop\s+"<\|user\|>"', line) for line in lines), lines
    assert any(re.fullmatch(r'stop\s+"END"', line) for line in lines), lines
    assert [{"role": m["role"], "content": m["content"]} for m in shown["messages"]] == SEED

    modelfile = parse_modelfile(shown["modelfile"])
    source = modelfile.first("from")
    assert source is not None and Path(source.args).is_file()
    request = to_create_request(modelfile, "again", Path("/")).request
    assert request["template"] == SHOW_TEMPLATE
    assert request["system"] == system
    assert request["parameters"] == SHOW_PARAMS
    assert request["messages"] == SEED

    # What parsed back makes the same model again.
    settings = {k: request[k] for k in ("template", "system", "parameters", "messages")}
    again = new_model(**settings)
    shown_again = ok(http.post("/api/show", json={"model": again}))
    for key in ("template", "system", "parameters", "messages"):
        assert shown_again[key] == shown[key], key
    first = generate(http, name, QUESTION, options={})
    second = generate(http, again, QUESTION, options={})
    assert first["eval_count"] <= 4 and second["eval_count"] <= 4
    assert first["prompt_eval_count"] == second["prompt_eval_count"]


def test_created_model_keeps_the_base_weights(
    http: httpx.Client, new_model: Callable[..., str]
) -> None:
    name = new_model(system=PIRATE)
    shown = ok(http.post("/api/show", json={"model": name}))
    base = ok(http.post("/api/show", json={"model": DEFAULT_MODEL}))
    assert shown["details"] == base["details"]
    assert shown["model_info"]["general.architecture"] == base["model_info"]["general.architecture"]
    tags = {m["name"]: m for m in ok(http.get("/api/tags"))["models"]}
    assert name in tags
    assert json.dumps(tags[name]["details"]) == json.dumps(base["details"])
