"""Ollama's model options: names, types, defaults, validation, and the engine's names for them.

Two entry points validate, because Ollama treats the two sources differently:

- :func:`validate_parameters` for Modelfile ``PARAMETER`` lines and /api/create ``parameters``:
  text is converted to the option's type as ``api.FormatParams`` does, an unknown name is an
  error (``unknown parameter 'x'``), a value that does not convert is an error
  (``invalid int value [abc]``), and deprecated names are dropped.
- :func:`validate_request_options` for the ``options`` object of /api/generate, /api/chat and
  /api/embed: like ``api.Options.FromMap``, unknown keys are ignored, ``null`` is ignored, and a
  value of the wrong JSON type is an error (``option "temperature" must be of type float32``).

Load options (context size, batch, GPU layers, threads, mmap) select a runner; sampling options
travel with each request. :func:`split_options` separates them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nexus.errors import BadRequest

__all__ = [
    "DEFAULTS",
    "DEPRECATED_PARAMETERS",
    "LOAD_OPTIONS",
    "OPTIONS",
    "SAMPLING_OPTIONS",
    "OptionSpec",
    "check_load_options",
    "merge_options",
    "split_options",
    "to_engine_params",
    "validate_parameters",
    "validate_request_options",
]

OptionKind = Literal["int", "float", "bool", "strings"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its JSON type, whether it is fixed when the model loads, its default."""

    name: str
    kind: OptionKind
    load: bool
    #: Ollama's ``DefaultOptions`` value; ``None`` where the server decides (num_ctx, use_mmap...).
    default: Any = None


_SPECS = (
    # Fixed when the runner loads (api.Runner).
    OptionSpec("num_ctx", "int", True),
    OptionSpec("num_batch", "int", True, 512),
    OptionSpec("num_gpu", "int", True, -1),
    OptionSpec("main_gpu", "int", True),
    OptionSpec("use_mmap", "bool", True),
    OptionSpec("num_thread", "int", True, 0),
    OptionSpec("draft_num_predict", "int", True, 4),
    # Sent with each request.
    OptionSpec("num_keep", "int", False, 4),
    OptionSpec("seed", "int", False, -1),
    OptionSpec("num_predict", "int", False, -1),
    OptionSpec("top_k", "int", False, 40),
    OptionSpec("top_p", "float", False, 0.9),
    OptionSpec("min_p", "float", False, 0.0),
    OptionSpec("typical_p", "float", False, 1.0),
    OptionSpec("repeat_last_n", "int", False, 64),
    OptionSpec("temperature", "float", False, 0.8),
    OptionSpec("repeat_penalty", "float", False, 1.0),
    OptionSpec("presence_penalty", "float", False, 0.0),
    OptionSpec("frequency_penalty", "float", False, 0.0),
    OptionSpec("stop", "strings", False),
)

#: Every option Ollama knows, by name.
OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in _SPECS}
LOAD_OPTIONS = frozenset(spec.name for spec in _SPECS if spec.load)
SAMPLING_OPTIONS = frozenset(spec.name for spec in _SPECS if not spec.load)
#: Defaults that Ollama fixes (options whose default depends on the machine are left out).
DEFAULTS: dict[str, Any] = {s.name: s.default for s in _SPECS if s.default is not None}
#: Parameter names a Modelfile may still carry; Ollama warns and drops them.
DEPRECATED_PARAMETERS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

# Ollama sampling name -> llama.cpp server request field.
_ENGINE_NAMES = {
    "num_predict": "n_predict",
    "num_keep": "n_keep",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "stop": "stop",
}

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
#: What the engine holds each integer option in: int32, but the seed is a uint32 (-1: random).
_INT_RANGES = {"seed": (_INT32_MIN, 2**32 - 1)}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_FLOAT_TEXT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_SPECIAL_FLOATS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}
_TRUE_TEXT = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE_TEXT = frozenset({"0", "f", "F", "FALSE", "false", "False"})


# --- /api/create and Modelfile parameters -----------------------------------------------------


def validate_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check and type the ``parameters`` of a model being created.

    Values may be text (a Modelfile line, converted like Go's ``strconv``), a list of texts (a
    repeated ``PARAMETER``; scalar options take the first) or already-typed JSON values from an
    /api/create body. ``stop`` always comes back as a list of strings; floats are rounded to
    float32, as Ollama stores them. Raises :class:`BadRequest` on an unknown name or a value
    that does not convert.
    """
    out: dict[str, Any] = {}
    for name, raw in params.items():
        if name in DEPRECATED_PARAMETERS:
            continue
        spec = OPTIONS.get(name)
        if spec is None:
            raise BadRequest(f"unknown parameter '{name}'")
        values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if spec.kind == "strings":
            out[name] = _string_list(values)
            continue
        if not values:
            raise BadRequest(f"invalid {_TYPE_WORDS[spec.kind]} value []")
        out[name] = _convert_parameter(spec, values)
    return out


_TYPE_WORDS = {"int": "int", "float": "float", "bool": "bool", "strings": "string"}


def _convert_parameter(spec: OptionSpec, values: list[Any]) -> Any:
    value = values[0]
    converted: Any = None
    if spec.kind == "int":
        converted = _parse_int(value) if isinstance(value, str) else _native_int(value)
    elif spec.kind == "float":
        converted = _parse_float(value) if isinstance(value, str) else _native_float(value)
    elif spec.kind == "bool":
        if isinstance(value, bool):
            converted = value
        elif isinstance(value, str):
            converted = True if value in _TRUE_TEXT else False if value in _FALSE_TEXT else None
    if converted is None:
        raise BadRequest(f"invalid {_TYPE_WORDS[spec.kind]} value {_go_list(values)}")
    return converted


def _string_list(values: list[Any]) -> list[str]:
    for value in values:
        if not isinstance(value, str):
            raise BadRequest('option "stop" must be of an array of strings')
    return [str(v) for v in values]


def _parse_int(text: str) -> int | None:
    if not _INT_TEXT.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _native_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _parse_float(text: str) -> float | None:
    if _FLOAT_TEXT.fullmatch(text):
        value = float(text)
    elif _HEX_FLOAT_TEXT.fullmatch(text):
        value = float.fromhex(text)
    elif text.lower() in _SPECIAL_FLOATS:
        # Go parses these, but a non-finite option cannot be stored as JSON: refuse it here.
        return None
    else:
        return None
    return _to_float32(value)


def _native_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return _to_float32(float(value))


def _to_float32(value: float) -> float | None:
    """``value`` as the float32 Ollama keeps, written back as its shortest decimal (0.7, not
    0.699999988...); ``None`` when it is not finite or too large for a float32."""
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        return None
    return float(str(np.float32(value)))


def _go_list(values: list[Any]) -> str:
    """A list as Go's ``%s``/``%v`` prints it: ``[a b]``."""
    return "[" + " ".join(_go_plain(v) for v in values) + "]"


