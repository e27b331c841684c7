"""The /v1/responses API, driven by the official ``openai`` client against a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from nexus.api.responses import ResponsesRequest
from nexus.compat import responses as rs
from nexus.errors import RunnerFailed
from nexus.server.responses import _sse
from tests.support import DEFAULT_MODEL, ServerProcess

pytestmark = pytest.mark.integration

GREEDY: dict[str, Any] = {"temperature": 0}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
FORCE_WEATHER: dict[str, Any] = {"type": "function", "name": "get_weather"}
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with server.openai_client() as c:
        yield c


@pytest.fixture
async def async_client(server: ServerProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    c = server.async_openai_client()
    yield c
    await c.close()


def post_events(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed request sent raw; every event checked for its SSE framing and wire shape."""
    with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        frames = resp.read().decode().split("\n\n")
    assert frames[-1] == ""
    events = []
    for frame in frames[:-1]:
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), frame
        event = json.loads(data[len("data: ") :])
        assert event["type"] == name[len("event: ") :]
        EVENTS.validate_python(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


# ---- text ---------------------------------------------------------------------------------


def test_string_input(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model=DEFAULT_MODEL, input="Say hello.", max_output_tokens=16, **GREEDY
    )
    assert resp.id.startswith("resp_")
    assert resp.object == "response"
    assert resp.model == DEFAULT_MODEL
    assert resp.created_at > 0
    assert resp.status in ("completed", "incomplete")
    assert resp.output_text
    assert len(resp.output) == 1
    item = resp.output[0]
    assert item.type == "message"
    assert item.id.startswith("msg_")
    assert item.role == "assistant"
    assert item.content[0].type == "output_text"
    assert item.content[0].text == resp.output_text
    assert resp.usage is not None
    assert resp.usage.input_tokens > 0
    assert 0 < resp.usage.output_tokens <= 16
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.max_output_tokens == 16
    assert resp.temperature == 0
    assert resp.error is None


def test_wire_shape_validates(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/responses",
        json={"model": DEFAULT_MODEL, "input": "Hi", "max_output_tokens": 4, "temperature": 0},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    Response.model_validate(body)
    assert body["output"][0]["content"][0]["annotations"] == []
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 0
    assert body["metadata"] == {}
    assert body["text"] == {"format": {"type": "text"}}
    assert body["tool_choice"] == "auto"
    assert body["tools"] == []
    assert body["parallel_tool_calls"] is True
    assert body["store"] is False
    assert body["incomplete_details"] in (None, {"reason": "max_output_tokens"})


def test_message_list_and_instructions(client: openai.OpenAI) -> None:
    history: list[Any] = [
        {"role": "user", "content": "My name is Ada."},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Nice to meet you, Ada."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What is my name?"}],
        },
    ]
    pirate = "You are a pirate. Always answer like a pirate."
    plain = client.responses.create(
        model=DEFAULT_MODEL, input=history, max_output_tokens=12, **GREEDY
    )
    instructed = client.responses.create(
        model=DEFAULT_MODEL, input=history, instructions=pirate, max_output_tokens=12, **GREEDY
    )
    assert plain.output_text and instructed.output_text
    assert instructed.instructions == pirate
    assert plain.instructions is None
    # The instructions go into the prompt as a leading system message: longer instructions
    # make a longer prompt, and a developer message says the same thing.
    longer = client.responses.create(
        model=DEFAULT_MODEL,
        input=history,
        instructions=pirate + " Never use more than ten words.",
        max_output_tokens=12,
        **GREEDY,
    )
    developer = client.responses.create(
        model=DEFAULT_MODEL,
        input=[{"role": "developer", "content": pirate}, *history],
        max_output_tokens=12,
        **GREEDY,
    )
    assert instructed.usage is not None
    assert longer.usage is not None and developer.usage is not None
    assert longer.usage.input_tokens > instructed.usage.input_tokens
    assert developer.usage.input_tokens == instructed.usage.input_tokens


