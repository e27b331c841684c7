"""One native request (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/embeddings``)
served by an OpenAI-compatible backend, replies and NDJSON streams included."""

from __future__ import annotations

import json
import time
from typing import Any

from nexus.gateway.errors import BadRequest
from nexus.gateway.translate import replies, requests
from nexus.gateway.translate.replies import ReplyError
from nexus.gateway.translate.sse import Event, SSEDecoder

NATIVE_ROUTES = {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"}

EARLY_END = "backend ended the stream early"
#: inputs of one ``/api/embed`` request sent upstream at a time: a reply of many is built and
#: sent a window at a time, never held whole
EMBED_WINDOW = 64


class NativeOverOpenAI:
    """One native request served by an OpenAI-compatible backend.

    ``path`` and ``payload`` are what to send upstream. A non-streamed reply (any status) goes
    through ``response``; a streamed one through ``feed`` piece by piece and ``end`` once the
    body is over. ``immediate``, when set, is the whole native reply (status, body) and nothing
    is sent upstream: Ollama's load and unload requests (no messages, no prompt, no input)."""

    path: str
    payload: dict[str, Any]
    stream: bool
    model: str
    usage: tuple[int, int] | None
    immediate: tuple[int, bytes] | None
    #: upstream requests this one takes (more than one: an embedding of many inputs)
    windows: int = 1

    def __init__(self, route: str, body: dict[str, Any]) -> None:
        if route not in NATIVE_ROUTES:
            raise BadRequest(f"{route} has no translation for OpenAI-compatible backends")
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model is required")
        self.route = route
        self.model = model
        self.usage = None
        self.immediate = None
        self._clock = replies.Clock(time.monotonic_ns())
        self._timings: dict[str, Any] | None = None
        self._decoder = SSEDecoder()
        self._finish: str | None = None
        self._closed = False
        self._calls: dict[int, dict[str, Any]] = {}
        self._dimensions: int | None = None
        self._window_tokens: int | None = 0
        if route in ("/api/embed", "/api/embeddings"):
            self._embed_request(route, body)
        else:
            self._generate_request(route, body)

    # ---- requests -----------------------------------------------------------------------

    def _generate_request(self, route: str, body: dict[str, Any]) -> None:
        stream = body.get("stream")
        self.stream = stream is not False
        if route == "/api/chat":
            self.path, payload = requests.CHAT_PATH, requests.chat(body)
            empty = not payload["messages"]
        else:
            self.path, payload = requests.generate(body)
            empty = not body.get("prompt") and not body.get("suffix") and not body.get("images")
        self._text_field = "message" if route == "/api/chat" else "response"
        self._chat_upstream = self.path == requests.CHAT_PATH
        payload["model"] = self.model
        payload["stream"] = self.stream
        if self.stream:
            payload["stream_options"] = {"include_usage": True}
        self.payload = payload
        if empty:
            reason = "unload" if body.get("keep_alive") in (0, "0", "0s", "0m") else "load"
            line = {**self._base(), **self._text(""), "done": True, "done_reason": reason}
            self.immediate = (200, self._line(line) if self.stream else _json(line))

    def _embed_request(self, route: str, body: dict[str, Any]) -> None:
        self.stream = False
        self.path = requests.EMBEDDINGS_PATH
        inputs = requests.embed_inputs(route, body)
        dimensions = body.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 0):
            raise BadRequest("dimensions must be a positive integer")
        self._dimensions = dimensions or None
        self._inputs = inputs
        if route == "/api/embed":
            self.windows = max(1, -(-len(inputs) // EMBED_WINDOW))
        window = inputs[:EMBED_WINDOW] if self.windows > 1 else inputs
        self.payload = {"model": self.model, "input": window, "encoding_format": "float"}
        if not inputs:
            empty: dict[str, Any] = (
                {"embedding": []}
                if route == "/api/embeddings"
                else {"model": self.model, "embeddings": []}
            )
            self.immediate = (200, _json(empty))

    # ---- non-streamed replies -----------------------------------------------------------

    def response(self, status: int, body: bytes) -> tuple[int, bytes]:
        """The upstream reply as the native one; errors keep their status."""
        if status < 300 and self.stream and body.lstrip().startswith(_SSE_STARTS):
            return status, self.feed(body) + self.end()  # a stream read whole
        try:
            data = _reply_object(status, body)
            if self.path == requests.EMBEDDINGS_PATH:
                native = self._embeddings(data)
            else:
                native = self._completion(data)
        except ReplyError as exc:
            return (status if status >= 300 else 502), _json({"error": str(exc)})
        except _SHAPE_ERRORS as exc:
            return 502, _json({"error": _unexpected(exc)})
        return 200, self._line(native) if self.stream else _json(native)

    def _completion(self, data: dict[str, Any]) -> dict[str, Any]:
        choice = _first_choice(data)
        if choice is None:
            raise ReplyError("the backend's reply has no choices")
        self.usage = replies.usage_of(data)
        timings = data.get("timings") if isinstance(data.get("timings"), dict) else None
        if self._chat_upstream:
            message = choice.get("message") or {}
            text = message.get("content") or ""
            thinking = replies.reasoning(message)
            calls = [replies.tool_call(c, i) for i, c in enumerate(message.get("tool_calls") or ())]
        else:
            text, thinking, calls = choice.get("text") or "", "", []
        self._clock.first = self._clock.started  # no first-token time without a stream
        native = {**self._base(), **self._text(text, thinking, calls)}
        lps = replies.logprobs(choice.get("logprobs"))
        if lps:
            native["logprobs"] = lps
        native["done"] = True
        native["done_reason"] = replies.done_reason(choice.get("finish_reason"))
        native.update(self._clock.fields(time.monotonic_ns(), self.usage, timings))
        return native

    @staticmethod
    def _vectors(data: dict[str, Any]) -> tuple[list[list[float]], int | None]:
        """The vectors of an OpenAI embeddings reply, in input order, and its prompt tokens."""
        items = data.get("data")
        if not isinstance(items, list) or not items:
            raise ReplyError("the backend's reply has no embeddings")
        ordered = sorted(items, key=lambda item: int(item.get("index") or 0))
        vectors = [replies.vector(item.get("embedding")) for item in ordered]
        usage = data.get("usage")
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return vectors, prompt_tokens if isinstance(prompt_tokens, int) else None

    def _embeddings(self, data: dict[str, Any]) -> dict[str, Any]:
        vectors, prompt_tokens = self._vectors(data)
        if self.route == "/api/embed" and len(vectors) != len(self._inputs):
            raise ReplyError(_mismatch(len(vectors), len(self._inputs)))
        if prompt_tokens is not None:
            self.usage = (prompt_tokens, 0)
        if self.route == "/api/embeddings":
            return {"embedding": vectors[0]}
        elapsed = time.monotonic_ns() - self._clock.started
        native: dict[str, Any] = {
            "model": self.model,
            "embeddings": [replies.normalized(v, self._dimensions) for v in vectors],
            "total_duration": elapsed,
            "load_duration": 0,
        }
        if prompt_tokens is not None:
            native["prompt_eval_count"] = prompt_tokens
        return native

    # ---- an embedding of many inputs, a window at a time -----------------------------------

    def window_payload(self, index: int, model: str) -> dict[str, Any]:
        """The upstream request for window ``index`` (the first is ``payload``)."""
        start = index * EMBED_WINDOW
        return {**self.payload, "model": model, "input": self._inputs[start : start + EMBED_WINDOW]}

    def window_head(self) -> bytes:
        return (
            b'{"model":' + json.dumps(self.model, ensure_ascii=False).encode() + b',"embeddings":['
        )

    def window_vectors(self, index: int, status: int, body: bytes) -> bytes:
        """Window ``index``'s vectors as JSON array items (a leading comma after the first);
        ``ReplyError`` for an error reply or one that does not hold one vector an input."""
        data = _reply_object(status, body)
        expected = len(self._inputs[index * EMBED_WINDOW : (index + 1) * EMBED_WINDOW])
        try:
            vectors, prompt_tokens = self._vectors(data)
        except _SHAPE_ERRORS as exc:
            raise ReplyError(_unexpected(exc)) from None
        if len(vectors) != expected:
            raise ReplyError(_mismatch(len(vectors), expected))
        if prompt_tokens is None or self._window_tokens is None:
            self._window_tokens = None
        else:
            self._window_tokens += prompt_tokens
            self.usage = (self._window_tokens, 0)
        items = b",".join(_json_value(replies.normalized(v, self._dimensions)) for v in vectors)
        return items if index == 0 else b"," + items

    def window_tail(self) -> bytes:
        elapsed = time.monotonic_ns() - self._clock.started
        tail = b'],"total_duration":%d,"load_duration":0' % elapsed
        if self._window_tokens is not None:
            tail += b',"prompt_eval_count":%d' % self._window_tokens
        return tail + b"}"

    # ---- streamed replies ---------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Upstream SSE bytes in, complete NDJSON lines out (``b""`` until a line is whole)."""
        return self._events(self._decoder.feed(chunk))

    def end(self) -> bytes:
        """The upstream body is over: the last lines, or an error line if the backend never
        said it had finished."""
        out = self._events(self._decoder.flush(), at_end=True)
        if self._closed:
            return out
        if self._finish is None:
            return out + self._fail(EARLY_END)
        return out + self._done()

    def error_line(self, message: str) -> bytes:
        """An NDJSON ``{"error": message}`` line."""
        return self._line({"error": message})

    def _events(self, events: list[Event], *, at_end: bool = False) -> bytes:
        out = b""
        for event in events:
            if self._closed:
                break
            try:
                out += self._event(event, at_end)
            except (TypeError, AttributeError, KeyError, ValueError) as exc:
                out += self._fail(f"the backend sent an event of an unexpected shape: {exc!r}")
        return out

    def _event(self, event: Event, at_end: bool) -> bytes:
        if event.data.strip() == "[DONE]":
            if self._finish is None:
                self._finish = "stop"
            return self._done()
        try:
            data = json.loads(event.data)
        except ValueError:
            if event.name == "error":
                return self._fail(event.data.strip() or "backend reported an error")
            if at_end:  # an event cut off by the end of the body
                return self._fail(EARLY_END)
            return self._fail(f"the backend sent an event that is not JSON: {event.data[:200]}")
        found = replies.event_error(data)
        if found is None and event.name == "error":
            found = (replies.message_in(data) if isinstance(data, dict) else None) or event.data
        if found is not None:
            return self._fail(found[:1000])
        if not isinstance(data, dict):
            return b""
        usage = replies.usage_of(data)
        if usage is not None:
            self.usage = usage
        if isinstance(data.get("timings"), dict):
            self._timings = data["timings"]
        choice = _first_choice(data)
        if choice is None or self._finish is not None:
            return b""
        if self._clock.first is None:
            self._clock.first = time.monotonic_ns()
        out = b""
        if self._chat_upstream:
            delta = choice.get("delta") or {}
            text, thinking = delta.get("content") or "", replies.reasoning(delta)
            for call in delta.get("tool_calls") or ():
                self._collect(call)
        else:
            text, thinking = choice.get("text") or "", ""
        lps = replies.logprobs(choice.get("logprobs"))
        if text or thinking or lps:
            line = {**self._base(), **self._text(text, thinking), "done": False}
            if lps:
                line["logprobs"] = lps
            out += self._line(line)
        finish = choice.get("finish_reason")
        if finish:
            self._finish = finish
            if self._calls:
                out += self._emit_calls()
        return out

    def _collect(self, piece: dict[str, Any]) -> None:
        """Tool calls stream in pieces: the id and name first, the arguments in fragments."""
        index = piece.get("index", len(self._calls))
        call = self._calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
        if piece.get("id"):
            call["id"] = piece["id"]
        function = piece.get("function") or {}
        if function.get("name"):
            call["name"] += function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call["arguments"] += arguments
        elif isinstance(arguments, dict):
            call["arguments"] = json.dumps(arguments)

    def _emit_calls(self) -> bytes:
        try:
            calls = [
                replies.tool_call(
                    {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}},
                    i,
                )
                for i, c in enumerate(self._calls[k] for k in sorted(self._calls))
            ]
        except ReplyError as exc:
            return self._fail(str(exc))
        self._calls = {}
        return self._line({**self._base(), **self._text("", "", calls), "done": False})

    def _done(self) -> bytes:
        if self._calls:
            calls = self._emit_calls()
            if self._closed:
                return calls
        else:
            calls = b""
        self._closed = True
        line = {
            **self._base(),
            **self._text(""),
            "done": True,
            "done_reason": replies.done_reason(self._finish),
        }
        line.update(self._clock.fields(time.monotonic_ns(), self.usage, self._timings))
        return calls + self._line(line)

    def _fail(self, message: str) -> bytes:
        self._closed = True
        return self.error_line(message)

    # ---- shapes -------------------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": replies.now_iso()}

    def _text(
        self, text: str, thinking: str = "", calls: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        if self._text_field == "response":
            out: dict[str, Any] = {"response": text}
            if thinking:
                out["thinking"] = thinking
            return out
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        return {"message": message}

    @staticmethod
    def _line(item: dict[str, Any]) -> bytes:
        return _json(item) + b"\n"


def _json(item: dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()


#: how an upstream stream read whole begins
_SSE_STARTS = (b"data:", b"event:", b"error:", b":")
#: what reading a reply of an unexpected shape raises
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError)


def _reply_object(status: int, body: bytes) -> dict[str, Any]:
    """An upstream reply's JSON object; ``ReplyError`` for an error status, a body that is not
    a JSON object, or the error it reports."""
    if status >= 300:
        raise ReplyError(replies.error_message(status, body))
    try:
        data = json.loads(body)
    except ValueError:
        raise ReplyError("the backend's reply is not JSON") from None
    if not isinstance(data, dict):
        raise ReplyError("the backend's reply is not a JSON object")
    found = replies.event_error(data)
    if found:
        raise ReplyError(found)
    return data


def _unexpected(exc: Exception) -> str:
    return f"the backend's reply has an unexpected shape: {exc!r}"


def _mismatch(vectors: int, inputs: int) -> str:
    embeddings = "embedding" if vectors == 1 else "embeddings"
    return f"the backend returned {vectors} {embeddings} for {inputs} inputs"


def _json_value(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _first_choice(data: dict[str, Any]) -> dict[str, Any] | None:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None
