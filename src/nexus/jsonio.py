"""JSON written on the hot path (every streamed chunk, every reply body) through ``orjson``.

Compact UTF-8 as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes it, with two
differences for the better: a NaN or infinity is written as ``null`` (what a JSON parser accepts),
and the output is bytes already. NumPy arrays (embeddings) are written as lists, 32-bit floats in
their own shortest form, as Go writes them. Where ``orjson`` declines (an integer beyond 64 bits
from a model's tool arguments, a lone surrogate from a client's ``"\\ud800"``) the standard
library's encoder takes over, writing non-ASCII text as escapes, so the output is valid UTF-8 and
nothing that encoded before fails now.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
#: An escaped UTF-16 surrogate: half of a pair, or a lone one that UTF-8 cannot hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumpb(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # a NumPy array or number
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def without_lone_surrogates(raw: bytes, data: Any) -> Any:
    """``data``, parsed from the JSON text ``raw``, with every lone surrogate in its texts (keys
    too) replaced by U+FFFD, as Go's JSON decoder reads them (Python's keeps them, as text that
    cannot be written as UTF-8). ``data`` itself when ``raw`` escapes no surrogate."""
    if not _SURROGATE_ESCAPE.search(raw):
        return data  # (pairs are joined by the parser: only lone ones are left to replace)
    return _replaced(data)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    if isinstance(value, dict):
        return {_replaced(k): _replaced(v) for k, v in value.items()}
    return value
