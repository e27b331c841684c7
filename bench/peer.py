"""The peer: llama.cpp's ``llama-server`` (and ``llama-quantize``), built from the installed
engine's own sources with the engine's own flags, so that a ratio measures Nexus and nothing else.

``deploy/build-engine.sh`` keeps the source tree of every engine it builds, with both programs and
a ``nexus-engine.json`` naming the engine module it produced. For the PyPI wheel (built portable,
``GGML_NATIVE=OFF``), the same version's sources are built portable, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_ENGINE = ROOT / "deploy" / "build-engine.sh"
SOURCES = Path(os.environ.get("NEXUS_ENGINE_SRC") or ROOT / "build" / "engine" / "src")


class NoPeer(RuntimeError):
    """The installed engine's own llama-server cannot be had."""


def engine_module_sha256() -> str | None:
    """The installed engine module's digest, as the wheel's RECORD gives it."""
    try:
        record = distribution("xllamacpp").read_text("RECORD") or ""
    except PackageNotFoundError:
        return None
    for line in record.splitlines():
        name, digest, _ = line.rsplit(",", 2)
        if name.startswith("xllamacpp/xllamacpp") and name.endswith(".so"):
            return digest.removeprefix("sha256=")
    return None


def is_pypi_wheel() -> bool:
    return "manylinux" in (distribution("xllamacpp").read_text("WHEEL") or "")


def built_here(digest: str | None, sources: Path = SOURCES) -> dict[str, object] | None:
    """The manifest of the tree that built the engine module with ``digest``, if any."""
    if digest is None:
        return None
    for path in sorted(sources.glob("*/nexus-engine.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("module_sha256") == digest:
            return dict(manifest)
    return None


def describe_engine() -> str:
    """Which engine runs, for the bench's heading."""
    dist = distribution("xllamacpp")
    if is_pypi_wheel():
        return f"xllamacpp {dist.version}, PyPI wheel (portable)"
    manifest = built_here(engine_module_sha256())
    flavor = f", {manifest['flavor']}" if manifest else ""
    return f"xllamacpp {dist.version}, built from source{flavor}"


@cache
def tools_dir() -> Path:
    """The folder holding the installed engine's own ``llama-server`` and ``llama-quantize``,
    building them first (minutes) where only the PyPI wheel is installed."""
    manifest = built_here(engine_module_sha256())
    if manifest is not None:
        bin_dir = _tools_in(manifest)
        if bin_dir is not None:
            return bin_dir
        raise NoPeer(
            f"{manifest['bin']} lacks llama-server or llama-quantize: build the engine again"
        )
    if not is_pypi_wheel():
        raise NoPeer(
            "the installed engine was not built by deploy/build-engine.sh, so its own "
            "llama-server is unknown: build the engine with `make engine-native` (or "
            "`make engine-cuda`), or give the bench a llama-server with --peer"
        )
    version = distribution("xllamacpp").version
    portable = SOURCES / f"xllamacpp-{version}-cpu-portable" / "nexus-engine.json"
    if portable.is_file():  # built here before, for the same PyPI wheel
        bin_dir = _tools_in(json.loads(portable.read_text()))
        if bin_dir is not None:
            return bin_dir
    print("building llama-server from the engine's sources (once; minutes)", file=sys.stderr)
    args = ["bash", str(BUILD_ENGINE), "--python", sys.executable, "--version", version]
    args += ["--tools-only", "--portable"]
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise NoPeer(f"building llama-server failed (exit status {done.returncode})")
    return Path(done.stdout.strip().splitlines()[-1])


def _tools_in(manifest: dict[str, object]) -> Path | None:
    """The manifest's folder of programs, if both are there."""
    bin_dir = Path(str(manifest["bin"]))
    if (bin_dir / "llama-server").exists() and (bin_dir / "llama-quantize").exists():
        return bin_dir
    return None


def llama_server() -> Path:
    return tools_dir() / "llama-server"


def llama_quantize() -> Path:
    return tools_dir() / "llama-quantize"