def test_stream_events_in_order(client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model=DEFAULT_MODEL, input="Tell me about the sea.", max_output_tokens=20, stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    last = "response.incomplete" if kinds[-1] == "response.incomplete" else "response.completed"
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        last,
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created = events[0]
    assert created.type == "response.created"
    assert created.response.status == "in_progress"
    assert created.response.output == []
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-4]
    assert done.type == "response.output_text.done"
    assert done.text == text
    final = events[-1]
    assert final.type in ("response.completed", "response.incomplete")
    assert final.response.id == created.response.id
    assert final.response.output_text == text
    assert final.response.usage is not None
    assert final.response.usage.output_tokens > 0
    added = events[2]
    assert added.type == "response.output_item.added"
    assert added.item.status == "in_progress"
    assert added.item.id == final.response.output[0].id


def test_stream_and_non_stream_agree(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": DEFAULT_MODEL, "input": "Count to five.", **GREEDY}
    whole = client.responses.create(**args, max_output_tokens=16)
    stream = client.responses.create(**args, max_output_tokens=16, stream=True)
    streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert whole.output_text == streamed


def test_sse_framing(http: httpx.Client) -> None:
    events = post_events(http, {"model": DEFAULT_MODEL, "input": "Hi", "max_output_tokens": 3})
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    final = events[-1]["response"]
    assert final["status"] == events[-1]["type"].removeprefix("response.")
    assert final["completed_at"] >= final["created_at"]


async def test_async_client_create_and_stream(async_client: openai.AsyncOpenAI) -> None:
    resp = await async_client.responses.create(
        model=DEFAULT_MODEL, input="Hi", max_output_tokens=8, **GREEDY
    )
    assert resp.output_text
    stream = await async_client.responses.create(
        model=DEFAULT_MODEL, input="Hi", max_output_tokens=8, stream=True, **GREEDY
    )
    events = [e async for e in stream]
    assert events[-1].type in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == resp.output_text


def test_max_output_tokens_incomplete(client: openai.OpenAI, http: httpx.Client) -> None:
    prompt = "Write a long story about a dragon and a knight."
    resp = client.responses.create(model=DEFAULT_MODEL, input=prompt, max_output_tokens=2, **GREEDY)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 2
    assert resp.output[0].type == "message"
    assert resp.output[0].status == "incomplete"
    events = post_events(
        http, {"model": DEFAULT_MODEL, "input": prompt, "max_output_tokens": 2, "temperature": 0}
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_logprobs_included(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model=DEFAULT_MODEL,
        input="Hi",
        max_output_tokens=4,
        include=["message.output_text.logprobs"],
        top_logprobs=2,
        **GREEDY,
    )
    part = resp.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text"
    assert part.logprobs
    assert "".join(lp.token for lp in part.logprobs) == part.text
    for lp in part.logprobs:
        assert lp.logprob <= 0
        assert 1 <= len(lp.top_logprobs) <= 2


# ---- structured output --------------------------------------------------------------------


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    resp = client.responses.create(
        model=DEFAULT_MODEL,
        input="Describe a person as JSON.",
        text={
            "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
        },
        max_output_tokens=60,
        **GREEDY,
    )
    assert resp.status == "completed"
    jsonschema.validate(json.loads(resp.output_text), schema)
    assert resp.text is not None and resp.text.format is not None
    assert resp.text.format.type == "json_schema"


def test_json_object_output_parses(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model=DEFAULT_MODEL,
        input="Reply with a JSON object with one key, colour.",
        text={"format": {"type": "json_object"}},
        max_output_tokens=160,
        **GREEDY,
    )
    assert resp.status == "completed"
    assert isinstance(json.loads(resp.output_text), dict)


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=20)
    country: str = pydantic.Field(max_length=20)


def test_sdk_parse_helper(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(
        model=DEFAULT_MODEL,
        input="Name a city and its country.",
        text_format=City,
        max_output_tokens=60,
        **GREEDY,
    )
    assert isinstance(parsed.output_parsed, City)


def test_sdk_stream_helper(client: openai.OpenAI) -> None:
    # The helper's final response is the one of ``response.completed``: leave room to finish.
    with client.responses.stream(
        model=DEFAULT_MODEL, input="Hi", max_output_tokens=64, **GREEDY
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas)
    with client.responses.stream(
        model=DEFAULT_MODEL,
        input="Weather in Oslo?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice=FORCE_WEATHER,  # type: ignore[arg-type]
        max_output_tokens=60,
        **GREEDY,
    ) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call"
    assert isinstance(json.loads(call.arguments), dict)


# ---- function calls -----------------------------------------------------------------------


def test_forced_function_call_then_its_output(client: openai.OpenAI) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    resp = client.responses.create(
        model=DEFAULT_MODEL,
        input=[question],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice=FORCE_WEATHER,  # type: ignore[arg-type]
        max_output_tokens=60,
        **GREEDY,
    )
    assert resp.status == "completed"
    calls = [item for item in resp.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.id is not None and call.id.startswith("fc_")
    assert call.call_id.startswith("call_")
    assert call.name == "get_weather"
    assert call.status == "completed"
    arguments = json.loads(call.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["parameters"])
    assert resp.tool_choice.type == "function"  # type: ignore[union-attr]
    assert resp.tools[0].name == "get_weather"  # type: ignore[union-attr]

    # The output items go back as they came, followed by the function's result.
    history: list[Any] = [question, *resp.output]
    without_result = client.responses.create(
        model=DEFAULT_MODEL,
        input=history,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        max_output_tokens=1,
        **GREEDY,
    )
    history.append(
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}
    )
    answer = client.responses.create(
        model=DEFAULT_MODEL,
        input=history,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        max_output_tokens=20,
        **GREEDY,
    )
    assert answer.output_text
    assert [item.type for item in answer.output] == ["message"]
    assert answer.usage is not None and without_result.usage is not None
    assert answer.usage.input_tokens > without_result.usage.input_tokens


def test_function_call_output_as_content_parts(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model=DEFAULT_MODEL,
        input=[
            {"role": "user", "content": "Weather in Rome?"},
            {
                "type": "function_call",
                "call_id": "call_abc",
                "name": "get_weather",
                "arguments": '{"city": "Rome"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_abc",
                "output": [{"type": "input_text", "text": "Rain, 12 C"}],
            },
        ],
        max_output_tokens=8,
        **GREEDY,
    )
    assert resp.output_text


def test_forced_function_call_streamed(http: httpx.Client) -> None:
    events = post_events(
        http,
        {
            "model": DEFAULT_MODEL,
            "input": "Weather in Rome?",
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "max_output_tokens": 60,
            "temperature": 0,
        },
    )
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, delta, done, item_done, completed = events[2:]
    assert added["item"]["type"] == "function_call"
    assert added["item"]["status"] == "in_progress"
    assert added["item"]["name"] == "get_weather"
    assert delta["item_id"] == done["item_id"] == added["item"]["id"]
    assert delta["delta"] == done["arguments"]
    assert isinstance(json.loads(done["arguments"]), dict)
    assert item_done["item"]["status"] == "completed"
    assert item_done["item"]["arguments"] == done["arguments"]
    assert completed["response"]["output"] == [item_done["item"]]


# ---- errors -------------------------------------------------------------------------------


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as err:
            client.responses.create(model="missing-model", input="x", stream=stream)
        assert isinstance(err.value.body, dict)
        assert err.value.body["code"] == "model_not_found"


def test_bad_input_type_is_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=DEFAULT_MODEL, input=42)  # type: ignore[arg-type]
    assert isinstance(err.value.body, dict)
    assert err.value.body["param"] == "input"
    assert err.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": [{"type": "bogus"}]}, "input", "bogus"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input", "role"),
        ({"input": []}, "input", "empty"),
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id", "stored"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools", "web_search"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type", "yaml"),
        ({"input": "x", "tool_choice": "sometimes"}, "tool_choice", "tool_choice"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens", "max_output_tokens"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1"}]},
            "input",
            "JSON object",
        ),
    ],
)
def test_bad_requests_name_their_param(
    http: httpx.Client, body: dict[str, Any], param: str, words: str
) -> None:
    reply = http.post("/v1/responses", json={"model": DEFAULT_MODEL, **body})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_context_overflow_is_context_length_exceeded(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=DEFAULT_MODEL, input="word " * 3000, stream=stream)
        assert isinstance(err.value.body, dict)
        assert err.value.body["code"] == "context_length_exceeded"


