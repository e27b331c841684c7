"""Ollama's options: the table, Modelfile/create parameters, request options, engine names."""

from __future__ import annotations

import math

import pytest

from nexus.errors import BadRequest
from nexus.options import (
    DEFAULTS,
    DEPRECATED_PARAMETERS,
    LOAD_OPTIONS,
    OPTIONS,
    SAMPLING_OPTIONS,
    merge_options,
    split_options,
    to_engine_params,
    validate_parameters,
    validate_request_options,
)

# --- the table --------------------------------------------------------------------------------


def test_table_covers_ollamas_parameters() -> None:
    expected = {
        "num_ctx": "int",
        "num_batch": "int",
        "num_gpu": "int",
        "main_gpu": "int",
        "use_mmap": "bool",
        "num_thread": "int",
        "num_keep": "int",
        "seed": "int",
        "num_predict": "int",
        "top_k": "int",
        "top_p": "float",
        "min_p": "float",
        "typical_p": "float",
        "repeat_last_n": "int",
        "temperature": "float",
        "repeat_penalty": "float",
        "presence_penalty": "float",
        "frequency_penalty": "float",
        "stop": "strings",
        "draft_num_predict": "int",
    }
    assert {name: spec.kind for name, spec in OPTIONS.items()} == expected


def test_load_and_sampling_sets() -> None:
    assert {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread"} <= LOAD_OPTIONS
    assert "temperature" in SAMPLING_OPTIONS and "stop" in SAMPLING_OPTIONS
    assert "num_predict" in SAMPLING_OPTIONS and "num_keep" in SAMPLING_OPTIONS
    assert not LOAD_OPTIONS & SAMPLING_OPTIONS
    assert set(OPTIONS) == LOAD_OPTIONS | SAMPLING_OPTIONS


def test_defaults_match_ollama() -> None:
    assert DEFAULTS["temperature"] == 0.8
    assert DEFAULTS["top_k"] == 40
    assert DEFAULTS["top_p"] == 0.9
    assert DEFAULTS["typical_p"] == 1.0
    assert DEFAULTS["repeat_last_n"] == 64
    assert DEFAULTS["repeat_penalty"] == 1.0
    assert DEFAULTS["num_predict"] == -1
    assert DEFAULTS["seed"] == -1
    assert DEFAULTS["num_keep"] == 4
    assert DEFAULTS["num_batch"] == 512
    assert DEFAULTS["num_gpu"] == -1
    assert "num_ctx" not in DEFAULTS  # decided by the server (env / memory)


# --- validate_parameters (Modelfile, /api/create) -------------------------------------------


def test_parameters_from_text_are_typed() -> None:
    out = validate_parameters(
        {
            "num_ctx": "4096",
            "temperature": "0.7",
            "top_k": "+20",
            "seed": "-1",
            "use_mmap": "false",
            "stop": "<|im_end|>",
        }
    )
    assert out == {
        "num_ctx": 4096,
        "temperature": 0.7,
        "top_k": 20,
        "seed": -1,
        "use_mmap": False,
        "stop": ["<|im_end|>"],
    }
    assert type(out["num_ctx"]) is int
    assert type(out["temperature"]) is float


def test_parameter_floats_are_float32_in_shortest_form() -> None:
    out = validate_parameters({"temperature": "0.1", "top_p": 0.95, "min_p": "1e-3"})
    assert out == {"temperature": 0.1, "top_p": 0.95, "min_p": 0.001}
    # a float64 value that float32 cannot hold exactly is rounded to float32
    assert validate_parameters({"temperature": 0.123456789})["temperature"] == 0.12345679


def test_repeated_stop_accumulates_and_other_lists_take_first() -> None:
    assert validate_parameters({"stop": ["a", "b", "c"]}) == {"stop": ["a", "b", "c"]}
    assert validate_parameters({"num_ctx": ["2048", "4096"]}) == {"num_ctx": 2048}


def test_parameters_already_typed_from_json() -> None:
    out = validate_parameters(
        {"num_ctx": 8192, "num_predict": 128.0, "temperature": 1, "use_mmap": True}
    )
    assert out == {"num_ctx": 8192, "num_predict": 128, "temperature": 1.0, "use_mmap": True}


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "t", "T", "1"])
def test_go_true_spellings(text: str) -> None:
    assert validate_parameters({"use_mmap": text}) == {"use_mmap": True}


