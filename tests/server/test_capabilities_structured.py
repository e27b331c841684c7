"""Structured output and forced tool calls follow Ollama's grammar semantics on every API.

The default model greedy, then several seeds at the default temperature: undeclared keys are
refused unless ``additionalProperties`` allows them, and whitespace between tokens is bounded.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SEEDS = (1, 2, 3)
#: Ollama's converter lets at most two newlines and 20 spaces or tabs through between tokens.
LONG_WHITESPACE = re.compile(r"\n{3,}|[ \t]{21,}|\n[ \t]*\n[ \t]*\n")
PROMPT = "Describe a person with a name, an age, an occupation and a city, as JSON."


def _options(seed: int | None) -> dict[str, Any]:
    """Greedy for ``None``, else the model's default temperature with that seed."""
    return {"temperature": 0, "seed": 42} if seed is None else {"seed": seed}


def _person(text: str) -> dict[str, Any]:
    assert not LONG_WHITESPACE.search(text), repr(text)
    value = json.loads(text)
    assert isinstance(value, dict)
    assert set(value) == {"name", "age"}, value
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    return value


@pytest.mark.parametrize("seed", [None, *SEEDS])
def test_native_chat_format_closes_after_declared_keys(
    http: httpx.Client, seed: int | None
) -> None:
    options = {**_options(seed), "num_predict": 48 if seed is None else 96}
    r = http.post(
        "/api/chat",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "format": PERSON,
            "stream": False,
            "options": options,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["done_reason"] == "stop", body
    _person(body["message"]["content"])


@pytest.mark.parametrize("seed", [None, *SEEDS])
def test_native_generate_format(http: httpx.Client, seed: int | None) -> None:
    r = http.post(
        "/api/generate",
        json={
            "model": DEFAULT_MODEL,
            "prompt": PROMPT,
            "format": PERSON,
            "stream": False,
            "options": {**_options(seed), "num_predict": 96},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["done_reason"] == "stop"
    _person(r.json()["response"])


def test_additional_properties_true_allows_other_keys(http: httpx.Client) -> None:
    schema = {**PERSON, "additionalProperties": True}
    r = http.post(
        "/api/chat",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "format": schema,
            "stream": False,
            "options": {"temperature": 0, "seed": 42, "num_predict": 160},
        },
    )
    assert r.status_code == 200, r.text
    content = r.json()["message"]["content"]
    # the model goes on past the declared keys, which the closed schema above forbids
    assert content.startswith("{")
    assert re.search(r'"(?!name"|age")[^"]+"\s*:', content), content


def test_format_json_is_an_object(http: httpx.Client) -> None:
    r = http.post(
        "/api/generate",
        json={
            "model": DEFAULT_MODEL,
            "prompt": "List three colours as JSON.",
            "format": "json",
            "stream": False,
            "options": {"temperature": 0, "seed": 42, "num_predict": 64},
        },
    )
    assert r.status_code == 200, r.text
    text = r.json()["response"]
    assert text.startswith("{")
    assert not LONG_WHITESPACE.search(text)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "frobnicate"}}},
        # valid JSON Schema, but llama.cpp's converter follows only references inside it
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
    ],
)
def test_invalid_schema_is_a_400(http: httpx.Client, schema: dict[str, Any]) -> None:
    r = http.post(
        "/api/chat",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "format": schema,
            "stream": False,
        },
    )
    assert r.status_code == 400, r.text
    assert "schema" in r.json()["error"].lower()


def test_pattern_schema_still_constrains(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
        "required": ["code"],
    }
    r = http.post(
        "/api/chat",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "Give an airport code as JSON."}],
            "format": schema,
            "stream": False,
            "options": {"temperature": 0, "seed": 42, "num_predict": 48},
        },
    )
    assert r.status_code == 200, r.text
    value = json.loads(r.json()["message"]["content"])
    assert set(value) == {"code"} and re.fullmatch("[A-Z]{3}", value["code"])


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> openai.OpenAI:
    return server.openai_client()


def _sampling(seed: int | None) -> dict[str, Any]:
    return {"temperature": 0, "seed": 42} if seed is None else {"seed": seed}


@pytest.mark.parametrize("seed", [None, *SEEDS])
def test_openai_forced_tool_call_without_additional_properties(
    oai: openai.OpenAI, seed: int | None
) -> None:
    reply = oai.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=96,
        **_sampling(seed),
    )
    message = reply.choices[0].message
    assert message.tool_calls, message
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert "city" in arguments and set(arguments) <= {"city", "unit"}, arguments
    assert not message.content


@pytest.mark.parametrize("seed", [None, *SEEDS])
def test_openai_json_schema_response(oai: openai.OpenAI, seed: int | None) -> None:
    reply = oai.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON},
        },
        max_tokens=96,
        **_sampling(seed),
    )
    assert reply.choices[0].finish_reason == "stop"
    _person(reply.choices[0].message.content or "")


@pytest.mark.parametrize("seed", [None, 1])
def test_responses_text_format(oai: openai.OpenAI, seed: int | None) -> None:
    reply = oai.responses.create(
        model=DEFAULT_MODEL,
        input=PROMPT,
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
        max_output_tokens=96,
        **({"temperature": 0} if seed is None else {}),
    )
    _person(reply.output_text)


@pytest.mark.parametrize("seed", [None, 1])
def test_responses_forced_tool_call(oai: openai.OpenAI, seed: int | None) -> None:
    reply = oai.responses.create(
        model=DEFAULT_MODEL,
        input="What is the weather in Paris?",
        tools=[{"type": "function", **TOOL["function"]}],  # type: ignore[list-item]
        tool_choice="required",
        max_output_tokens=96,
        **({"temperature": 0} if seed is None else {}),
    )
    calls = [item for item in reply.output if item.type == "function_call"]
    assert calls, reply.output
    arguments = json.loads(calls[0].arguments)  # type: ignore[union-attr]
    assert "city" in arguments and set(arguments) <= {"city", "unit"}


def test_anthropic_forced_tool(server: ServerProcess) -> None:
    client = anthropic.Anthropic(
        base_url=server.url,
        api_key="unused",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False, timeout=120),
    )
    for temperature in (0.0, 1.0):
        message = client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=96,
            extra_body={"temperature": temperature},
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[
                {
                    "name": "get_weather",
                    "description": "Get the current weather for a city",
                    "input_schema": TOOL["function"]["parameters"],  # type: ignore[index]
                }
            ],
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        uses = [block for block in message.content if block.type == "tool_use"]
        assert uses, message.content
        assert "city" in uses[0].input and set(uses[0].input) <= {"city", "unit"}  # type: ignore[arg-type]
