"""Token counts read from a backend's own replies, as they pass through.

A stream is watched without being held back: each chunk is forwarded as it comes, and only the
events that carry counts (the last native line, OpenAI's usage chunk, Anthropic's message
start and delta, the Responses API's completion event) are parsed. A meter also notes whether
the stream reached its proper end, so a cut stream can be told from a finished one.

A JSON reply too large to hold (a long list of embeddings) is watched the same way as it passes:
only the keys that carry counts are looked for, the last of each wins.
"""

from __future__ import annotations

import json
import re
from typing import Any

NATIVE = "native"
OPENAI = "openai"
RESPONSES = "responses"
ANTHROPIC = "anthropic"


def family(path: str) -> str:
    if path.startswith("/api/"):
        return NATIVE
    if path.startswith("/v1/responses"):
        return RESPONSES
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    return OPENAI


#: bytes of one piece kept to find a key cut between it and the next (a usage object is far
#: shorter)
OVERLAP = 4096
_NATIVE_COUNTS = re.compile(rb'"(prompt_eval_count|eval_count)"\s*:\s*(\d+)')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_DECODER = json.JSONDecoder()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


class Meter:
    """Counts for one reply. ``strip_usage``: drop OpenAI's usage-only chunk from the stream
    (the gateway asked for it; the client did not)."""

    def __init__(self, api: str, *, strip_usage: bool = False) -> None:
        self.api = api
        self.strip_usage = strip_usage
        self.prompt = 0
        self.completion = 0
        self.finished = False
        self._buffer = b""

    # whole bodies
    def whole(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        self.finished = True
        if self.api == NATIVE:
            self.prompt = _int(data.get("prompt_eval_count"))
            self.completion = _int(data.get("eval_count"))
            return
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)

    def piece(self, chunk: bytes) -> None:
        """Watch one piece of a whole reply that is passed on as it comes.

        A key's quotes are the JSON text's own (inside a string they would be escaped), and every
        known reply puts its top-level counts after its content, so the last occurrence of each
        is the reply's own."""
        window = self._buffer + chunk
        self._buffer = window[-OVERLAP:]
        if self.api == NATIVE:
            for match in _NATIVE_COUNTS.finditer(window):
                value = int(match[2])
                if match[1] == b"prompt_eval_count":
                    self.prompt = value
                else:
                    self.completion = value
            return
        for match in _USAGE.finditer(window):
            start = match.end() - 1
            text = window[start : start + OVERLAP].decode("utf-8", "replace")
            try:
                usage, _ = _DECODER.raw_decode(text)
            except ValueError:  # cut at the window's end: read whole with the next piece
                continue
            if isinstance(usage, dict):
                self._usage(usage)

    def _usage(self, usage: dict[str, Any]) -> None:
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            self.prompt = _int(usage.get("prompt_tokens"))
            self.completion = _int(usage.get("completion_tokens"))
        else:
            if "input_tokens" in usage:
                self.prompt = _int(usage.get("input_tokens"))
            if "output_tokens" in usage:
                self.completion = _int(usage.get("output_tokens"))

    # streams
    def feed(self, chunk: bytes) -> bytes:
        """Watch one chunk; return what goes on to the client."""
        data = self._buffer + chunk
        separator = b"\n" if self.api == NATIVE else b"\n\n"
        if separator not in data:
            self._buffer = data
            return b"" if self.strip_usage else chunk
        cut = data.rfind(separator) + len(separator)
        complete, self._buffer = data[:cut], data[cut:]
        if self.api == NATIVE:
            self._native(complete)
            return chunk
        if self.strip_usage:
            return self._events(complete, forward=True)
        self._events(complete, forward=False)
        return chunk

    def flush(self) -> bytes:
        """What a stripping meter still holds when the stream ends."""
        rest, self._buffer = self._buffer, b""
        if not rest.strip():
            return rest if self.strip_usage else b""
        if self.api == NATIVE:
            self._native(rest)
            return b""
        out = self._events(rest, forward=self.strip_usage)
        return out if self.strip_usage else b""

    def _native(self, lines: bytes) -> None:
        if b'"error"' in lines:  # the backend ended the stream with its own error line
            self.finished = True
        if b'"done":true' not in lines and b'"done": true' not in lines:
            return
        for line in lines.split(b"\n"):
            if b'"done":true' in line or b'"done": true' in line:
                self.whole(line)

    def _events(self, events: bytes, *, forward: bool) -> bytes:
        kept = []
        for event in events.split(b"\n\n"):
            if not event.strip():
                continue
            if self._event(event) or not forward:
                kept.append(event + b"\n\n")
        return b"".join(kept)

    def _event(self, event: bytes) -> bool:
        """Read one SSE event; False when it is a usage-only chunk to drop."""
        if b"[DONE]" in event or b'"error"' in event:
            self.finished = True
            return True
        interesting = (
            b'"usage"' in event
            or b"message_stop" in event
            or b"response.completed" in event
            or b"response.incomplete" in event
            or b"response.failed" in event
        )
        if not interesting:
            return True
        payload = b"".join(
            line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")
        )
        try:
            data = json.loads(payload)
        except ValueError:
            return True
        if not isinstance(data, dict):
            return True
        kind = data.get("type")
        if self.api == ANTHROPIC:
            if kind == "message_start" and isinstance(data.get("message"), dict):
                usage = data["message"].get("usage")
                if isinstance(usage, dict):
                    self.prompt = _int(usage.get("input_tokens"))
            elif kind == "message_delta" and isinstance(data.get("usage"), dict):
                self.completion = _int(data["usage"].get("output_tokens"))
            elif kind == "message_stop":
                self.finished = True
            return True
        if self.api == RESPONSES:
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.finished = True
                response = data.get("response")
                if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                    self._usage(response["usage"])
            return True
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
            if self.strip_usage and not data.get("choices"):
                return False
        return True
