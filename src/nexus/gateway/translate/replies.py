"""Pieces of native replies built from OpenAI-compatible ones: errors, tool calls, logprobs,
embeddings and the timing fields."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NS = 1_000_000_000


class ReplyError(Exception):
    """The backend's reply cannot be told to the client as a native reply."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def error_message(status: int, body: bytes) -> str:
    """The message in an upstream error: OpenAI's error object, ``{"error": "..."}``, vLLM's
    older ``{"message": ...}``, FastAPI's ``{"detail": ...}``, else the text itself."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        found = message_in(data)
        if found:
            return found
    if text:
        return text[:1000]
    return f"backend answered HTTP {status} with no body"


def message_in(data: dict[str, Any]) -> str | None:
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("msg") or error.get("type")
    for value in (error, data.get("message"), data.get("detail")):
        if isinstance(value, str) and value:
            return value
        if value:
            return json.dumps(value, ensure_ascii=False)
    return None


def event_error(data: Any) -> str | None:
    """The message of an error carried in a stream event or a 200 reply (``{"error": ...}``,
    or vLLM's older ``{"object": "error", "message": ...}``), or None for an ordinary one."""
    if isinstance(data, dict) and (data.get("error") is not None or data.get("object") == "error"):
        return message_in(data) or "backend reported an error"
    return None


def done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"


def tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    """An OpenAI tool call as a native one: arguments as an object, the id kept."""
    function = call.get("function") or {}
    name = function.get("name") or ""
    raw = function.get("arguments")
    if isinstance(raw, dict):
        arguments = raw
    else:
        try:
            arguments = json.loads(raw) if raw else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ReplyError(
                f"the backend's call of {name!r} has arguments that are not a JSON object: "
                f"{str(raw)[:200]}"
            )
    native: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    if call.get("id"):
        native["id"] = call["id"]
    return native


def reasoning(source: dict[str, Any]) -> str:
    """Thinking text: ``reasoning_content`` (llama.cpp, vLLM) or ``reasoning`` (newer vLLM)."""
    value = source.get("reasoning_content") or source.get("reasoning") or ""
    return value if isinstance(value, str) else ""


def logprobs(value: Any) -> list[dict[str, Any]]:
    """Chat logprobs (``content``: a list) or the legacy completions object, as native ones."""
    if not isinstance(value, dict):
        return []
    items = value.get("content")
    if isinstance(items, list):
        out = []
        for item in items:
            entry = {
                "token": item.get("token", ""),
                "logprob": item.get("logprob", 0.0),
                "bytes": item.get("bytes") or list(str(item.get("token", "")).encode()),
            }
            entry["top_logprobs"] = [
                {
                    "token": t.get("token", ""),
                    "logprob": t.get("logprob", 0.0),
                    "bytes": t.get("bytes") or [],
                }
                for t in item.get("top_logprobs") or ()
            ]
            out.append(entry)
        return out
    tokens = value.get("tokens") or []
    chosen = value.get("token_logprobs") or []
    tops = value.get("top_logprobs") or []
    legacy = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        legacy.append(
            {
                "token": token,
                "logprob": chosen[i] if i < len(chosen) and chosen[i] is not None else 0.0,
                "bytes": list(str(token).encode()),
                "top_logprobs": [
                    {"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in top.items()
                ],
            }
        )
    return legacy


def vector(value: Any) -> list[float]:
    """An embedding as floats: a list, or base64 of little-endian float32."""
    if isinstance(value, list):
        return [float(x) for x in value]
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ReplyError("the backend returned an embedding that is not base64") from None
        if len(raw) % 4:
            raise ReplyError("the backend returned a base64 embedding of a partial float32")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise ReplyError("the backend returned an embedding that is neither a list nor base64")


def normalized(values: list[float], dimensions: int | None) -> list[float]:
    """Cut to ``dimensions`` (when shorter) and scale to unit length, as Ollama's ``/api/embed``."""
    if dimensions and 0 < dimensions < len(values):
        values = values[:dimensions]
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values] if norm > 0 else values


@dataclass
class Clock:
    """Wall time of one request, in nanoseconds for the native duration fields; llama.cpp's
    ``timings`` (milliseconds) win where the backend sends them."""

    started: int
    first: int | None = None

    def fields(
        self, now: int, usage: tuple[int, int] | None, timings: dict[str, Any] | None
    ) -> dict[str, int]:
        total = now - self.started
        first = self.first if self.first is not None else now
        prompt_ns, eval_ns = first - self.started, now - first
        if timings:
            prompt_ms, predicted_ms = timings.get("prompt_ms"), timings.get("predicted_ms")
            if isinstance(prompt_ms, int | float) and isinstance(predicted_ms, int | float):
                prompt_ns, eval_ns = int(prompt_ms * 1e6), int(predicted_ms * 1e6)
        out = {
            "total_duration": max(total, prompt_ns + eval_ns),
            "load_duration": 0,
            "prompt_eval_duration": prompt_ns,
            "eval_duration": eval_ns,
        }
        if usage is not None:
            out["prompt_eval_count"], out["eval_count"] = usage
        return out


def usage_of(data: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens from ``usage``, else from llama.cpp's ``timings``."""
    usage = data.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0
    timings = data.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("predicted_n"), int):
        prompt = int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0)
        return prompt, timings["predicted_n"]
    return None
