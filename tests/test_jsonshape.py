"""json_shape / check_shape: what parsing a JSON text would build, read before parsing it."""

from __future__ import annotations

import json

import pytest

from nexus import jsonshape
from nexus.jsonshape import MAX_DEPTH, ShapeError, check_shape, json_shape


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b'{"a": 1}', 1),
        (b"[" * 200 + b"]" * 200, 200),
        (b'{"s": "' + b"[" * 500 + b'"}' + b"[]" * 300, 1),
        (b'{"s": "\\"' + b"[" * 500 + b'"}' + b"[" * 130 + b"]" * 130, 130),
        # an escaped backslash ends before the quote, which closes the string
        (b'{"s": "\\\\", "t": [[[]]]}', 4),
        (b'{"s": "\\\\\\"[[[[", "t": []}', 2),
    ],
)
def test_brackets_in_strings_do_not_count(raw: bytes, depth: int) -> None:
    assert json_shape(raw).depth == depth
    if depth > MAX_DEPTH:
        with pytest.raises(ShapeError, match="nested more than"):
            check_shape(raw)


def test_containers_and_commas_outside_strings() -> None:
    raw = json.dumps({"a": [1, 2, {"b": "x,y,[z]"}], "c": []}).encode()
    shape = json_shape(raw)
    assert (shape.depth, shape.containers, shape.commas) == (3, 4, 3)


def test_a_string_across_scanned_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonshape, "_CHUNK", 7)
    raw = json.dumps({"text": "[{,}]" * 20, "list": [[1, 2], [3]]}).encode()
    shape = json_shape(raw)
    assert (shape.depth, shape.containers, shape.commas) == (3, 4, 3)


def test_many_small_values_are_refused_before_parsing() -> None:
    pairs = b"[" + b",".join([b"[1,2]"] * (jsonshape.MAX_CONTAINERS + 1)) + b"]"
    with pytest.raises(ShapeError, match="arrays and objects"):
        check_shape(b'{"input": ' + pairs + b"}")
    numbers = b"[" + b",".join([b"1"] * (jsonshape.MAX_VALUES + 1)) + b"]"
    with pytest.raises(ShapeError, match="values"):
        check_shape(b'{"context": ' + numbers + b"}")


def test_large_texts_with_commas_and_brackets_inside_strings_pass() -> None:
    prose = "a, [b], {c}, " * 1_000_000  # 13 MB of text, three million commas in it
    check_shape(json.dumps({"prompt": prose, "context": list(range(100_000))}).encode())