def test_images(client: openai.OpenAI) -> None:
    pixel = (  # a 1x1 PNG
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
        "DwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    for url, words in (
        ("https://example.com/a.png", "base64"),
        (f"data:image/png;base64,{pixel}", "vision"),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(
                model=DEFAULT_MODEL,
                input=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "What is this?"},
                            {"type": "input_image", "image_url": url, "detail": "auto"},
                        ],
                    }
                ],
            )
        assert words in str(err.value)


# ---- without a server: translation and in-band failures ---------------------------------


def test_input_items_become_native_messages() -> None:
    req = ResponsesRequest.model_validate(
        {
            "model": DEFAULT_MODEL,
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": ""},
                {"type": "message", "role": "assistant", "content": "Checking."},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
                {"type": "reasoning", "summary": []},
            ],
            "max_output_tokens": 7,
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "text": {"format": {"type": "json_object"}},
            "reasoning": {"effort": "none"},
            "truncation": "auto",
        }
    )
    native, choice = rs.to_native(req)
    assert choice == "required"
    assert [(m.role, m.content) for m in native.messages] == [
        ("system", "Be brief."),
        ("system", "Answer in English."),
        ("user", "Weather?"),
        ("assistant", "Checking."),
        ("tool", "one"),
        ("tool", "two"),
    ]
    calls = native.messages[3].tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("c1", "f", {"a": 1}),
        ("c2", "g", {}),
    ]
    assert [m.tool_name for m in native.messages[4:]] == ["f", "g"]
    assert [m.tool_call_id for m in native.messages[4:]] == ["c1", "c2"]
    assert native.options is not None and native.options["num_predict"] == 7
    assert native.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["parameters"],
                "description": WEATHER_TOOL["description"],
            },
        }
    ]
    assert native.format == "json"
    assert native.think is False
    assert native.truncate is True


