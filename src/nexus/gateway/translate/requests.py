"""Native request bodies (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/embeddings``)
as OpenAI-compatible ones (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from nexus.gateway.errors import BadRequest

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"

#: Options sent under the same name: OpenAI's own fields, then llama.cpp's extra sampling fields
#: (llama.cpp's server and vLLM read them; other backends ignore unknown fields).
SAME_NAME_OPTIONS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "repeat_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)

IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
)

THINK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def sampling(options: Any) -> dict[str, Any]:
    """Ollama's ``options`` as OpenAI fields; load-time options (``num_ctx``...) have no
    per-request equivalent on these backends and are left out."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    out: dict[str, Any] = {}
    for name in SAME_NAME_OPTIONS:
        if options.get(name) is not None:
            out[name] = options[name]
    if options.get("repeat_penalty") is not None:
        out["repetition_penalty"] = options["repeat_penalty"]  # vLLM's and TGI's name
    limit = options.get("num_predict")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise BadRequest("options.num_predict must be an integer")
        if limit >= 0:  # -1 (unbounded) and -2 (fill the context) leave it unset
            out["max_tokens"] = limit
    stop = options.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("options.stop must be a string or a list of strings")
        if stop:
            out["stop"] = stop
    return out


def response_format(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, dict):
        return {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": value, "strict": True},
        }
    raise BadRequest(f'format must be "json" or a JSON schema, not {json.dumps(value)}')


def thinking(value: Any) -> dict[str, Any]:
    """``think``: on or off through the chat template, or a level as ``reasoning_effort``."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"chat_template_kwargs": {"enable_thinking": value}}
    if isinstance(value, str) and value in THINK_LEVELS:
        return {"reasoning_effort": THINK_LEVELS[value]}
    raise BadRequest(f"invalid think value {json.dumps(value)}: expected true, false, or a level")


def image_url(data: Any) -> dict[str, Any]:
    if not isinstance(data, str) or not data:
        raise BadRequest("images must be base64-encoded strings")
    try:
        head = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise BadRequest("images must be base64-encoded") from None
    mime = next((kind for magic, kind in IMAGE_TYPES if head.startswith(magic)), "image/jpeg")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def content(text: Any, images: Any) -> str | list[dict[str, Any]]:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadRequest("message content must be a string")
    if not images:
        return text
    if not isinstance(images, list):
        raise BadRequest("images must be a list of base64-encoded strings")
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return parts + [image_url(image) for image in images]


def messages(items: Any) -> list[dict[str, Any]]:
    """Native chat history as OpenAI messages: tool-call arguments become JSON strings with ids,
    and each tool result names the call it answers (by id, else by the tool's name)."""
    if not isinstance(items, list):
        raise BadRequest("messages must be a list")
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"messages[{number}] must be an object")
        role = item.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"messages[{number}]: invalid role {json.dumps(role)}")
        message: dict[str, Any] = {
            "role": role,
            "content": content(item.get("content"), item.get("images")),
        }
        if role == "assistant" and item.get("tool_calls"):
            calls = [_call(call, f"{number}_{i}") for i, call in enumerate(item["tool_calls"])]
            message["tool_calls"] = calls
            pending = [(c["id"], c["function"]["name"]) for c in calls]
        if role == "tool":
            _answer(message, item, pending)
        out.append(message)
    return out


def _call(call: Any, fallback: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest("tool_calls need a function with a name")
    arguments = function.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": str(call.get("id") or f"call_{fallback}"),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def _answer(message: dict[str, Any], item: dict[str, Any], pending: list[tuple[str, str]]) -> None:
    call_id = item.get("tool_call_id")
    name = item.get("tool_name") or item.get("name")
    match = None
    if call_id:
        match = next((p for p in pending if p[0] == call_id), (str(call_id), name or ""))
    elif name:
        match = next((p for p in pending if p[1] == name), None)
    elif pending:
        match = pending[0]
    if match is not None:
        if match in pending:
            pending.remove(match)
        message["tool_call_id"] = match[0]
    if name:
        message["name"] = name


def chat(body: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"messages": messages(body.get("messages"))}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise BadRequest("tools must be a list")
        payload["tools"] = tools
    return {**payload, **_common(body)}


def generate(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``raw`` prompts and fill-in-the-middle go to completions as they are; the others are a
    chat turn, so the backend applies the model's template as Ollama would."""
    prompt = body.get("prompt") or ""
    suffix = body.get("suffix") or ""
    system = body.get("system") or ""
    for name, value in (("prompt", prompt), ("suffix", suffix), ("system", system)):
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
    if body.get("context"):
        raise BadRequest("context is not supported by this model's backend; use /api/chat")
    if body.get("template"):
        raise BadRequest("template is not supported by this model's backend")
    images = body.get("images")
    if body.get("raw") or suffix:
        if images:
            raise BadRequest("images need a chat turn: drop raw and suffix, or use /api/chat")
        if system:
            raise BadRequest("system is not supported with raw or suffix")
        payload: dict[str, Any] = {"prompt": prompt}
        if suffix:
            payload["suffix"] = suffix
        return COMPLETIONS_PATH, {**payload, **_common(body, completions=True)}
    turns: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    turns.append({"role": "user", "content": content(prompt, images)})
    return CHAT_PATH, {"messages": turns, **_common(body)}


def _common(body: dict[str, Any], *, completions: bool = False) -> dict[str, Any]:
    out = sampling(body.get("options"))
    fmt = response_format(body.get("format"))
    if fmt is not None:
        out["response_format"] = fmt
    if not completions:
        out.update(thinking(body.get("think")))
    if body.get("logprobs"):
        top = body.get("top_logprobs")
        top = top if isinstance(top, int) and top > 0 else 0
        if completions:  # the legacy API takes the number of alternatives
            out["logprobs"] = top
        else:
            out["logprobs"] = True
            if top:
                out["top_logprobs"] = top
    return out


def embed_inputs(route: str, body: dict[str, Any]) -> list[str]:
    if route == "/api/embeddings":
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string")
        return [prompt] if prompt else []
    value = body.get("input")
    if value is None:
        raise BadRequest("input is required")
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest("input must be a string or a list of strings")
