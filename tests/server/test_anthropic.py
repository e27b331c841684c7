"""Anthropic's Messages API (``/v1/messages``), driven by the official ``anthropic`` SDK (sync and
async) and by raw HTTP against a real server and the real default model."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam

from tests.support import DEFAULT_MODEL, ServerProcess

pytestmark = pytest.mark.integration

#: Greedy sampling, so that asking twice gives the same answer. The SDK no longer has
#: arguments for the sampling fields, so they travel as extra body fields.
SAMPLING: dict[str, Any] = {"temperature": 0, "top_k": 1}
GREEDY: dict[str, Any] = {"extra_body": SAMPLING}
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The name of the city"}},
        "required": ["city"],
    },
}
FORCE_WEATHER: ToolChoiceToolParam = {"type": "tool", "name": "get_weather"}
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
    "RU5ErkJggg=="
)


def hello(text: str = "Say hello.") -> list[MessageParam]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.url,
        api_key="unused",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False, timeout=120),
    ) as c:
        yield c


@pytest.fixture
async def async_client(server: ServerProcess) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = anthropic.AsyncAnthropic(
        base_url=server.url,
        api_key="unused",
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(trust_env=False, timeout=120),
    )
    yield c
    await c.close()


def sse_events(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """A raw Messages stream as (event name, data) pairs, checking the framing on the way."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            assert name is not None, "data line without an event line"
            data = json.loads(line[len("data: ") :])
            assert data["type"] == name
            events.append((name, data))
            name = None
        else:
            assert line == ""
    return events


# ---- text ---------------------------------------------------------------------------------


def test_create_text(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=DEFAULT_MODEL, messages=hello(), max_tokens=16, **GREEDY)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == DEFAULT_MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= 16


def test_max_tokens_limits_output(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=DEFAULT_MODEL,
        messages=hello("Write a long story about a dragon."),
        max_tokens=3,
        **GREEDY,
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_system_as_string_or_text_blocks(client: anthropic.Anthropic) -> None:
    system = "You are a pirate. Always answer like a pirate."
    plain = client.messages.create(
        model=DEFAULT_MODEL, system=system, messages=hello(), max_tokens=12, **GREEDY
    )
    blocks = client.messages.create(
        model=DEFAULT_MODEL,
        system=[{"type": "text", "text": system}],
        messages=hello(),
        max_tokens=12,
        **GREEDY,
    )
    bare = client.messages.create(model=DEFAULT_MODEL, messages=hello(), max_tokens=12, **GREEDY)
    assert plain.content == blocks.content
    assert plain.usage.input_tokens == blocks.usage.input_tokens
    assert plain.usage.input_tokens != bare.usage.input_tokens  # it replaced the default


def test_text_blocks_and_multi_turn(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=DEFAULT_MODEL,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "My name is Ada."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada!"}]},
            {"role": "user", "content": "What is my name?"},
        ],
        max_tokens=12,
        **GREEDY,
    )
    assert message.content[0].type == "text"
    assert message.content[0].text


