"""The hot paths' JSON: compact UTF-8 as the standard library writes it, valid JSON where the
standard library is not, and nothing that encoded before failing now."""

from __future__ import annotations

import json
import math

import pytest

from nexus.jsonio import dumpb, without_lone_surrogates


def test_compact_utf8_as_the_standard_library_writes_it() -> None:
    chunk = {"model": "m", "message": {"role": "assistant", "content": "é 漢 \u2028 \"q\"\n"},
             "done": False, "n": [1, 2.5, None, True]}  # fmt: skip
    assert dumpb(chunk) == json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


def test_non_finite_numbers_become_null_which_parsers_accept() -> None:
    out = dumpb({"a": math.nan, "b": math.inf})
    assert json.loads(out) == {"a": None, "b": None}


def test_what_orjson_declines_goes_to_the_standard_encoder() -> None:
    big = {"arguments": {"n": 10**30}, 3: "int key"}
    assert json.loads(dumpb(big)) == {"arguments": {"n": 10**30}, "3": "int key"}
    with pytest.raises(TypeError):
        dumpb({"x": object()})


def test_a_lone_surrogate_is_written_as_an_escape() -> None:
    """A client's ``"\\ud800"`` decodes to text UTF-8 cannot hold; echoed back (a Responses
    object's ``instructions``), it stays an escape and the body stays valid UTF-8."""
    out = dumpb({"instructions": "a\ud800b", "text": "é"})
    out.decode("utf-8")
    assert json.loads(out) == {"instructions": "a\ud800b", "text": "é"}


def test_lone_surrogates_read_as_replacement_characters_and_pairs_stay() -> None:
    raw = rb'{"k\ud800": ["x\udfffy", "\ud83d\ude00", 1, {"n": "\uDBFF"}]}'
    data = without_lone_surrogates(raw, json.loads(raw))
    assert data == {"k\ufffd": ["x\ufffdy", "\U0001f600", 1, {"n": "\ufffd"}]}
    plain = {"a": "é"}
    assert without_lone_surrogates(b'{"a": "\\u00e9"}', plain) is plain
