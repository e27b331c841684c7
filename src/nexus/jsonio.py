"""JSON written on the hot path (every streamed chunk, every reply body) through ``orjson``.

Compact UTF-8 as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes it, with
two differences for the better: a NaN or infinity is written as ``null`` (what a JSON parser
accepts), and the output is bytes already. Where ``orjson`` declines (an integer beyond 64 bits
from a model's tool arguments, say) the standard library's encoder takes over, so nothing that
encoded before fails now.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumpb(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
