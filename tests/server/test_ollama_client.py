"""The official ``ollama`` Python client against a real ``nexus serve``: sync and async."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ollama
import pytest

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 16}
PIRATE = "You are a pirate. Always answer like a pirate."


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
      city: The name of the city

    Returns:
      A short description of the weather
    """
    return f"It is sunny in {city}."


WEATHER_DICT = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The name of the city"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(server: Any) -> Iterator[ollama.Client]:
    c = ollama.Client(host=server.url, timeout=120, trust_env=False)
    yield c
    c.close()


@pytest.fixture
async def aclient(server: Any) -> AsyncIterator[ollama.AsyncClient]:
    c = ollama.AsyncClient(host=server.url, timeout=120, trust_env=False)
    yield c
    await c.close()


def norm(vector: Any) -> float:
    return math.sqrt(sum(x * x for x in vector))


def assert_done(response: Any, num_predict: int) -> None:
    assert response.done is True
    assert response.done_reason in ("stop", "length")
    assert response.total_duration and response.total_duration > 0
    assert response.load_duration is not None and response.load_duration >= 0
    assert response.prompt_eval_count and response.prompt_eval_count > 0
    assert response.eval_count and 0 < response.eval_count <= num_predict
    assert response.eval_duration and response.eval_duration > 0


def assert_tool_calls_well_formed(message: Any) -> None:
    assert message.role == "assistant"
    assert isinstance(message.content, str)
    for call in message.tool_calls or []:
        assert isinstance(call.function.name, str) and call.function.name
        assert isinstance(call.function.arguments, Mapping)


# ---- models ----------------------------------------------------------------------------


def test_list(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert MODEL in models, list(models)
    entry = models[MODEL]
    assert entry.size and entry.size > 50_000_000
    assert entry.digest and len(entry.digest) == 64
    assert isinstance(entry.modified_at, datetime) and entry.modified_at.tzinfo is not None
    assert entry.details is not None
    assert entry.details.format == "gguf"
    assert entry.details.family == "llama"
    assert entry.details.parameter_size
    assert entry.details.quantization_level


def test_show(client: ollama.Client) -> None:
    shown = client.show(MODEL)
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities is not None and "completion" in shown.capabilities
    assert shown.details is not None and shown.details.family == "llama"
    assert shown.template
    assert shown.modelfile and "FROM " in shown.modelfile
    assert isinstance(shown.modified_at, datetime)


def test_ps_after_generate(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2})
    running = {m.model: m for m in client.ps().models}
    assert MODEL in running, list(running)
    entry = running[MODEL]
    assert entry.size and entry.size > 50_000_000
    assert entry.size_vram is not None and entry.size_vram >= 0
    assert entry.context_length == 2048
    assert entry.expires_at is not None and entry.expires_at > datetime.now(UTC)
    assert entry.details is not None and entry.details.family == "llama"


# ---- generate / chat -------------------------------------------------------------------


def test_generate(client: ollama.Client) -> None:
    response = client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY)
    assert response.model == MODEL
    assert isinstance(response.response, str) and response.response.strip()
    assert_done(response, 16)
    assert response.context and all(isinstance(t, int) for t in response.context)
    assert isinstance(response.created_at, str)
    datetime.fromisoformat(response.created_at)


def test_generate_stream(client: ollama.Client) -> None:
    chunks = list(
        client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY, stream=True)
    )
    assert len(chunks) >= 3
    assert all(c.done is False for c in chunks[:-1])
    assert_done(chunks[-1], 16)
    text = "".join(c.response or "" for c in chunks)
    whole = client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY)
    assert text == whole.response


def test_chat(client: ollama.Client) -> None:
    response = client.chat(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Hello, my name is Alice."},
            {"role": "assistant", "content": "Hello Alice!"},
            {"role": "user", "content": "What is my name?"},
        ],
        options=GREEDY,
    )
    assert response.model == MODEL
    assert response.message.role == "assistant"
    assert isinstance(response.message.content, str) and response.message.content.strip()
    assert_done(response, 16)


def test_chat_stream(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    chunks = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert len(chunks) >= 3
    assert all(c.done is False for c in chunks[:-1])
    assert all(c.message.role == "assistant" for c in chunks)
    assert_done(chunks[-1], 16)
    text = "".join(c.message.content or "" for c in chunks)
    assert text.strip()
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    assert whole.message.content == text


@pytest.mark.parametrize("tool", [get_weather, WEATHER_DICT], ids=["function", "dict"])
def test_chat_with_tools(client: ollama.Client, tool: Any) -> None:
    response = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[tool],
        options={"temperature": 0, "num_predict": 16},
    )
    assert_done(response, 16)
    assert_tool_calls_well_formed(response.message)


def test_chat_with_tool_result(client: ollama.Client) -> None:
    response = client.chat(
        model=MODEL,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": get_weather("Paris"), "tool_name": "get_weather"},
        ],
        tools=[get_weather],
        options={"temperature": 0, "num_predict": 16},
    )
    assert_done(response, 16)
    assert_tool_calls_well_formed(response.message)


def test_chat_format_json(client: ollama.Client) -> None:
    response = client.chat(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": 'Reply with a JSON object with one key "answer" whose value is yes.',
            }
        ],
        format="json",
        options={"temperature": 0, "seed": 42, "num_predict": 60},
    )
    assert response.done_reason == "stop"
    assert isinstance(json.loads(response.message.content or ""), dict)


# ---- embeddings ------------------------------------------------------------------------


