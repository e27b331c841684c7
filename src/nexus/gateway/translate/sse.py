"""Server-sent events read from bytes that arrive in arbitrary pieces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One dispatched event: its name (``message`` unless the stream says otherwise) and data.

    llama.cpp's server writes failures as an ``error:`` field instead of ``event: error``;
    both arrive here as an event named ``error``."""

    name: str
    data: str


class SSEDecoder:
    """Splits on whole lines only, so a chunk boundary inside a line or inside a UTF-8
    character never reaches the JSON parser."""

    def __init__(self) -> None:
        self._buffer = b""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return events
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            self._line(raw.rstrip(b"\r").decode("utf-8", errors="replace"), events)

    def flush(self) -> list[Event]:
        """The stream ended: a last line without its newline, and an event without its blank
        line, still count."""
        events: list[Event] = []
        if self._buffer:
            rest, self._buffer = self._buffer, b""
            self._line(rest.rstrip(b"\r").decode("utf-8", errors="replace"), events)
        self._dispatch(events)
        return events

    def _line(self, line: str, events: list[Event]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        elif field == "error":
            self._name = "error"
            self._data.append(value)

    def _dispatch(self, events: list[Event]) -> None:
        if self._data:
            events.append(Event(self._name or "message", "\n".join(self._data)))
        self._name = ""
        self._data = []