def test_stop_sequence_is_reported(client: anthropic.Anthropic) -> None:
    prompt = hello("Name five fruits.")
    first = client.messages.create(model=DEFAULT_MODEL, messages=prompt, max_tokens=24, **GREEDY)
    assert first.content[0].type == "text"
    text = first.content[0].text
    # A stop sequence from the middle of the greedy answer: asked again, the model says the
    # same up to its first occurrence and stops there.
    candidates = [text[i : i + 3] for i in range(len(text) // 2, len(text) - 3)]
    stop = next(c for c in candidates if c.strip() == c and text.index(c) > 0)
    cut = text.index(stop)
    second = client.messages.create(
        model=DEFAULT_MODEL, messages=prompt, max_tokens=24, stop_sequences=[stop], **GREEDY
    )
    assert second.stop_reason == "stop_sequence"
    assert second.stop_sequence == stop
    assert second.content[0].type == "text"
    assert second.content[0].text == text[:cut]


def test_stream_text(client: anthropic.Anthropic) -> None:
    reference = client.messages.create(
        model=DEFAULT_MODEL, messages=hello(), max_tokens=16, **GREEDY
    )
    with client.messages.stream(
        model=DEFAULT_MODEL, messages=hello(), max_tokens=16, **GREEDY
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces
    assert final.content[0].type == "text"
    assert "".join(pieces) == final.content[0].text
    assert reference.content[0].type == "text"
    assert final.content[0].text == reference.content[0].text
    assert final.stop_reason == reference.stop_reason
    assert final.usage.input_tokens == reference.usage.input_tokens
    assert final.usage.output_tokens == reference.usage.output_tokens


def test_raw_stream_event_order(http: httpx.Client) -> None:
    body = {"model": DEFAULT_MODEL, "messages": hello(), "max_tokens": 5, "stream": True}
    with http.stream("POST", "/v1/messages", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 0
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(data["delta"]["type"] == "text_delta" for _, data in events[3:-3])
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 5


# ---- tools --------------------------------------------------------------------------------


def test_forced_tool_round_trip(client: anthropic.Anthropic) -> None:
    question = hello("What is the weather in Paris?")
    first = client.messages.create(
        model=DEFAULT_MODEL,
        messages=question,
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
        max_tokens=64,
        **GREEDY,
    )
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.id.startswith("toolu_")
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    assert isinstance(use.input.get("city"), str)
    answer = client.messages.create(
        model=DEFAULT_MODEL,
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 24 C"}
                ],
            },
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},  # an answer in words, whatever the model's numerics
        max_tokens=24,
        **GREEDY,
    )
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert answer.content[0].type == "text"
    assert answer.content[0].text


def test_tool_result_as_blocks_and_error(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=DEFAULT_MODEL,
        messages=[
            {"role": "user", "content": "What is the weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "service unavailable"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Tell me what went wrong."},
                ],
            },
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},
        max_tokens=16,
        **GREEDY,
    )
    assert message.content[0].type == "text"
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_any_tool_choice_forces_a_call(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=DEFAULT_MODEL,
        messages=hello("Hi"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        max_tokens=64,
        **GREEDY,
    )
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["tool_use"]


def test_tool_choice_none_gives_text(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=DEFAULT_MODEL,
        messages=hello("Hi"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},
        max_tokens=12,
        **GREEDY,
    )
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_stream_forced_tool(client: anthropic.Anthropic) -> None:
    deltas: list[str] = []
    with client.messages.stream(
        model=DEFAULT_MODEL,
        messages=hello("What is the weather in Rome?"),
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
        max_tokens=64,
        **GREEDY,
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                deltas.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert deltas
    assert final.stop_reason == "tool_use"
    uses = [block for block in final.content if block.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].id.startswith("toolu_")
    assert uses[0].input == json.loads("".join(deltas))
    assert isinstance(uses[0].input, dict)
    assert isinstance(uses[0].input.get("city"), str)


def test_raw_stream_of_tool_use(http: httpx.Client) -> None:
    body = {
        "model": DEFAULT_MODEL,
        "messages": hello("Weather in Lima?"),
        "tools": [WEATHER_TOOL],
        "tool_choice": FORCE_WEATHER,
        "max_tokens": 64,
        "stream": True,
        **SAMPLING,
    }
    with http.stream("POST", "/v1/messages", json=body) as resp:
        events = sse_events(resp)
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["tool_use"]
    block = starts[0]["content_block"]
    assert block["name"] == "get_weather"
    assert block["input"] == {}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


# ---- other endpoints and extras -----------------------------------------------------------


def test_count_tokens_matches_usage(client: anthropic.Anthropic) -> None:
    system = "Answer briefly."
    counted = client.messages.count_tokens(model=DEFAULT_MODEL, system=system, messages=hello())
    message = client.messages.create(
        model=DEFAULT_MODEL, system=system, messages=hello(), max_tokens=4, **GREEDY
    )
    assert counted.input_tokens == message.usage.input_tokens
    longer = client.messages.count_tokens(
        model=DEFAULT_MODEL, system=system, messages=hello("Say hello, twice, please.")
    )
    assert longer.input_tokens > counted.input_tokens


def test_ollama_extras_and_metadata_are_accepted(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/messages",
        json={
            "model": DEFAULT_MODEL,
            "messages": hello(),
            "max_tokens": 4,
            "metadata": {"user_id": "someone"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "keep_alive": "5m",
            "options": {"seed": 1, "num_predict": 100},
            "unknown_field": True,
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["output_tokens"] <= 4  # max_tokens wins over options.num_predict
    assert [block["type"] for block in body["content"]] == ["text"]


async def test_async_create_and_stream(async_client: anthropic.AsyncAnthropic) -> None:
    message = await async_client.messages.create(
        model=DEFAULT_MODEL, messages=hello("Hi"), max_tokens=8, **GREEDY
    )
    assert message.content[0].type == "text"
    async with async_client.messages.stream(
        model=DEFAULT_MODEL, messages=hello("Hi"), max_tokens=8, **GREEDY
    ) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == message.content[0].text
    assert final.content[0].type == "text"
    assert final.content[0].text == message.content[0].text
    assert final.stop_reason == message.stop_reason


async def test_async_forced_tool(async_client: anthropic.AsyncAnthropic) -> None:
    message = await async_client.messages.create(
        model=DEFAULT_MODEL,
        messages=hello("Weather in Kyoto?"),
        tools=[WEATHER_TOOL],
        tool_choice=FORCE_WEATHER,
        max_tokens=64,
        **GREEDY,
    )
    assert message.stop_reason == "tool_use"
    assert message.content[-1].type == "tool_use"
    assert isinstance(message.content[-1].input, dict)


# ---- errors -------------------------------------------------------------------------------


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="no-such-model:1b", messages=hello(), max_tokens=4)
    assert err.value.status_code == 404
    assert isinstance(err.value.body, dict)
    assert err.value.body["error"]["type"] == "not_found_error"


def test_unknown_model_when_streaming_keeps_its_status(client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.NotFoundError),
        client.messages.stream(model="no-such-model:1b", messages=hello(), max_tokens=4) as s,
    ):
        s.get_final_message()


def test_missing_max_tokens_is_bad_request(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(  # type: ignore[call-overload]
            model=DEFAULT_MODEL, messages=hello(), max_tokens=anthropic.omit
        )
    assert err.value.status_code == 400
    assert "max_tokens" in str(err.value)


def test_error_body_shape(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/messages",
        json={"model": "no-such-model:1b", "messages": hello(), "max_tokens": 4},
    )
    assert resp.status_code == 404
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    bad = http.post("/v1/messages", json={"model": DEFAULT_MODEL, "messages": hello()})
    assert bad.status_code == 400
    assert bad.json()["type"] == "error"
    assert bad.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
        {"max_tokens": 0},
        {"tool_choice": {"type": "tool"}, "tools": [WEATHER_TOOL]},
        {"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER_TOOL]},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
    ],
)
def test_invalid_requests_are_bad_requests(http: httpx.Client, body: dict[str, Any]) -> None:
    full = {"model": DEFAULT_MODEL, "messages": hello(), "max_tokens": 4, **body}
    resp = http.post("/v1/messages", json=full)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_image_url_is_refused_clearly(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=4,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.png"},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        )
    assert "base64" in str(err.value)


def test_base64_image_reaches_the_model(client: anthropic.Anthropic) -> None:
    assert base64.b64decode(PIXEL)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=4,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        }
                    ],
                }
            ],
        )
    assert "vision" in str(err.value)  # the default model cannot see; the image got that far


def test_context_overflow_is_bad_request(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=DEFAULT_MODEL, messages=hello("word " * 3000), max_tokens=4)
    assert isinstance(err.value.body, dict)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "context" in err.value.body["error"]["message"]
