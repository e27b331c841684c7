"""The /v1 OpenAI-compatible API, driven by the official ``openai`` client against a real server."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess

GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with server.openai_client() as c:
        yield c


@pytest.fixture
def async_client(server: ServerProcess) -> openai.AsyncOpenAI:
    return server.async_openai_client()


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert DEFAULT_MODEL in ids
    model = client.models.retrieve(DEFAULT_MODEL)
    assert model.id == DEFAULT_MODEL
    assert model.object == "model"
    assert model.owned_by == "library"
    assert model.created > 0


def test_retrieve_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model:1b")
    assert err.value.status_code == 404


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=12,
        **GREEDY,
    )
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_completion_is_deterministic_when_greedy(client: openai.OpenAI) -> None:
    def ask() -> str | None:
        return (
            client.chat.completions.create(
                model=DEFAULT_MODEL,
                messages=[{"role": "user", "content": "Name a colour."}],
                max_completion_tokens=10,
                **GREEDY,
            )
            .choices[0]
            .message.content
        )

    assert ask() == ask()


def test_chat_completion_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert all(f is None for f in finishes[:-1])
    usage = chunks[-1]
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.completion_tokens == 8


def test_stream_and_non_stream_agree(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "max_tokens": 10,
        **GREEDY,
    }
    whole = client.chat.completions.create(**args).choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**args, stream=True)
        if c.choices
    )
    assert whole == streamed


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
        max_tokens=60,
        **GREEDY,
    )
    data = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(data, schema)


def test_json_object_output_parses(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Reply with a JSON object with one key, colour."}],
        response_format={"type": "json_object"},
        max_tokens=160,
        **GREEDY,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_forced_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60,
        **GREEDY,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments.get("city"), str)


def test_forced_tool_call_streamed_then_answered(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=60,
        stream=True,
        **GREEDY,
    )
    chunks = [c for c in stream if c.choices]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    call_id = deltas[0].id
    arguments = deltas[0].function.arguments or "{}"
    follow_up = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 24 C"},
        ],
        max_tokens=20,
        **GREEDY,
    )
    assert follow_up.choices[0].message.content


def test_tool_choice_none_ignores_tools(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        max_tokens=8,
        **GREEDY,
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


def test_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        logprobs=True,
        top_logprobs=2,
        **GREEDY,
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    first = logprobs.content[0]
    assert first.logprob <= 0
    assert len(first.top_logprobs) == 2


def test_content_parts_are_joined(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        ],
        max_tokens=6,
        **GREEDY,
    )
    assert reply.choices[0].message.content


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=DEFAULT_MODEL, prompt="Once upon a time", max_tokens=6, echo=True, **GREEDY
    )
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith("Once upon a time")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=DEFAULT_MODEL, prompt="The sky is", max_tokens=5, stream=True, **GREEDY
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_float_and_base64_match_native(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    floats = client.embeddings.create(
        model=DEFAULT_MODEL, input=["hello world"], encoding_format="float"
    )
    # the SDK asks for base64 by default and decodes it itself
    decoded = client.embeddings.create(model=DEFAULT_MODEL, input="hello world")
    native = http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": "hello world"}).json()
    vector = native["embeddings"][0]
    assert floats.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert decoded.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert floats.usage.prompt_tokens > 0


def test_embeddings_raw_base64_and_tokens(http: httpx.Client) -> None:
    body = http.post(
        "/v1/embeddings",
        json={"model": DEFAULT_MODEL, "input": [[1, 2, 3]], "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(body["data"][0]["embedding"])
    vector = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(vector) > 0
    assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-3)
    assert body["usage"]["prompt_tokens"] == 3


def test_embeddings_dimensions(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(
        model=DEFAULT_MODEL, input="hi", dimensions=8, encoding_format="float"
    )
    assert len(reply.data[0].embedding) == 8


def test_unknown_model_is_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="missing-model", messages=[{"role": "user", "content": "x"}]
        )
    body = err.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found"


def test_bad_request_names_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "x"}], n=2
        )
    assert isinstance(err.value.body, dict)
    assert err.value.body["param"] == "n"
    assert err.value.body["type"] == "invalid_request_error"


def test_context_overflow_is_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "word " * 3000}]
        )
    assert isinstance(err.value.body, dict)
    assert err.value.body["code"] == "context_length_exceeded"


def test_image_url_refused_clearly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ],
        )
    assert "base64" in str(err.value)


def test_image_on_model_without_vision(client: openai.OpenAI) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" + (
        "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{pixel}"},
                        }
                    ],
                }
            ],
        )
    assert "vision" in str(err.value)


async def test_async_client_chat_and_stream(async_client: openai.AsyncOpenAI) -> None:
    reply = await async_client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=6,
        **GREEDY,
    )
    assert reply.choices[0].message.content
    stream = await async_client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=6,
        stream=True,
        **GREEDY,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reply.choices[0].message.content
    await async_client.close()


def test_sse_framing_ends_with_done(http: httpx.Client) -> None:
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 3,
            "stream": True,
        },
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert first["object"] == "chat.completion.chunk"
