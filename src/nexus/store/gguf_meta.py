"""Key/value metadata of a GGUF file: what /api/show, /api/tags and the scheduler need.

Only the header is read (key/values and the tensor directory); tensor data is never touched.
``gguf.GGUFReader`` builds a numpy view per array element, which costs seconds on a model with
a large vocabulary, so the header is walked here directly over a memory map, with the ``gguf``
package supplying the type codes, the magic number and the file-type names.

The figures follow Ollama (``fs/ggml``): ``general.parameter_count`` is the sum of the tensors'
element counts (Ollama overwrites the stored key with it), ``parameter_size`` is that number in
``format.HumanNumber`` form and ``quantization_level`` is the name of ``general.file_type``.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUF_MAGIC, GGMLQuantizationType, GGUFValueType, LlamaFileType

__all__ = [
    "GGUFInfo",
    "TensorInfo",
    "human_number",
    "kv_cache_bytes",
    "read_gguf_info",
]

# Arrays up to this many elements are kept in memory; longer ones (token lists, merges, scores)
# are only counted, and read again from the file when a verbose listing asks for them.
_INLINE_ARRAY_MAX = 64

# Ollama's ggml.FileTypeUnknown; general.file_type absent or 0 reads as this.
_FILE_TYPE_UNKNOWN = 1024

# Keys /api/show leaves out of model_info.
_HIDDEN_KEYS = frozenset({"general.name", "tokenizer.chat_template"})

# Architectures that only encode: no completion, embeddings only.
_ENCODER_ARCHS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "neo-bert", "modern-bert", "t5encoder"}
)

_SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}

_NUMPY_TYPES: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "u1",
    GGUFValueType.INT8: "i1",
    GGUFValueType.UINT16: "u2",
    GGUFValueType.INT16: "i2",
    GGUFValueType.UINT32: "u4",
    GGUFValueType.INT32: "i4",
    GGUFValueType.FLOAT32: "f4",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "u8",
    GGUFValueType.INT64: "i8",
    GGUFValueType.FLOAT64: "f8",
}

# Bytes per cached element, as (numerator, denominator): quantised types store blocks of 32.
_CACHE_TYPE_BYTES: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q5_1": (24, 32),
    "q5_0": (22, 32),
    "q4_1": (20, 32),
    "q4_0": (18, 32),
    "iq4_nl": (18, 32),
}


@dataclass(frozen=True)
class _LongArray:
    """Stands in for an array too long to keep: its element type and its length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor directory, as /api/show lists it (``name``, ``type``, ``shape``)."""

    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "shape": list(self.shape)}


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file says about its model; built by :func:`read_gguf_info`."""

    path: Path
    architecture: str
    family: str
    families: list[str]
    parameter_count: int
    parameter_size: str
    file_type: int
    quantization_level: str
    context_length: int
    embedding_length: int
    block_count: int
    head_count: int
    head_count_kv: int
    key_length: int
    value_length: int
    chat_template: str | None
    pooling_type: int | None
    has_vision: bool
    is_embedding_only: bool
    bos_token_id: int | None
    eos_token_id: int | None
    #: KV heads of each layer (a per-layer array in some models; 0 for layers without attention).
    head_count_kv_per_layer: tuple[int, ...] = field(repr=False, default=())
    tensors: tuple[TensorInfo, ...] = field(repr=False, default=())
    #: Every key/value of the header; arrays longer than 64 items are only counted.
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value by full key; long arrays come back as ``None``."""
        value = self.metadata.get(key, default)
        return None if isinstance(value, _LongArray) else value

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        """A value under this model's architecture prefix, e.g. ``arch_key("rope.freq_base")``."""
        return self.get(f"{self.architecture}.{suffix}", default)

    def model_info(self, verbose: bool = False) -> dict[str, Any]:
        """The ``model_info`` object of /api/show, keys sorted as Go prints a map.

        Like Ollama, ``general.name`` and ``tokenizer.chat_template`` are left out and
        ``general.parameter_count`` is the tensor total. Without ``verbose`` every non-empty
        array is ``None`` (Ollama reads arrays with a maximum size of 0); with it, the arrays are
        read back from the file in full.
        """
        source = self.metadata
        if verbose and any(isinstance(v, _LongArray) for v in source.values()):
            source, _ = _read_header(self.path, keep_arrays=True)
        out: dict[str, Any] = {}
        for key, value in source.items():
            if key in _HIDDEN_KEYS:
                continue
            if not verbose and isinstance(value, (list, _LongArray)):
                value = [] if _array_len(value) == 0 else None
            out[key] = value
        out["general.parameter_count"] = self.parameter_count
        return dict(sorted(out.items()))

    def tensor_list(self) -> list[dict[str, Any]]:
        """The ``tensors`` of a verbose /api/show: ``[{"name", "type", "shape"}, ...]``."""
        return [t.to_dict() for t in self.tensors]


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: 134515008 -> ``134.52M``, 8030261248 -> ``8.0B``."""
    if n >= 1_000_000_000:
        value = n / 1_000_000_000
        return f"{value:.0f}B" if value == math.floor(value) else f"{value:.1f}B"
    if n >= 1_000_000:
        value = n / 1_000_000
        return f"{value:.0f}M" if value == math.floor(value) else f"{value:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read the header of the GGUF file at ``path``.

    Raises ``ValueError`` when the file is not GGUF (bad magic, unknown version or value type,
    truncated header) and ``OSError`` when it cannot be opened.
    """
    path = Path(path)
    kv, tensors = _read_header(path, keep_arrays=False)

    arch = _as_str(kv.get("general.architecture")) or "unknown"

    def arch_value(suffix: str) -> Any:
        value = kv.get(f"{arch}.{suffix}")
        return None if isinstance(value, _LongArray) else value

    block_count = _as_int(arch_value("block_count"))
    embedding_length = _as_int(arch_value("embedding_length"))
    heads = _head_counts(arch_value("attention.head_count"))
    # Without head_count_kv every head has its own K and V (llama.cpp's rule).
    kv_value = arch_value("attention.head_count_kv")
    if kv_value is None:
        kv_value = arch_value("attention.head_count")
    heads_kv = _per_layer(kv_value, block_count)
    head_count = max(heads)
    head_count_min = min(heads)
    head_dim = embedding_length // head_count_min if head_count_min > 0 else 0
    key_length = _as_int(arch_value("attention.key_length"), head_dim)
    value_length = _as_int(arch_value("attention.value_length"), head_dim)

    parameter_count = sum(t.n_elements for t in tensors)
    file_type = _as_int(kv.get("general.file_type"))
    if file_type <= 0:
        file_type = _FILE_TYPE_UNKNOWN

    template = _as_str(kv.get("tokenizer.chat_template")) or None
    pooling = arch_value("pooling_type")
    pooling_type = pooling if isinstance(pooling, int) and not isinstance(pooling, bool) else None
    has_vision = arch == "clip" or any(".vision." in key for key in kv)

    return GGUFInfo(
        path=path,
        architecture=arch,
        family=arch,
        families=[arch],
        parameter_count=parameter_count,
        parameter_size=human_number(parameter_count),
        file_type=file_type,
        quantization_level=_file_type_name(file_type),
        context_length=_as_int(arch_value("context_length")),
        embedding_length=embedding_length,
        block_count=block_count,
        head_count=head_count,
        head_count_kv=max(_head_counts(kv_value)),
        key_length=key_length,
        value_length=value_length,
        chat_template=template,
        pooling_type=pooling_type,
        has_vision=has_vision,
        is_embedding_only=pooling_type is not None or arch in _ENCODER_ARCHS,
        bos_token_id=_as_opt_int(kv.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_as_opt_int(kv.get("tokenizer.ggml.eos_token_id")),
        head_count_kv_per_layer=tuple(heads_kv),
        tensors=tuple(tensors),
        metadata=kv,
    )


def kv_cache_bytes(info: GGUFInfo, n_ctx: int, cache_type: str = "f16") -> int:
    """Estimated size in bytes of the KV cache for ``n_ctx`` tokens of context.

    Sums, over the layers, ``n_ctx * n_head_kv * (key_length + value_length)`` elements, at
    2 bytes for f16, 34/32 for q8_0 and 18/32 for q4_0 (blocks of 32 with a scale).
    Raises ``ValueError`` for a cache type llama.cpp does not offer.
    """
    try:
        num, den = _CACHE_TYPE_BYTES[cache_type.lower()]
    except KeyError:
        known = ", ".join(_CACHE_TYPE_BYTES)
        raise ValueError(f"unknown KV cache type {cache_type!r} (known: {known})") from None
    if n_ctx <= 0:
        return 0
    per_layer = info.head_count_kv_per_layer
    elements = n_ctx * sum(h * (info.key_length + info.value_length) for h in per_layer)
    return -(-elements * num // den)


# --- header parsing ---------------------------------------------------------------------------


class _Cursor:
    """Sequential reads over the memory-mapped header, in the file's byte order."""

    def __init__(self, buf: mmap.mmap, order: str) -> None:
        self.buf = buf
        self.order = order
        self.pos = 0
        self._cache: dict[str, struct.Struct] = {}

    def scalar(self, fmt: str) -> Any:
        st = self._cache.get(fmt)
        if st is None:
            st = self._cache[fmt] = struct.Struct(self.order + fmt)
        if self.pos + st.size > len(self.buf):
            raise ValueError("truncated GGUF header")
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def string(self) -> str:
        length = self.scalar("Q")
        end = self.pos + length
        if end > len(self.buf):
            raise ValueError("truncated GGUF header")
        text = self.buf[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end
        return text

    def skip_strings(self, count: int) -> None:
        st = struct.Struct(self.order + "Q")
        buf, pos, size = self.buf, self.pos, len(self.buf)
        for _ in range(count):
            if pos + 8 > size:
                raise ValueError("truncated GGUF header")
            pos += 8 + st.unpack_from(buf, pos)[0]
        if pos > size:
            raise ValueError("truncated GGUF header")
        self.pos = pos

    def value(self, vtype: int, keep_arrays: bool) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            return self.array(keep_arrays)
        try:
            fmt = _SCALAR_FORMATS[GGUFValueType(vtype)]
        except ValueError:
            raise ValueError(f"invalid GGUF value type {vtype}") from None
        value = self.scalar(fmt)
        return _short_float32(value) if vtype == GGUFValueType.FLOAT32 else value

    def array(self, keep_arrays: bool) -> Any:
        item_type = self.scalar("I")
        count = self.scalar("Q")
        keep = keep_arrays or count <= _INLINE_ARRAY_MAX
        if item_type == GGUFValueType.STRING:
            if keep:
                return [self.string() for _ in range(count)]
            self.skip_strings(count)
            return _LongArray(item_type, count)
        if item_type == GGUFValueType.ARRAY:
            # Nested arrays are legal GGUF, though no model writer uses them.
            items = [self.array(keep_arrays) for _ in range(count)]
            return items if keep else _LongArray(item_type, count)
        try:
            dtype = np.dtype(self.order + _NUMPY_TYPES[GGUFValueType(item_type)])
        except ValueError:
            raise ValueError(f"invalid GGUF array type {item_type}") from None
        end = self.pos + count * dtype.itemsize
        if end > len(self.buf):
            raise ValueError("truncated GGUF header")
        if keep:
            data = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            result: Any = (
                [_short_float32(float(x)) for x in data]
                if item_type == GGUFValueType.FLOAT32
                else data.tolist()
            )
        else:
            result = _LongArray(item_type, count)
        self.pos = end
        return result


def _read_header(path: Path, *, keep_arrays: bool) -> tuple[dict[str, Any], list[TensorInfo]]:
    with path.open("rb") as fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise ValueError(f"{path} is not a GGUF file") from None
    try:
        return _parse(buf, path, keep_arrays)
    finally:
        buf.close()


def _parse(
    buf: mmap.mmap, path: Path, keep_arrays: bool
) -> tuple[dict[str, Any], list[TensorInfo]]:
    if len(buf) < 24 or struct.unpack_from("<I", buf, 0)[0] != GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file")
    order = "<"
    version = struct.unpack_from("<I", buf, 4)[0]
    if version & 0xFFFF == 0:  # written on a big-endian machine
        order = ">"
        version = struct.unpack_from(">I", buf, 4)[0]
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    cur = _Cursor(buf, order)
    cur.pos = 8
    n_tensors = cur.scalar("Q")
    n_kv = cur.scalar("Q")

    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        kv[key] = cur.value(cur.scalar("I"), keep_arrays)

    tensors: list[TensorInfo] = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("I")
        if n_dims > 8:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(cur.scalar("Q") for _ in range(n_dims))
        kind = cur.scalar("I")
        cur.scalar("Q")  # offset of the data
        tensors.append(TensorInfo(name=name, type=_tensor_type_name(kind), shape=shape))
    return kv, tensors


# --- small conversions ------------------------------------------------------------------------


def _short_float32(value: float) -> float:
    """The float64 nearest the shortest decimal that names this float32 (1e-05, not 9.99e-06).

    That is the number Ollama's JSON carries for a float32 key.
    """
    if not math.isfinite(value):
        return value
    return float(str(np.float32(value)))


def _array_len(value: Any) -> int:
    return value.length if isinstance(value, _LongArray) else len(value)


def _as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _as_opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _per_layer(value: Any, n_layers: int) -> list[int]:
    """A head count given as one number or one per layer, as one entry per layer (Ollama's rule:
    a single number covers every layer; missing entries of a shorter array count 1 head)."""
    counts = [_as_int(v) for v in value] if isinstance(value, list) else [_as_int(value, 1)]
    fill = counts[0] if len(counts) == 1 else 1
    return [counts[i] if i < len(counts) else fill for i in range(n_layers)]


def _head_counts(value: Any) -> list[int]:
    """Every head count a key lists (one, or one per layer); ``[1]`` when it is absent."""
    if isinstance(value, list):
        return [_as_int(v) for v in value] or [1]
    return [_as_int(value, 1)]


def _file_type_name(file_type: int) -> str:
    if file_type == _FILE_TYPE_UNKNOWN:
        return "unknown"
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _tensor_type_name(kind: int) -> str:
    try:
        return GGMLQuantizationType(kind).name
    except ValueError:
        return "unknown"