def test_embed(client: ollama.Client) -> None:
    response = client.embed(model=MODEL, input=["The sky is blue.", "Grass is green."])
    assert response.model == MODEL
    assert len(response.embeddings) == 2
    assert len(response.embeddings[0]) == len(response.embeddings[1]) > 100
    for vector in response.embeddings:
        assert norm(vector) == pytest.approx(1.0, abs=1e-4)
    short = client.embed(model=MODEL, input="The sky is blue.", dimensions=16)
    assert len(short.embeddings) == 1 and len(short.embeddings[0]) == 16


def test_embeddings(client: ollama.Client) -> None:
    response = client.embeddings(model=MODEL, prompt="The sky is blue.")
    vector = list(response.embedding)
    assert len(vector) > 100
    assert abs(norm(vector) - 1.0) > 1e-2


# ---- copy / delete / create ------------------------------------------------------------


def test_copy_and_delete(client: ollama.Client, scratch_name: Callable[[str], str]) -> None:
    name = scratch_name("client-copy")
    assert client.copy(MODEL, name).status == "success"
    assert name in {m.model for m in client.list().models}
    assert client.show(name).modelinfo["general.architecture"] == "llama"  # type: ignore[index]
    assert client.delete(name).status == "success"
    assert name not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as caught:
        client.show(name)
    assert caught.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete(name)
    assert caught.value.status_code == 404
    assert caught.value.error == f"model '{name}' not found"
    # The original is untouched.
    assert_done(client.generate(model=MODEL, prompt="Hi", options={"num_predict": 4}), 4)


def test_create_from_model(client: ollama.Client, scratch_name: Callable[[str], str]) -> None:
    name = scratch_name("client-create")
    result = client.create(
        model=name,
        from_=MODEL,
        system=PIRATE,
        parameters={"temperature": 0, "num_predict": 8},
    )
    assert result.status == "success"
    shown = client.show(name)
    assert shown.modelfile and f"SYSTEM {PIRATE}" in shown.modelfile
    assert shown.parameters and "num_predict" in shown.parameters
    assert_done(client.generate(model=name, prompt="Tell me a story"), 8)


def test_create_from_model_stream(
    client: ollama.Client, scratch_name: Callable[[str], str]
) -> None:
    name = scratch_name("client-create")
    progress = client.create(model=name, from_=MODEL, system=PIRATE, stream=True)
    statuses = [p.status for p in progress]
    assert statuses[-2:] == ["writing manifest", "success"]
    assert f"SYSTEM {PIRATE}" in (client.show(name).modelfile or "")


def test_create_from_blob(
    client: ollama.Client, default_gguf: Path, scratch_name: Callable[[str], str]
) -> None:
    digest = client.create_blob(default_gguf)
    assert digest.startswith("sha256:")
    name = scratch_name("client-files")
    assert client.create(model=name, files={default_gguf.name: digest}).status == "success"
    shown = client.show(name)
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "llama"
    assert name in {m.model for m in client.list().models}


def test_create_from_unknown_model(
    client: ollama.Client, scratch_name: Callable[[str], str]
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.create(model=scratch_name("client-bad"), from_="nexus-no-such-model")
    assert caught.value.status_code == 404


# ---- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["show", "generate", "generate_stream", "chat", "embed"])
def test_unknown_model_raises_404(client: ollama.Client, call: str) -> None:
    missing = "nexus-no-such-model"
    with pytest.raises(ollama.ResponseError) as caught:
        if call == "show":
            client.show(missing)
        elif call == "generate":
            client.generate(model=missing, prompt="Hi")
        elif call == "generate_stream":
            list(client.generate(model=missing, prompt="Hi", stream=True))
        elif call == "chat":
            client.chat(model=missing, messages=[{"role": "user", "content": "Hi"}])
        else:
            client.embed(model=missing, input="Hi")
    assert caught.value.status_code == 404
    assert caught.value.error == f"model '{missing}' not found"


# ---- async -----------------------------------------------------------------------------


async def test_async_list_and_show(aclient: ollama.AsyncClient) -> None:
    models = {m.model for m in (await aclient.list()).models}
    assert MODEL in models
    shown = await aclient.show(MODEL)
    assert shown.capabilities is not None and "completion" in shown.capabilities


async def test_async_generate_stream(aclient: ollama.AsyncClient) -> None:
    chunks = [
        c
        async for c in await aclient.generate(
            model=MODEL, prompt="Why is the sky blue?", options=GREEDY, stream=True
        )
    ]
    assert len(chunks) >= 3
    assert_done(chunks[-1], 16)
    whole = await aclient.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY)
    assert "".join(c.response or "" for c in chunks) == whole.response


async def test_async_chat_with_tools(aclient: ollama.AsyncClient) -> None:
    response = await aclient.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[get_weather],
        options={"temperature": 0, "num_predict": 24},
    )
    assert_done(response, 24)
    assert_tool_calls_well_formed(response.message)
    chunks = [
        c
        async for c in await aclient.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            options={"num_predict": 8},
            stream=True,
        )
    ]
    assert_done(chunks[-1], 8)


async def test_async_embed_and_ps(aclient: ollama.AsyncClient) -> None:
    response = await aclient.embed(model=MODEL, input="The sky is blue.")
    assert norm(response.embeddings[0]) == pytest.approx(1.0, abs=1e-4)
    running = {m.model for m in (await aclient.ps()).models}
    assert MODEL in running


async def test_async_unknown_model(aclient: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await aclient.chat(
            model="nexus-no-such-model", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 404
