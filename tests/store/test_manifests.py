import hashlib
import json
import os
from datetime import UTC
from pathlib import Path

import pytest

from nexus.errors import ModelNotFound, StoreError
from nexus.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    Layer,
    Manifest,
    ManifestStore,
)
from nexus.store.names import ModelName
from nexus.store.store import Store

# As Ollama writes it (encoding/json: struct field order, compact, trailing newline).
OLLAMA_BYTES = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
    b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
    b'"digest":"sha256:' + b"c" * 64 + b'","size":485},'
    b'"layers":[{"mediaType":"application/vnd.ollama.image.model",'
    b'"digest":"sha256:' + b"a" * 64 + b'","size":2019377376},'
    b'{"mediaType":"application/vnd.ollama.image.template",'
    b'"digest":"sha256:' + b"b" * 64 + b'","size":1429,"from":"llama3.2:latest"}]}\n'
)


def layer(char: str, size: int = 1, media: str = MODEL_MEDIA_TYPE) -> Layer:
    return Layer(mediaType=media, digest="sha256:" + char * 64, size=size)


def manifest(*chars: str) -> Manifest:
    return Manifest(config=layer("f", 10, CONFIG_MEDIA_TYPE), layers=[layer(c) for c in chars])


def name(text: str) -> ModelName:
    return ModelName.parse(text)


def test_round_trip_is_byte_compatible() -> None:
    parsed = Manifest.model_validate_json(OLLAMA_BYTES)
    assert parsed.layers[1].from_ == "llama3.2:latest"
    assert parsed.layers[0].from_ is None
    assert parsed.to_bytes() == OLLAMA_BYTES
    assert list(json.loads(parsed.to_bytes())) == ["schemaVersion", "mediaType", "config", "layers"]


def test_layer_serialises_by_alias_without_empty_fields() -> None:
    plain = Layer.model_validate({"mediaType": "m", "digest": "d", "size": 1, "from": ""})
    assert plain.model_dump(by_alias=True, exclude_none=True) == {
        "mediaType": "m",
        "digest": "d",
        "size": 1,
    }
    full = Layer.model_validate(
        {"mediaType": "m", "digest": "d", "size": 1, "from": "x", "name": "n"}
    )
    assert json.loads(Manifest(config=full, layers=[]).to_bytes())["config"] == {
        "mediaType": "m",
        "digest": "d",
        "size": 1,
        "from": "x",
        "name": "n",
    }


