"""Llama-architecture GGUFs with random weights in the shapes of real models, for benchmarking
without downloads: the default model's tokenizer and chat template, F16 weights, and a Q4_K_M
variant made by llama.cpp's ``llama-quantize``. Cached under ``bench/.cache/synthetic``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

from nexus.store.default_model import default_gguf_path

CACHE = Path(__file__).resolve().parent / ".cache" / "synthetic"
SEED = 20240611
STD = 0.02
WEIGHTS = ("f16", "q4_k_m")
CONTROL_TOKEN = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL


@dataclass(frozen=True)
class Shape:
    """The dimensions of a llama-architecture model (the vocabulary comes from the tokenizer)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    rope_theta: float
    context: int
    tied_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


SHAPES = {
    "135m": Shape("135m", 576, 30, 9, 3, 1536, 100000.0, 8192, tied_embeddings=True),
    "1b": Shape("1b", 2048, 16, 32, 8, 8192, 500000.0, 131072, tied_embeddings=True),
    "8b": Shape("8b", 4096, 32, 32, 8, 14336, 500000.0, 131072, tied_embeddings=False),
}
TINY = Shape("tiny", 64, 2, 4, 2, 128, 10000.0, 2048, tied_embeddings=True)


@dataclass(frozen=True)
class Tokenizer:
    """Every ``tokenizer.*`` key of a GGUF, with its GGUF types, ready to be written again."""

    fields: list[tuple[str, Any, GGUFValueType, GGUFValueType | None]]
    vocab: int
    control_ids: list[int]


def read_tokenizer(path: Path) -> Tokenizer:
    reader = GGUFReader(path)
    fields = []
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            fields.append((name, field.contents(), field.types[0], sub_type))
    token_types = reader.fields["tokenizer.ggml.token_type"].contents()
    control = [i for i, kind in enumerate(token_types) if kind == CONTROL_TOKEN]
    return Tokenizer(fields, len(token_types), control)


def tensor_shapes(shape: Shape, vocab: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Names and numpy shapes (rows = outputs) in llama.cpp's naming, in file order."""
    kv = shape.kv_heads * shape.head_dim
    yield "token_embd.weight", (vocab, shape.hidden)
    for i in range(shape.layers):
        yield f"blk.{i}.attn_norm.weight", (shape.hidden,)
        yield f"blk.{i}.attn_q.weight", (shape.heads * shape.head_dim, shape.hidden)
        yield f"blk.{i}.attn_k.weight", (kv, shape.hidden)
        yield f"blk.{i}.attn_v.weight", (kv, shape.hidden)
        yield f"blk.{i}.attn_output.weight", (shape.hidden, shape.heads * shape.head_dim)
        yield f"blk.{i}.ffn_norm.weight", (shape.hidden,)
        yield f"blk.{i}.ffn_gate.weight", (shape.ffn, shape.hidden)
        yield f"blk.{i}.ffn_up.weight", (shape.ffn, shape.hidden)
        yield f"blk.{i}.ffn_down.weight", (shape.hidden, shape.ffn)
    yield "output_norm.weight", (shape.hidden,)
    if not shape.tied_embeddings:
        yield "output.weight", (vocab, shape.hidden)


def tensor_data(
    index: int, name: str, dims: tuple[int, ...], shape: Shape, tokenizer: Tokenizer
) -> np.ndarray[Any, Any]:
    """One tensor, the same on every call: norms are ones (F32, as llama.cpp keeps them), the
    rest normal F16."""
    if len(dims) == 1:
        return np.ones(dims, dtype=np.float32)
    rng = np.random.default_rng([SEED, index])
    draws = rng.standard_normal(dims, dtype=np.float32)
    draws *= STD
    data = draws.astype(np.float16)
    del draws
    output = "output.weight" if not shape.tied_embeddings else "token_embd.weight"
    if name == output:
        # a zero logit never wins greedy decoding over tens of thousands of random ones, so no
        # stream ends early on an end-of-generation token
        data[tokenizer.control_ids] = 0
    return data


def add_metadata(writer: GGUFWriter, shape: Shape, tokenizer: Tokenizer) -> None:
    writer.add_name(f"synthetic-{shape.name}")
    writer.add_block_count(shape.layers)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(tokenizer.vocab)
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(2)
    for key, value, vtype, sub_type in tokenizer.fields:
        writer.add_key_value(key, value, vtype, sub_type)


def write_gguf(shape: Shape, path: Path, tokenizer_from: Path | None = None) -> Path:
    """An F16 GGUF of ``shape`` at ``path``, written one tensor at a time."""
    tokenizer = read_tokenizer(tokenizer_from or default_gguf_path())
    writer = GGUFWriter(path, "llama")
    add_metadata(writer, shape, tokenizer)
    tensors = list(tensor_shapes(shape, tokenizer.vocab))
    for name, dims in tensors:
        dtype = np.float32 if len(dims) == 1 else np.float16
        nbytes = int(np.prod(dims)) * np.dtype(dtype).itemsize
        writer.add_tensor_info(name, dims, np.dtype(dtype), nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for index, (name, dims) in enumerate(tensors):
        writer.write_tensor_data(tensor_data(index, name, dims, shape, tokenizer))
    writer.close()
    return path


def quantize(source: Path, target: Path, kind: str) -> Path:
    from bench.peer import llama_quantize

    command = [str(llama_quantize()), str(source), str(target), kind.upper()]
    done = subprocess.run([*command, str(os.cpu_count() or 1)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        raise RuntimeError(f"llama-quantize failed (exit status {done.returncode}):\n{tail}")
    return target


def synthesize(shape: str, weights: str) -> Path:
    """The cached GGUF of ``shape`` (a key of ``SHAPES``) with ``weights`` ("f16" or
    "q4_k_m"), made first if the cache has no complete one."""
    if shape not in SHAPES or weights not in WEIGHTS:
        raise ValueError(f"no synthetic model {shape!r} with {weights!r} weights")
    path = CACHE / f"synthetic-{shape}-{weights}.gguf"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    print(f"writing {path.name} (once) ...", file=sys.stderr)
    if weights == "f16":
        write_gguf(SHAPES[shape], partial)
    else:
        quantize(synthesize(shape, "f16"), partial, weights)
    os.replace(partial, path)
    return path
