"""OpenAI's Responses API translated to the native chat service and back.

A request becomes a native ``ChatRequest`` (input items as chat messages, flat function tools as
nested ones, ``text.format`` as ``format``). The native chunks that come back are turned into
Responses streaming events by ``ResponseStream``; a non-streamed reply is the response carried
by the last of those events, so both modes share one conversion.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from nexus.api.ollama import ChatRequest
from nexus.api.responses import ResponsesRequest
from nexus.compat.openai import (
    openai_defaults,
    reasoning_think,
    text_and_images,
    tool_choice,
)
from nexus.errors import BadRequest
from nexus.streams import aclose

Chunk = dict[str, Any]

LOGPROBS_INCLUDE = "message.output_text.logprobs"


def new_id(prefix: str) -> str:
    """Responses' identifiers: ``resp_…``, ``msg_…``, ``fc_…``, ``call_…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


# ---- requests -----------------------------------------------------------------------------


def to_native(req: ResponsesRequest) -> tuple[ChatRequest, str | None]:
    """The native chat request and the ``tool_choice`` for the service."""
    if req.previous_response_id:
        raise BadRequest(
            "previous_response_id is not supported: responses are not stored, "
            "send the whole conversation in input",
            param="previous_response_id",
        )
    if req.conversation:
        raise BadRequest(
            "conversation is not supported: conversations are not stored, "
            "send the whole conversation in input",
            param="conversation",
        )
    messages = input_messages(req)
    if not messages:
        raise BadRequest("input must not be empty", param="input")
    choice = tool_choice(req.tool_choice)
    native = ChatRequest.model_validate(
        {
            "model": req.model,
            "messages": messages,
            "tools": native_tools(req.tools),
            "format": text_format(req.text),
            "options": sampling(req),
            "stream": True,
            "keep_alive": req.keep_alive,
            "think": think(req.reasoning),
            "logprobs": wants_logprobs(req),
            "top_logprobs": req.top_logprobs or 0,
            # OpenAI's default truncation is "disabled": an input that does not fit is refused
            # with context_length_exceeded; "auto" drops the oldest messages instead.
            "truncate": req.truncation == "auto",
        }
    )
    return native, choice


def sampling(req: ResponsesRequest) -> dict[str, Any]:
    """Sampling as for chat completions; ``max_output_tokens`` is ``num_predict``."""
    options = openai_defaults(req.options, req.temperature, req.top_p)
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    return options


def wants_logprobs(req: ResponsesRequest) -> bool:
    return LOGPROBS_INCLUDE in (req.include or ()) or bool(req.top_logprobs)


def think(reasoning: dict[str, Any] | None) -> bool | str | None:
    return reasoning_think((reasoning or {}).get("effort"), param="reasoning.effort")


def text_format(text: dict[str, Any] | None) -> str | dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if not fmt:
        return None
    if not isinstance(fmt, dict):
        raise BadRequest("text.format must be an object", param="text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise BadRequest(
                "text.format.schema is required for json_schema", param="text.format.schema"
            )
        return schema
    raise BadRequest(
        f"unknown text.format type '{kind}'; expected text, json_object or json_schema",
        param="text.format.type",
    )