def _go_plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


# --- request options --------------------------------------------------------------------------


def validate_request_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the ``options`` object of a generate, chat or embed request.

    Follows ``api.Options.FromMap``: unknown (and deprecated) keys and ``null`` values are
    dropped, a number is accepted for an integer option and cut to an integer (JSON numbers are
    all float64 in Go), and a value of the wrong type raises :class:`BadRequest` with Ollama's
    wording. ``stop`` may also be a single string, as Ollama's API documentation allows.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise BadRequest("options must be an object")
    out: dict[str, Any] = {}
    for key, value in options.items():
        spec = OPTIONS.get(key)
        if spec is None or value is None:
            continue
        out[key] = _check_request_value(spec, value)
    return out


def _check_request_value(spec: OptionSpec, value: Any) -> Any:
    key = spec.name
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f'option "{key}" must be of type integer', param=key)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise BadRequest(f'option "{key}" must be of type integer', param=key)
            value = int(value)  # Go's int64(f) truncates toward zero
        low, high = _INT_RANGES.get(key, (_INT32_MIN, _INT32_MAX))
        if not low <= value <= high:
            raise BadRequest(f'option "{key}" must be between {low} and {high}', param=key)
        return value
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f'option "{key}" must be of type float32', param=key)
        return float(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise BadRequest(f'option "{key}" must be of type boolean', param=key)
        return value
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise BadRequest(f'option "{key}" must be of type array', param=key)
    if not all(isinstance(item, str) for item in value):
        raise BadRequest(f'option "{key}" must be of an array of strings', param=key)
    return list(value)


# --- combining and splitting ------------------------------------------------------------------


def merge_options(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options from several layers (defaults, model, request...): later layers win.

    ``None`` layers are skipped, and so are ``None`` values, which (as in Ollama) never clear
    an option set by an earlier layer.
    """
    out: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if value is not None:
                out[key] = list(value) if isinstance(value, list) else value
    return out


def split_options(opts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(load, sampling)``: the options that pick a runner, and those sent with each request.

    Names that are neither (unknown or deprecated) are left out of both.
    """
    load = {k: v for k, v in opts.items() if k in LOAD_OPTIONS}
    sampling = {k: v for k, v in opts.items() if k in SAMPLING_OPTIONS}
    return load, sampling


def to_engine_params(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling options under the llama.cpp server's request names (``num_predict`` ->
    ``n_predict``, ``num_keep`` -> ``n_keep``, the rest unchanged).

    Both sides use -1 for "random seed" and "no token limit", so values pass through; load
    options and unknown names are left out, and ``None`` values are skipped.
    """
    out: dict[str, Any] = {}
    for key, value in sampling.items():
        engine_key = _ENGINE_NAMES.get(key)
        if engine_key is None or value is None:
            continue
        if key == "stop":
            out[engine_key] = [value] if isinstance(value, str) else list(value)
        else:
            out[engine_key] = value
    return out


def check_load_options(
    options: Mapping[str, Any], *, context_limit: int, batch_limit: int, cpus: int
) -> None:
    """Refuse a request's load options past what the machine and the model allow.

    ``num_ctx`` up to ``context_limit`` (the model's trained context, or what memory holds),
    ``num_batch`` up to ``batch_limit``, ``num_thread`` up to the machine's ``cpus`` (more
    threads than cores only slow every process on the host), ``num_gpu`` from -1 (as many
    layers as fit) and ``main_gpu`` from 0; 0 for ``num_ctx``, ``num_batch`` and
    ``num_thread`` means the server's default. Raises :class:`BadRequest` naming the option.
    """
    bounds = {
        "num_ctx": (0, context_limit, "the model's context length or what memory holds"),
        "num_batch": (0, batch_limit, "the model's context length"),
        "num_thread": (0, cpus, "the CPUs of this machine"),
        "num_gpu": (-1, _INT32_MAX, ""),
        "main_gpu": (0, 255, ""),
    }
    for key, (low, high, why) in bounds.items():
        value = options.get(key)
        if value is None:
            continue
        if value < low:
            raise BadRequest(f'option "{key}" must be at least {low}, not {value}', param=key)
        if value > high:
            raise BadRequest(
                f'option "{key}" must be at most {high} ({why}), not {value}', param=key
            )
