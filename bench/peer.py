"""The peer: llama.cpp's ``llama-server``, built from the llama.cpp sources that PyPI ships inside
the ``llama-cpp-python`` source distribution. Built once into ``bench/.cache`` (ignored by git)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
SDIST_PACKAGE = "llama-cpp-python"


def _sources() -> Path:
    existing = sorted(CACHE.glob("llama_cpp_python-*/vendor/llama.cpp"))
    if existing:
        return existing[-1]
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
         SDIST_PACKAGE, "-d", str(CACHE)],
        check=True,
    )  # fmt: skip
    archive = sorted(CACHE.glob("llama_cpp_python-*.tar.gz"))[-1]
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return sorted(CACHE.glob("llama_cpp_python-*/vendor/llama.cpp"))[-1]


def llama_server() -> Path:
    """Path of the ``llama-server`` binary, building it first if the cache has none."""
    built = sorted(CACHE.glob("llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-server"))
    if built:
        return built[-1]
    src = _sources()
    print(f"building llama-server from {src} (once; takes minutes)", file=sys.stderr)
    subprocess.run(
        ["cmake", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
         "-DGGML_NATIVE=ON"],
        cwd=src,
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["cmake", "--build", "build", "--target", "llama-server", "-j"], cwd=src, check=True
    )
    return src / "build" / "bin" / "llama-server"
