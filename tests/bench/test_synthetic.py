"""Synthetic GGUFs: a llama model of a given shape with random weights and the default model's
tokenizer, which the engine loads and generates with; the engine in a child process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader

from bench import synthetic
from bench.engine_latency import engine_latency, failure, last_json_line
from bench.synthetic import CONTROL_TOKEN, SHAPES, TINY, Shape, tensor_shapes, write_gguf
from nexus.store.default_model import default_gguf_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(TINY, tmp_path_factory.mktemp("synthetic") / "tiny.gguf")


@pytest.fixture(scope="module")
def reader(tiny: Path) -> GGUFReader:
    return GGUFReader(tiny)


def test_metadata_describes_a_llama_model_of_the_shape(reader: GGUFReader) -> None:
    fields = reader.fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["llama.block_count"].contents() == 2
    assert fields["llama.embedding_length"].contents() == 64
    assert fields["llama.attention.head_count"].contents() == 4
    assert fields["llama.attention.head_count_kv"].contents() == 2
    assert fields["llama.rope.dimension_count"].contents() == 16
    assert fields["llama.vocab_size"].contents() == 49152


def test_every_tokenizer_key_is_copied(reader: GGUFReader) -> None:
    ours = reader.fields
    theirs = GGUFReader(default_gguf_path()).fields
    keys = [key for key in theirs if key.startswith("tokenizer.")]
    assert "tokenizer.chat_template" in keys
    for key in keys:
        assert ours[key].types == theirs[key].types, key
        assert ours[key].contents() == theirs[key].contents(), key


def test_tensors_have_the_shapes_and_types(reader: GGUFReader) -> None:
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 + 2 * 9  # embeddings and final norm (tied output), 9 per layer
    assert list(tensors["token_embd.weight"].shape) == [64, 49152]  # GGUF order: inner first
    assert list(tensors["blk.1.attn_k.weight"].shape) == [64, 32]
    assert list(tensors["blk.0.ffn_down.weight"].shape) == [128, 64]
    assert tensors["blk.0.ffn_up.weight"].tensor_type == GGMLQuantizationType.F16
    norm = tensors["blk.0.attn_norm.weight"]
    assert norm.tensor_type == GGMLQuantizationType.F32
    assert np.all(norm.data == 1.0)
    weights = np.asarray(tensors["blk.0.attn_q.weight"].data, dtype=np.float32)
    assert 0.015 < weights.std() < 0.025


def test_control_tokens_cannot_win_greedy_decoding(reader: GGUFReader) -> None:
    token_types = reader.fields["tokenizer.ggml.token_type"].contents()
    control = [i for i, kind in enumerate(token_types) if kind == CONTROL_TOKEN]
    embeddings = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert control
    assert not np.any(embeddings.data[control])


def test_the_same_file_every_time(tiny: Path, tmp_path: Path) -> None:
    assert write_gguf(TINY, tmp_path / "again.gguf").read_bytes() == tiny.read_bytes()


def test_synthesize_writes_once_under_a_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Path]] = []

    def fake_write(shape: Shape, path: Path) -> Path:
        calls.append((shape.name, path))
        path.write_bytes(b"f16")
        return path

    def fake_quantize(source: Path, target: Path, kind: str) -> Path:
        calls.append((kind, source))
        target.write_bytes(b"q4")
        return target

    monkeypatch.setattr(synthetic, "CACHE", tmp_path)
    monkeypatch.setitem(synthetic.SHAPES, "tiny", TINY)
    monkeypatch.setattr(synthetic, "write_gguf", fake_write)
    monkeypatch.setattr(synthetic, "quantize", fake_quantize)
    f16 = synthetic.synthesize("tiny", "f16")
    assert f16 == tmp_path / "synthetic-tiny-f16.gguf"
    assert calls == [("tiny", tmp_path / "synthetic-tiny-f16.gguf.partial")]
    q4 = synthetic.synthesize("tiny", "q4_k_m")
    assert q4.read_bytes() == b"q4"
    assert calls[1:] == [("q4_k_m", f16)]
    assert synthetic.synthesize("tiny", "f16") == f16
    assert len(calls) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [f16.name, q4.name]
    with pytest.raises(ValueError):
        synthetic.synthesize("tiny", "q8_0")


def test_real_shapes() -> None:
    names = dict(tensor_shapes(SHAPES["8b"], 49152))
    assert names["blk.31.attn_k.weight"] == (1024, 4096)
    assert names["blk.0.ffn_gate.weight"] == (14336, 4096)
    assert names["output.weight"] == (49152, 4096)
    assert "output.weight" not in dict(tensor_shapes(SHAPES["1b"], 49152))
    params = sum(int(np.prod(dims)) for dims in dict(tensor_shapes(SHAPES["135m"], 49152)).values())
    assert 134e6 < params < 135e6


def test_the_engine_loads_it_and_generates(tiny: Path) -> None:
    result = engine_latency(tiny, ctx=256, threads=1, rounds=2, timeout=60)
    assert result is not None
    assert result["generated_tokens"] == 4
    assert result["request_latency_ms"] > 0


def test_a_failing_engine_child_gives_no_result_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf")
    assert engine_latency(tmp_path / "broken.gguf", ctx=256, threads=1, timeout=60) is None
    assert "engine in-process: no result (exit status 1)" in capsys.readouterr().err


def test_how_a_child_ended() -> None:
    assert failure(-11) == "killed by SIGSEGV"
    assert failure(139) == "exit status 139 (SIGSEGV)"
    assert failure(1) == "exit status 1"
    assert last_json_line('log line\n{"a": 1}\n') == {"a": 1}
    assert last_json_line("{broken\n") is None
    assert last_json_line("") is None
