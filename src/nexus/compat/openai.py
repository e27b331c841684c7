"""OpenAI's chat and completions API translated to the native service and back."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from nexus.api.ollama import ChatRequest, GenerateRequest
from nexus.api.openai import ChatCompletionRequest, CompletionRequest
from nexus.errors import BadRequest
from nexus.streams import prepend

Chunk = dict[str, Any]
FINGERPRINT = "fp_ollama"
IMAGE_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    "data:;base64,",
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


# ---- requests -----------------------------------------------------------------------------


def openai_defaults(
    extra: dict[str, Any] | None, temperature: float | None, top_p: float | None
) -> dict[str, Any]:
    """OpenAI's defaults (temperature and top_p 1.0) where the request leaves them out;
    Ollama's ``options`` extra fills in the rest; explicit fields win."""
    options: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0}
    options.update(extra or {})
    if temperature is not None:
        options["temperature"] = temperature
    if top_p is not None:
        options["top_p"] = top_p
    return options


def sampling_options(req: ChatCompletionRequest | CompletionRequest) -> dict[str, Any]:
    """OpenAI's sampling fields as Ollama options."""
    options = openai_defaults(req.options, req.temperature, req.top_p)
    if req.stop is not None:
        options["stop"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    if req.seed is not None:
        options["seed"] = req.seed
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    return options


def response_format(value: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not value:
        return None
    kind = value.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest(
                "response_format.json_schema.schema is required", param="response_format"
            )
        return schema
    if kind in (None, "text"):
        return None
    raise BadRequest(f"unknown response_format type '{kind}'", param="response_format")


def text_and_images(content: Any) -> tuple[str, list[str]]:
    """A message's content (a string or a list of parts) as text plus base64 images."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of parts", param="messages")
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise BadRequest("invalid content part", param="messages")
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url", "") if isinstance(url, dict) else str(url or "")
            images.append(decode_image_url(url))
        else:
            raise BadRequest(f"unsupported content part type '{kind}'", param="messages")
    return "\n".join(texts), images


def decode_image_url(url: str) -> str:
    if url.startswith(("http://", "https://")):
        raise BadRequest(
            "image URLs are not currently supported, please use base64 encoded data instead",
            param="messages",
        )
    for prefix in IMAGE_PREFIXES:
        if url.startswith(prefix):
            return url[len(prefix) :]
    raise BadRequest("invalid image input", param="messages")


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"invalid message role '{role}'", param="messages")
        text, images = text_and_images(message.get("content"))
        native: dict[str, Any] = {"role": role, "content": text}
        if images:
            native["images"] = images
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        if role == "assistant" and isinstance(reasoning, str) and reasoning:
            native["thinking"] = reasoning
        if role == "assistant" and message.get("tool_calls"):
            native["tool_calls"] = [
                _native_call(call, tool_names) for call in message["tool_calls"]
            ]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id:
                native["tool_call_id"] = call_id
                if call_id in tool_names:
                    native["tool_name"] = tool_names[call_id]
        out.append(native)
    return out


def _native_call(call: dict[str, Any], tool_names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise BadRequest(
                "tool call arguments must be a JSON object", param="messages"
            ) from None
    if call.get("id"):
        tool_names[call["id"]] = function.get("name", "")
    return {
        "id": call.get("id"),
        "function": {"name": function.get("name", ""), "arguments": arguments},
    }


def tool_choice(value: str | dict[str, Any] | None) -> str | None:
    if value is None or value in ("auto", "none", "required"):
        return value if isinstance(value, str) else None
    if isinstance(value, dict):
        name = (value.get("function") or {}).get("name") or value.get("name")
        if isinstance(name, str) and name:
            return name
    raise BadRequest(
        "tool_choice must be none, auto, required or a named function", param="tool_choice"
    )


#: OpenAI's reasoning effort as Ollama's ``think`` value.
REASONING_EFFORTS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
    "max": "max",
}


def reasoning_think(effort: str | None, param: str = "reasoning_effort") -> bool | str | None:
    if effort is None:
        return None
    if effort not in REASONING_EFFORTS:
        raise BadRequest(
            f"invalid reasoning effort '{effort}'; expected one of {', '.join(REASONING_EFFORTS)}",
            param=param,
        )
    return REASONING_EFFORTS[effort]


def chat_to_native(req: ChatCompletionRequest) -> ChatRequest:
    options = sampling_options(req)
    limit = req.max_completion_tokens or req.max_tokens
    if limit is not None:
        options["num_predict"] = limit
    think = reasoning_think(req.reasoning_effort)
    return ChatRequest.model_validate(
        {
            "model": req.model,
            "messages": native_messages(req.messages),
            "tools": req.tools,
            "format": response_format(req.response_format),
            "options": options,
            "stream": True,
            "keep_alive": req.keep_alive,
            "think": think,
            "logprobs": bool(req.logprobs),
            "top_logprobs": req.top_logprobs or 0,
            "truncate": False,  # never cut silently: OpenAI answers context_length_exceeded
        }
    )


def completion_to_native(req: CompletionRequest, prompt: str) -> GenerateRequest:
    options = sampling_options(req)
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    return GenerateRequest.model_validate(
        {
            "model": req.model,
            "prompt": prompt,
            "suffix": req.suffix or "",
            "options": options,
            "stream": True,
            "keep_alive": req.keep_alive,
            "logprobs": req.logprobs is not None,
            "top_logprobs": req.logprobs or 0,
            "truncate": False,
        }
    )


def completion_prompts(req: CompletionRequest) -> list[str]:
    prompt = req.prompt
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(p, str) for p in prompt):
        return [str(p) for p in prompt] or [""]
    raise BadRequest("token prompts are not supported; send the prompt as text", param="prompt")


# ---- responses ----------------------------------------------------------------------------


def usage(final: Chunk) -> dict[str, int]:
    prompt = int(final.get("prompt_eval_count", 0))
    completion = int(final.get("eval_count", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "index": index,
        "id": call.get("id") or new_id("call"),
        "type": "function",
        "function": {
            "name": function.get("name", ""),
            "arguments": json.dumps(function.get("arguments") or {}, ensure_ascii=False),
        },
    }


def finish_reason(final: Chunk, had_calls: bool) -> str:
    if had_calls:
        return "tool_calls"
    return "length" if final.get("done_reason") == "length" else "stop"


def _logprob_content(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


class ChatCompletionStream:
    """Native chat chunks in, ``chat.completion.chunk`` objects out."""

    def __init__(self, model: str, include_usage: bool, logprobs: bool) -> None:
        self.id = new_id("chatcmpl")
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.calls = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> Chunk:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": lp,
            "finish_reason": finish,
        }
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
        }

    async def convert(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        first = await anext(chunks)  # errors before any output keep their status code
        yield self._chunk({"role": "assistant", "content": ""})
        async for chunk in prepend(first, chunks):
            message = chunk.get("message") or {}
            content = message.get("content", "")
            lp = {"content": chunk["logprobs"]} if self.logprobs and chunk.get("logprobs") else None
            if message.get("thinking"):
                thinking = message["thinking"]
                yield self._chunk({"reasoning_content": thinking, "reasoning": thinking})
            if content or lp:
                yield self._chunk({"content": content}, lp=lp)
            calls = message.get("tool_calls") or []
            if calls:
                deltas = [openai_tool_call(c, self.calls + i) for i, c in enumerate(calls)]
                self.calls += len(calls)
                yield self._chunk({"tool_calls": deltas})
            if chunk.get("done"):
                yield self._chunk({}, finish_reason(chunk, self.calls > 0))
                if self.include_usage:
                    final = self._chunk({})
                    final["choices"] = []
                    final["usage"] = usage(chunk)
                    yield final


async def chat_completion(model: str, chunks: AsyncIterator[Chunk], logprobs: bool) -> Chunk:
    content: list[str] = []
    calls: list[dict[str, Any]] = []
    lps: list[dict[str, Any]] = []
    thoughts: list[str] = []
    final: Chunk = {}
    async for chunk in chunks:
        message = chunk.get("message") or {}
        content.append(message.get("content", ""))
        thoughts.append(message.get("thinking", ""))
        calls.extend(message.get("tool_calls") or [])
        lps.extend(chunk.get("logprobs") or [])
        if chunk.get("done"):
            final = chunk
    text = "".join(content)
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    thinking = "".join(thoughts)
    if thinking:
        # ``reasoning`` is Ollama's name for it, ``reasoning_content`` the common one
        reply["reasoning_content"] = reply["reasoning"] = thinking
    if calls:
        reply["tool_calls"] = [openai_tool_call(c, i) for i, c in enumerate(calls)]
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": {"content": _logprob_content(lps)} if logprobs else None,
                "finish_reason": finish_reason(final, bool(calls)),
            }
        ],
        "usage": usage(final),
    }


def legacy_logprobs(items: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    """Completions' older logprobs object (tokens, token_logprobs, top_logprobs, text_offset)."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    for item in items:
        tokens.append(item["token"])
        token_logprobs.append(item["logprob"])
        top.append({t["token"]: t["logprob"] for t in item.get("top_logprobs") or ()})
        offsets.append(offset)
        offset += len(item["token"])
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


def completion_object(
    model: str, choices: list[dict[str, Any]], finals: list[Chunk], *, stream: bool = False
) -> Chunk:
    result: Chunk = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }
    if finals:
        total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for final in finals:
            for key, value in usage(final).items():
                total[key] += value
        result["usage"] = total
    return result