def test_write_and_read(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    n = name("user/model:v1")
    m = manifest("a", "b")
    digest = store.write(n, m)
    path = tmp_path / "manifests" / "registry.ollama.ai" / "user" / "model" / "v1"
    data = path.read_bytes()
    assert data == m.to_bytes()
    assert data.endswith(b"}\n") and b" " not in data
    assert digest == hashlib.sha256(data).hexdigest()
    assert path.stat().st_mode & 0o777 == 0o644

    stored = store.read(n)
    assert stored.name == n
    assert stored.manifest == m
    assert stored.digest == digest
    assert stored.size == 12
    assert stored.modified_at.tzinfo is UTC
    assert stored.modified_at.timestamp() == pytest.approx(path.stat().st_mtime)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    n = name("m")
    store.write(n, manifest("a"))
    store.write(n, manifest("b"))
    parent = store.path(n).parent
    assert [p.name for p in parent.iterdir()] == ["latest"]
    assert store.read(n).manifest.layers[0].digest == "sha256:" + "b" * 64


def test_read_missing(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    with pytest.raises(ModelNotFound) as info:
        store.read(name("nope"))
    assert info.value.message == "model 'nope:latest' not found"
    assert info.value.status == 404
    with pytest.raises(ModelNotFound) as info:
        store.read(name("nope"), requested="nope")
    assert info.value.message == "model 'nope' not found"


def test_read_corrupt(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    path = store.path(name("bad"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StoreError):
        store.read(name("bad"))


def test_delete_removes_empty_parents(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    store.write(name("user/a:1"), manifest("a"))
    store.write(name("user/b:1"), manifest("a"))
    store.delete(name("user/a:1"))
    user = tmp_path / "manifests" / "registry.ollama.ai" / "user"
    assert sorted(p.name for p in user.iterdir()) == ["b"]
    store.delete(name("user/b:1"))
    assert list((tmp_path / "manifests").iterdir()) == []
    with pytest.raises(ModelNotFound) as info:
        store.delete(name("user/b:1"), requested="user/b:1")
    assert info.value.message == "model 'user/b:1' not found"


def test_list_newest_first_and_skips_junk(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    store.write(name("old"), manifest("a"))
    store.write(name("new"), manifest("b"))
    store.write(name("example.com:5000/ns/mid:t"), manifest("c"))
    os.utime(store.path(name("old")), (1000, 1000))
    os.utime(store.path(name("example.com:5000/ns/mid:t")), (2000, 2000))
    root = tmp_path / "manifests"
    (root / "registry.ollama.ai" / "library" / "bad name").mkdir()
    (root / "registry.ollama.ai" / "library" / "bad name" / "latest").write_bytes(OLLAMA_BYTES)
    (root / "registry.ollama.ai" / "library" / "corrupt").mkdir()
    (root / "registry.ollama.ai" / "library" / "corrupt" / "latest").write_text("[")
    (root / "registry.ollama.ai" / "library" / "toplevel-file").write_bytes(OLLAMA_BYTES)
    deep = root / "registry.ollama.ai" / "library" / "new" / "latest-dir" / "x"
    deep.parent.mkdir()
    deep.write_bytes(OLLAMA_BYTES)

    listed = [s.name.display() for s in store.list()]
    assert listed == ["new:latest", "example.com:5000/ns/mid:t", "old:latest"]
    assert "corrupt:latest" in [n.display() for n in store.names()]


def test_list_empty_store(tmp_path: Path) -> None:
    assert ManifestStore(tmp_path).list() == []


def test_resolve_case_insensitively(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    stored = name("User/MyModel:Q4")
    store.write(stored, manifest("a"))
    assert store.resolve(name("user/mymodel:q4")) == stored
    assert store.resolve(name("USER/MYMODEL:Q4")) == stored
    assert store.resolve(stored) == stored
    assert store.resolve(name("user/mymodel:q8")) is None
    assert store.resolve(name("other/mymodel:q4")) is None


def test_copy(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    src, dst = name("src"), name("ns/dst:v2")
    raw = OLLAMA_BYTES
    path = store.path(src)
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    store.copy(src, dst)
    assert store.path(dst).read_bytes() == raw
    assert store.read(dst).digest == store.read(src).digest
    store.copy(src, src)  # same path is a no-op
    assert store.path(src).read_bytes() == raw
    with pytest.raises(ModelNotFound) as info:
        store.copy(name("missing"), dst, requested="missing")
    assert info.value.message == 'model "missing" not found'


def old(path: Path) -> None:
    os.utime(path, (1000, 1000))


def blob_store_with(tmp_path: Path, noprune: bool = False) -> tuple[Store, dict[str, str]]:
    """A store with blobs a, b, c and model m1 -> (a, b), m2 -> (b); c unreferenced."""
    store = Store(tmp_path, noprune=noprune)
    digests = {k: store.blobs.write_bytes(k.encode() * 3)[0] for k in ("a", "b", "c", "cfg")}
    cfg = Layer(mediaType=CONFIG_MEDIA_TYPE, digest=digests["cfg"], size=9)
    for n, keys in (("m1", "ab"), ("m2", "b")):
        layers = [Layer(mediaType=MODEL_MEDIA_TYPE, digest=digests[k], size=3) for k in keys]
        store.manifests.write(name(n), Manifest(config=cfg, layers=layers))
    for digest in digests.values():
        old(store.blobs.path(digest))
    return store, digests


def test_referenced_digests(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path)
    assert store.referenced_digests() == {d["a"], d["b"], d["cfg"]}


def test_prune(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path)
    blobs_dir = tmp_path / "blobs"
    young, _ = store.blobs.write_bytes(b"written a moment ago")
    partial = blobs_dir / f"sha256-{'e' * 64}-partial"
    partial_part = blobs_dir / f"sha256-{'e' * 64}-partial-3"
    junk, fresh_junk = blobs_dir / "junk", blobs_dir / "sha256-123.tmp"
    for path in (partial, partial_part, junk, fresh_junk):
        path.write_bytes(b"x")
    for path in (partial, partial_part, junk):
        old(path)
    legacy = blobs_dir / ("sha256:" + hashlib.sha256(b"legacy").hexdigest())
    legacy.write_bytes(b"legacy")
    empty = tmp_path / "manifests" / "registry.ollama.ai" / "gone" / "model"
    empty.mkdir(parents=True)

    assert store.prune() == 2  # blob c and the old junk file
    assert store.blobs.all_digests() == {
        d["a"],
        d["b"],
        d["cfg"],
        young,
        "sha256:" + hashlib.sha256(b"legacy").hexdigest(),  # renamed, and young
    }
    assert partial.exists() and partial_part.exists() and fresh_junk.exists()
    assert not junk.exists() and not legacy.exists()
    assert not (tmp_path / "manifests" / "registry.ollama.ai" / "gone").exists()
    assert store.prune(grace_s=0) == 3  # young blob, legacy blob, fresh junk
    assert partial.exists() and partial_part.exists()


def test_prune_skipped_when_a_manifest_is_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, d = blob_store_with(tmp_path)
    bad = store.manifests.path(name("broken"))
    bad.parent.mkdir(parents=True)
    bad.write_text('{"schemaVersion": 2')
    assert store.prune(grace_s=0) == 0
    assert store.blobs.exists(d["c"])
    assert "corrupt manifests detected, skipping prune operation" in caplog.text


def test_prune_respects_noprune(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path, noprune=True)
    assert store.prune(grace_s=0) == 0
    assert store.blobs.exists(d["c"])


def test_delete_model_removes_only_unshared_blobs(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path)
    store.delete_model(name("M1"), requested="M1")  # matched ignoring case
    assert store.manifests.names() == [name("m2")]
    assert not store.blobs.exists(d["a"])
    assert store.blobs.exists(d["b"]) and store.blobs.exists(d["cfg"])
    assert store.blobs.exists(d["c"])  # never referenced: left to prune
    store.delete_model(name("m2"))
    assert store.blobs.all_digests() == {d["c"]}
    assert list((tmp_path / "manifests").iterdir()) == []
    with pytest.raises(ModelNotFound) as info:
        store.delete_model(name("m2"), requested="m2")
    assert info.value.message == "model 'm2' not found"


def test_delete_model_with_noprune_keeps_blobs(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path, noprune=True)
    store.delete_model(name("m1"))
    assert store.manifests.names() == [name("m2")]
    assert store.blobs.exists(d["a"])


def test_remove_unused(tmp_path: Path) -> None:
    store, d = blob_store_with(tmp_path)
    previous = store.manifests.read(name("m1")).manifest
    cfg = Layer(mediaType=CONFIG_MEDIA_TYPE, digest=d["cfg"], size=9)
    replacement = Layer(mediaType=MODEL_MEDIA_TYPE, digest=d["c"], size=3)
    store.manifests.write(name("m1"), Manifest(config=cfg, layers=[replacement]))
    assert store.remove_unused(previous) == [d["a"]]
    assert store.blobs.all_digests() == {d["b"], d["c"], d["cfg"]}