def native_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Responses' flat function tools (``{type, name, description, parameters}``) in the nested
    shape of chat tools; only function tools can run here."""
    out = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if kind != "function":
            raise BadRequest(
                f"tools[{index}]: tool type '{kind}' is not supported; only function tools are",
                param="tools",
            )
        if isinstance(tool.get("function"), dict):  # the chat shape, accepted as well
            out.append({"type": "function", "function": tool["function"]})
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"tools[{index}]: a function tool needs a name", param="tools")
        function: dict[str, Any] = {
            "name": name,
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out or None


def input_messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as native chat messages."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        if req.input:
            messages.append({"role": "user", "content": req.input})
        return messages
    tool_names: dict[str, str] = {}
    for index, item in enumerate(req.input):
        where = f"input[{index}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            _add_message(messages, item, where)
        elif kind == "function_call":
            _add_call(messages, item, where, tool_names)
        elif kind == "function_call_output":
            messages.append(_call_output(item, where, tool_names))
        elif kind == "reasoning":
            continue  # earlier reasoning is not replayed into the prompt
        elif kind is None:
            raise BadRequest(f"{where}: an input item needs a type", param="input")
        else:
            raise BadRequest(f"{where}: unsupported input item type '{kind}'", param="input")
    return messages


def _add_message(messages: list[dict[str, Any]], item: Chunk, where: str) -> None:
    role = item.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant"):
        raise BadRequest(f"{where}: invalid message role '{role}'", param="input")
    text, images = content_text_and_images(item.get("content"), where)
    last = messages[-1] if messages else None
    if role == "assistant" and last is not None and last["role"] == "assistant":
        # Text replayed after a function call belongs to the same assistant turn, so the tool
        # result that follows still answers the call directly.
        last["content"] = "\n".join(t for t in (last["content"], text) if t)
        if images:
            last.setdefault("images", []).extend(images)
        return
    message: dict[str, Any] = {"role": role, "content": text}
    if images:
        message["images"] = images
    messages.append(message)


def _add_call(
    messages: list[dict[str, Any]], item: Chunk, where: str, tool_names: dict[str, str]
) -> None:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}: a function_call needs a name", param="input")
    call_id = item.get("call_id") or item.get("id")
    raw = item.get("arguments")
    arguments: Any = raw
    if raw is None or raw == "":
        arguments = {}
    elif isinstance(raw, str):
        try:
            arguments = json.loads(raw)
        except ValueError:
            arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}: function_call arguments must be a JSON object", param="input")
    if call_id:
        tool_names[str(call_id)] = name
    call = {"id": call_id, "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})


def _call_output(item: Chunk, where: str, tool_names: dict[str, str]) -> dict[str, Any]:
    output = item.get("output")
    if output is not None and not isinstance(output, str | list):
        raise BadRequest(
            f"{where}: function_call_output output must be a string or a list of content parts",
            param="input",
        )
    text, images = content_text_and_images(output, where)
    message: dict[str, Any] = {"role": "tool", "content": text}
    if images:
        message["images"] = images
    call_id = item.get("call_id")
    if call_id:
        message["tool_call_id"] = call_id
        if call_id in tool_names:
            message["tool_name"] = tool_names[call_id]
    return message


def content_text_and_images(content: Any, where: str) -> tuple[str, list[str]]:
    """Message content (a string or Responses content parts) as text plus base64 images."""
    if content is None or isinstance(content, str):
        return content or "", []
    if not isinstance(content, list):
        raise BadRequest(
            f"{where}: content must be a string or a list of content parts", param="input"
        )
    parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise BadRequest(
                    f"{where}: input_image needs an image_url with base64 data; "
                    "file_id is not supported",
                    param="input",
                )
            parts.append({"type": "image_url", "image_url": url})
        elif kind == "input_file":
            raise BadRequest(f"{where}: file inputs are not supported", param="input")
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
        else:
            parts.append(part)
    try:
        return text_and_images(parts)
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc.message}", param="input") from None


# ---- responses ----------------------------------------------------------------------------


def usage(final: Chunk) -> dict[str, Any]:
    prompt = int(final.get("prompt_eval_count", 0))
    completion = int(final.get("eval_count", 0))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _logprob(item: Chunk) -> Chunk:
    def entry(x: Chunk) -> Chunk:
        token = str(x.get("token", ""))
        raw = x.get("bytes")
        return {
            "token": token,
            "bytes": list(raw) if raw is not None else list(token.encode()),
            "logprob": float(x.get("logprob", 0.0)),
        }

    return {**entry(item), "top_logprobs": [entry(t) for t in item.get("top_logprobs") or ()]}


def _text_part(text: str, logprobs: list[Chunk]) -> Chunk:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _echo_tool(tool: Chunk) -> Chunk:
    nested = tool.get("function")
    function: Chunk = nested if isinstance(nested, dict) else tool
    return {
        "type": "function",
        "name": function.get("name"),
        "description": function.get("description"),
        "parameters": function.get("parameters"),
        "strict": tool.get("strict", function.get("strict")),
    }


class ResponseStream:
    """Native chat chunks in, Responses streaming events out.

    Text opens a ``message`` item that stays open while text keeps coming; each tool call is
    a ``function_call`` item of its own (closing an open message first). ``response`` holds
    the latest full response object; after the terminal event it is the final answer.
    """

    def __init__(self, req: ResponsesRequest) -> None:
        self.req = req
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.sequence = 0
        self.options = sampling(req)
        self.items: list[Chunk] = []  # finished output items, in output order
        self.message: Chunk | None = None  # the message item being written, if any
        self.reasoning: Chunk | None = None  # the reasoning item being written, if any
        self.thoughts: list[str] = []
        self.text: list[str] = []
        self.logprobs: list[Chunk] = []
        self.held: list[Chunk] = []  # logprobs of tokens whose text has not come out yet
        self.response = self._response("in_progress")

    # -- the response object --

    def _tool_choice(self) -> str | Chunk:
        choice = tool_choice(self.req.tool_choice)
        if choice is None:
            return "auto"
        if choice in ("auto", "none", "required"):
            return choice
        return {"type": "function", "name": choice}

    def _response(
        self,
        status: str,
        *,
        final: Chunk | None = None,
        incomplete: Chunk | None = None,
        error: Chunk | None = None,
    ) -> Chunk:
        req = self.req
        text = dict(req.text or {})
        text["format"] = text.get("format") or {"type": "text"}
        reasoning = None
        if req.reasoning:
            reasoning = {
                "effort": req.reasoning.get("effort"),
                "summary": req.reasoning.get("summary"),
            }
        finished = status in ("completed", "incomplete")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if finished else None,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "max_tool_calls": None,
            "model": req.model,
            "output": list(self.items),
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": None,
            "prompt_cache_key": None,
            "reasoning": reasoning,
            "safety_identifier": None,
            "service_tier": "default",
            "store": False,
            "temperature": self.options.get("temperature"),
            "text": text,
            "tool_choice": self._tool_choice(),
            "tools": [_echo_tool(t) for t in req.tools or ()],
            "top_logprobs": req.top_logprobs or 0,
            "top_p": self.options.get("top_p"),
            "truncation": req.truncation or "disabled",
            "usage": usage(final) if final is not None else None,
            "user": req.user,
            "metadata": req.metadata or {},
        }

    # -- events --

    def _event(self, kind: str, **fields: Any) -> Chunk:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _add_thinking(self, text: str) -> Iterator[Chunk]:
        """Reasoning as a ``reasoning`` item whose summary text streams as it comes."""
        index = len(self.items)
        if self.reasoning is None:
            self.reasoning = {"id": new_id("rs"), "type": "reasoning", "summary": []}
            self.thoughts = []
            yield self._event("response.output_item.added", output_index=index, item=self.reasoning)
            yield self._event(
                "response.reasoning_summary_part.added",
                item_id=self.reasoning["id"],
                output_index=index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        self.thoughts.append(text)
        yield self._event(
            "response.reasoning_summary_text.delta",
            item_id=self.reasoning["id"],
            output_index=index,
            summary_index=0,
            delta=text,
        )

    def _close_reasoning(self) -> Iterator[Chunk]:
        if self.reasoning is None:
            return
        index = len(self.items)
        text = "".join(self.thoughts)
        part = {"type": "summary_text", "text": text}
        common = {"item_id": self.reasoning["id"], "output_index": index, "summary_index": 0}
        yield self._event("response.reasoning_summary_text.done", **common, text=text)
        yield self._event("response.reasoning_summary_part.done", **common, part=part)
        item = {**self.reasoning, "summary": [part]}
        self.items.append(item)
        self.reasoning = None
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _open_message(self) -> Iterator[Chunk]:
        yield from self._close_reasoning()
        self.message = {
            "id": new_id("msg"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.text, self.logprobs = [], []
        index = len(self.items)
        yield self._event("response.output_item.added", output_index=index, item=self.message)
        yield self._event(
            "response.content_part.added",
            item_id=self.message["id"],
            output_index=index,
            content_index=0,
            part=_text_part("", []),
        )

    def _add_text(self, text: str, logprobs: list[Chunk]) -> Iterator[Chunk]:
        if self.message is None:
            yield from self._open_message()
        assert self.message is not None
        self.text.append(text)
        self.logprobs.extend(logprobs)
        yield self._event(
            "response.output_text.delta",
            item_id=self.message["id"],
            output_index=len(self.items),
            content_index=0,
            delta=text,
            logprobs=logprobs,
        )

    def _finished_message(self, status: str) -> Chunk | None:
        if self.message is None:
            return None
        part = _text_part("".join(self.text), self.logprobs + self.held)
        return {**self.message, "status": status, "content": [part]}

    def _close_message(self, status: str) -> Iterator[Chunk]:
        item = self._finished_message(status)
        if item is None:
            return
        part = item["content"][0]
        index = len(self.items)
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        yield self._event(
            "response.output_text.done", **common, text=part["text"], logprobs=part["logprobs"]
        )
        yield self._event("response.content_part.done", **common, part=part)
        self.items.append(item)
        self.message, self.held = None, []
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _add_call(self, call: Chunk) -> Iterator[Chunk]:
        yield from self._close_reasoning()
        yield from self._close_message("completed")
        function = call.get("function") or {}
        arguments = function.get("arguments") or {}
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        item = {
            "id": new_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": call.get("id") or new_id("call"),
            "name": function.get("name", ""),
            "arguments": "",
        }
        index = len(self.items)
        yield self._event("response.output_item.added", output_index=index, item=item)
        common = {"item_id": item["id"], "output_index": index}
        yield self._event("response.function_call_arguments.delta", **common, delta=arguments)
        yield self._event("response.function_call_arguments.done", **common, arguments=arguments)
        done = {**item, "status": "completed", "arguments": arguments}
        self.items.append(done)
        yield self._event("response.output_item.done", output_index=index, item=done)

    async def events(self, chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
        """Every event of the response, ``response.created`` first and ``response.completed``
        (or ``response.incomplete``) last. Errors from ``chunks`` propagate; a stream that has
        started reports them with ``failed``."""
        try:
            yield self._event("response.created", response=self.response)
            yield self._event("response.in_progress", response=self.response)
            final: Chunk = {}
            async for chunk in chunks:
                message = chunk.get("message") or {}
                text = message.get("content") or ""
                self.held.extend(_logprob(x) for x in chunk.get("logprobs") or ())
                if message.get("thinking"):
                    for event in self._add_thinking(message["thinking"]):
                        yield event
                if text:
                    held, self.held = self.held, []
                    for event in self._add_text(text, held):
                        yield event
                for call in message.get("tool_calls") or ():
                    for event in self._add_call(call):
                        yield event
                if chunk.get("done"):
                    final = chunk
            incomplete = final.get("done_reason") == "length"
            if self.message is None and not self.items:
                for event in self._open_message():  # an empty answer is still a message
                    yield event
            for event in self._close_message("incomplete" if incomplete else "completed"):
                yield event
            status = "incomplete" if incomplete else "completed"
            self.response = self._response(
                status,
                final=final,
                incomplete={"reason": "max_output_tokens"} if incomplete else None,
            )
            yield self._event(f"response.{status}", response=self.response)
        finally:
            await aclose(chunks)

    def failed(self, message: str, code: str | None, param: str | None) -> list[Chunk]:
        """The closing events of a stream that broke after it started: an ``error`` event, then
        ``response.failed`` with what was produced until then."""
        error = self._event("error", code=code, message=message, param=param)
        partial = self._finished_message("incomplete")
        self.response = self._response("failed", error={"code": "server_error", "message": message})
        if partial is not None:
            self.response["output"].append(partial)
        return [error, self._event("response.failed", response=self.response)]

    async def collect(self, events: AsyncIterator[Chunk]) -> Chunk:
        """Run the events through and answer with the final response object."""
        async for _ in events:
            pass
        return self.response