@pytest.mark.parametrize("text", ["false", "False", "FALSE", "f", "F", "0"])
def test_go_false_spellings(text: str) -> None:
    assert validate_parameters({"use_mmap": text}) == {"use_mmap": False}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num_ctx", "abc", "invalid int value [abc]"),
        ("num_ctx", "1.5", "invalid int value [1.5]"),
        ("num_ctx", "1_000", "invalid int value [1_000]"),
        ("num_ctx", " 12", "invalid int value [ 12]"),
        ("num_ctx", "99999999999999999999", "invalid int value [99999999999999999999]"),
        ("num_ctx", 1.5, "invalid int value [1.5]"),
        ("num_ctx", True, "invalid int value [true]"),
        ("temperature", "hot", "invalid float value [hot]"),
        ("temperature", "1e39", "invalid float value [1e39]"),
        ("temperature", "NaN", "invalid float value [NaN]"),
        ("temperature", False, "invalid float value [false]"),
        ("use_mmap", "yes", "invalid bool value [yes]"),
        ("use_mmap", 1, "invalid bool value [1]"),
    ],
)
def test_parameter_conversion_errors(name: str, value: object, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        validate_parameters({name: value})
    assert err.value.message == message
    assert err.value.status == 400


def test_unknown_parameter_is_an_error() -> None:
    with pytest.raises(BadRequest) as err:
        validate_parameters({"temprature": "0.5"})
    assert err.value.message == "unknown parameter 'temprature'"


def test_deprecated_parameters_are_dropped() -> None:
    params = {name: "1" for name in DEPRECATED_PARAMETERS} | {"top_k": "5"}
    assert validate_parameters(params) == {"top_k": 5}


def test_stop_must_hold_strings() -> None:
    with pytest.raises(BadRequest):
        validate_parameters({"stop": ["ok", 3]})


def test_hex_float_text_is_accepted_like_go() -> None:
    assert validate_parameters({"temperature": "0x1p-1"}) == {"temperature": 0.5}


# --- validate_request_options ------------------------------------------------------------------


def test_request_options_pass_good_values() -> None:
    opts = {"temperature": 0, "num_ctx": 2048, "stop": ["\n"], "use_mmap": False, "top_p": 0.5}
    assert validate_request_options(opts) == {
        "temperature": 0.0,
        "num_ctx": 2048,
        "stop": ["\n"],
        "use_mmap": False,
        "top_p": 0.5,
    }


def test_request_options_ignore_unknown_deprecated_and_null() -> None:
    opts = {"bogus": 1, "mirostat": 2, "penalize_newline": True, "seed": None, "top_k": 3}
    assert validate_request_options(opts) == {"top_k": 3}
    assert validate_request_options(None) == {}
    assert validate_request_options({}) == {}


def test_request_int_option_accepts_a_float_and_truncates() -> None:
    assert validate_request_options({"num_predict": 12.9}) == {"num_predict": 12}
    assert validate_request_options({"seed": -3.7}) == {"seed": -3}


def test_request_stop_may_be_one_string() -> None:
    assert validate_request_options({"stop": "END"}) == {"stop": ["END"]}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", "hot", 'option "temperature" must be of type float32'),
        ("temperature", True, 'option "temperature" must be of type float32'),
        ("num_ctx", "4096", 'option "num_ctx" must be of type integer'),
        ("num_ctx", False, 'option "num_ctx" must be of type integer'),
        ("num_ctx", math.inf, 'option "num_ctx" must be of type integer'),
        ("use_mmap", "true", 'option "use_mmap" must be of type boolean'),
        ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
        ("stop", 5, 'option "stop" must be of type array'),
        ("stop", ["a", 1], 'option "stop" must be of an array of strings'),
    ],
)
def test_request_option_type_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        validate_request_options({key: value})
    assert err.value.message == message
    assert err.value.param == key


def test_request_options_must_be_an_object() -> None:
    with pytest.raises(BadRequest):
        validate_request_options(["temperature"])  # type: ignore[arg-type]


# --- merge / split / engine -------------------------------------------------------------------


def test_merge_later_layers_win_and_none_is_skipped() -> None:
    defaults = {"temperature": 0.8, "top_k": 40, "stop": ["a"]}
    model = {"temperature": 0.2, "stop": ["<|im_end|>"]}
    request = {"temperature": 1.1, "top_k": None}
    merged = merge_options(defaults, None, model, request)
    assert merged == {"temperature": 1.1, "top_k": 40, "stop": ["<|im_end|>"]}
    merged["stop"].append("x")
    assert model["stop"] == ["<|im_end|>"]  # lists are copied, layers are left alone
    assert merge_options() == {}


def test_split_options() -> None:
    load, sampling = split_options(
        {"num_ctx": 4096, "num_thread": 2, "temperature": 0.1, "stop": ["x"], "bogus": 1}
    )
    assert load == {"num_ctx": 4096, "num_thread": 2}
    assert sampling == {"temperature": 0.1, "stop": ["x"]}


def test_to_engine_params_renames() -> None:
    sampling = {
        "num_predict": 64,
        "num_keep": 4,
        "temperature": 0.0,
        "top_k": 1,
        "top_p": 0.9,
        "min_p": 0.05,
        "typical_p": 1.0,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "seed": -1,
        "stop": ["\n\n"],
    }
    assert to_engine_params(sampling) == {
        "n_predict": 64,
        "n_keep": 4,
        "temperature": 0.0,
        "top_k": 1,
        "top_p": 0.9,
        "min_p": 0.05,
        "typical_p": 1.0,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "seed": -1,
        "stop": ["\n\n"],
    }


def test_to_engine_params_drops_load_unknown_and_none() -> None:
    assert to_engine_params({"num_ctx": 2048, "bogus": 1, "seed": None, "stop": "x"}) == {
        "stop": ["x"]
    }