async def test_failure_after_start_is_reported_in_band() -> None:
    req = ResponsesRequest.model_validate({"model": DEFAULT_MODEL, "input": "Hi", "stream": True})

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        yield {"message": {"role": "assistant", "content": "Hel"}, "done": False}
        raise RunnerFailed("llama runner process has terminated")

    stream = rs.ResponseStream(req)
    frames = [f async for f in _sse(stream, stream.events(chunks()))]
    events = [json.loads(f.decode().split("\ndata: ", 1)[1]) for f in frames]
    for event in events:
        EVENTS.validate_python(event)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "error",
        "response.failed",
    ]
    assert events[-2]["message"] == "llama runner process has terminated"
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Hel"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_text_then_call_are_separate_items() -> None:
    req = ResponsesRequest.model_validate({"model": DEFAULT_MODEL, "input": "Hi"})
    call = {"id": "call_1", "function": {"name": "f", "arguments": {"x": 1}}}

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        yield {"message": {"role": "assistant", "content": "Let me look."}, "done": False}
        yield {
            "message": {"role": "assistant", "content": "", "tool_calls": [call]},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": 9,
        }

    stream = rs.ResponseStream(req)
    events = [e async for e in stream.events(chunks())]
    for event in events:
        EVENTS.validate_python(event)
    assert [(e["type"], e.get("output_index")) for e in events[2:]] == [
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.delta", 0),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.completed", None),
    ]
    final = Response.model_validate(stream.response)
    assert final.output_text == "Let me look."
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[1].call_id == "call_1"  # type: ignore[union-attr]
    assert json.loads(final.output[1].arguments) == {"x": 1}  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.total_tokens == 14
