"""The bench's peer is llama-server from the installed engine's own sources: the tree whose
manifest names the installed engine module, or a portable build for the PyPI wheel."""

from __future__ import annotations

import json
from pathlib import Path

from bench import peer


def _manifest(root: Path, name: str, digest: str | None) -> Path:
    tree = root / name
    (tree / "bin").mkdir(parents=True)
    manifest = {"version": "1", "flavor": name, "bin": str(tree / "bin"), "module_sha256": digest}
    (tree / "nexus-engine.json").write_text(json.dumps(manifest))
    return tree


def test_the_installed_engine_module_has_a_digest() -> None:
    digest = peer.engine_module_sha256()
    assert digest and len(digest) == 43  # urlsafe base64 of 32 bytes, unpadded


def test_the_tree_that_built_the_installed_engine_is_found_by_its_digest(tmp_path: Path) -> None:
    _manifest(tmp_path, "xllamacpp-1-cpu-portable", None)
    _manifest(tmp_path, "xllamacpp-1-cuda-90-native", "other")
    native = _manifest(tmp_path, "xllamacpp-1-cpu-native", "abc")
    found = peer.built_here("abc", tmp_path)
    assert found is not None and found["bin"] == str(native / "bin")
    assert peer.built_here("missing", tmp_path) is None
    assert peer.built_here(None, tmp_path) is None


def test_the_engine_is_described_for_the_table() -> None:
    text = peer.describe_engine()
    assert text.startswith("xllamacpp ")
    assert "PyPI wheel" in text or "built from source" in text
