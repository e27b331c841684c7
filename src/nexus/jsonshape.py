"""How much a JSON text would make a parser build, read before it is parsed.

A request body's size says little of what parsing it costs: 48 MB of ``[1,2],`` are 18 million
Python objects, over 5 s of one thread and gigabytes, where 48 MB of text in one string are one
object. ``json_shape`` reads the text at C speed (bytes' own searches and NumPy over a few
megabytes at a time) and reports how deeply arrays and objects nest, how many there are and how
many values they hold, not counting what is inside strings; ``check_shape`` refuses a text past
the bounds before any of it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Arrays and objects nested deeper than this are refused (a JSON schema or a tool call's
#: arguments need far fewer levels; recursion over more can exhaust the stack).
MAX_DEPTH = 128
#: Arrays and objects in one request: 100,000 (a conversation of tens of thousands of messages
#: with images and tool calls, an embedding of 100,000 token lists).
MAX_CONTAINERS = 100_000
#: Values in one request's arrays and objects: 2,000,000 (a context of two million tokens).
MAX_VALUES = 2_000_000

_CHUNK = 4 << 20


@dataclass(frozen=True)
class Shape:
    depth: int
    containers: int
    #: Commas outside strings: at most this many values more than there are containers.
    commas: int


class ShapeError(ValueError):
    """A JSON text past a bound; the message names it."""


def json_shape(raw: bytes) -> Shape:
    """The nesting, containers and commas of ``raw`` outside its strings. For text that is not
    valid JSON the figures may be wrong past the first error (where any parser stops)."""
    if b"\\" in raw:
        # an escaped backslash cannot escape what follows it; then an escaped quote is no quote
        raw = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    inside = 0  # 1 while in a string, carried from one chunk to the next
    depth = deepest = containers = commas = 0
    view = np.frombuffer(raw, dtype=np.uint8)
    for start in range(0, len(view), _CHUNK):
        chunk = view[start : start + _CHUNK]
        quotes = chunk == ord('"')
        # 1 from an opening quote up to (not including) its closing quote
        in_string = np.bitwise_xor.accumulate(quotes.view(np.uint8)) ^ inside
        inside = int(in_string[-1])
        outside = in_string == 0
        opens = outside & ((chunk == ord("[")) | (chunk == ord("{")))
        closes = outside & ((chunk == ord("]")) | (chunk == ord("}")))
        containers += int(np.count_nonzero(opens))
        commas += int(np.count_nonzero(outside & (chunk == ord(","))))
        marks = np.flatnonzero(opens | closes)  # the brackets: at most a chunk's worth
        if len(marks):
            steps = np.where(opens[marks], 1, -1)
            levels = depth + np.cumsum(steps)
            deepest = max(deepest, int(levels.max()))
            depth = int(levels[-1])
        if containers > MAX_CONTAINERS or deepest > MAX_DEPTH:
            break  # refused anyway: the rest need not be read
    return Shape(deepest, containers, commas)


def check_shape(raw: bytes) -> None:
    """Raise ``ShapeError`` when ``raw`` nests deeper than ``MAX_DEPTH`` or holds more than
    ``MAX_CONTAINERS`` arrays and objects or ``MAX_VALUES`` values."""
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= MAX_DEPTH and raw.count(b",") + brackets <= MAX_VALUES:
        return  # cannot be past any bound: no scan
    shape = json_shape(raw)
    if shape.depth > MAX_DEPTH:
        raise ShapeError(f"invalid JSON: nested more than {MAX_DEPTH} levels deep")
    if shape.containers > MAX_CONTAINERS:
        raise ShapeError(
            f"request holds more than {MAX_CONTAINERS:,} JSON arrays and objects; "
            "send it in several requests"
        )
    if shape.commas + shape.containers > MAX_VALUES:
        raise ShapeError(
            f"request holds more than {MAX_VALUES:,} JSON values; send it in several requests"
        )
