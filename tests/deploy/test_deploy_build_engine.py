"""deploy/build-engine.sh: what it would build, checked with --dry-run (a real build takes
minutes to hours), and the make targets that call it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT

SCRIPT = ROOT / "deploy" / "build-engine.sh"
DEFAULT_ARCHS = "75;80;86;89;90"
CMAKE_OFF = ["-DLLAMA_LLGUIDANCE=OFF", "-DLLAMA_BUILD_BORINGSSL=OFF", "-DLLAMA_OPENSSL=OFF"]


def run_script(*args: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CUDA_ARCHITECTURES", "XLLAMACPP_VERSION", "CMAKE_ARGS", "PYTHON")
    }
    if path is not None:
        full_env["PATH"] = path
    full_env.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def planned_env(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The variables the dry run would build with (its first line: ``env K=V ... python ...``)."""
    assert result.returncode == 0, result.stderr
    line = result.stdout.splitlines()[0]
    unescaped = re.sub(r"\\(.)", r"\1", line)
    found = dict(re.findall(r"(?:^env | )([A-Z_]+)=(.*?)(?= [A-Z_]+=| \S*python)", unescaped))
    return found


def test_help() -> None:
    result = run_script("--help")
    assert result.returncode == 0
    for option in ["--cuda", "--arch", "--portable", "--dry-run", "--wheel-dir", "--no-install",
                   "--tools-only", "--check-model", "--no-check"]:  # fmt: skip
        assert option in result.stdout


def test_native_build_rebuilds_the_installed_version() -> None:
    result = run_script("--python", sys.executable, "--dry-run")
    version = importlib.metadata.version("xllamacpp")
    env = planned_env(result)
    probe = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "cpu_probe.py")], capture_output=True, text=True
    )
    assert env["CMAKE_ARGS"].split() == CMAKE_OFF + probe.stdout.split()
    assert "XLLAMACPP_BUILD_CUDA" not in env and "XLLAMACPP_RELEASE" not in env
    assert f"build/engine/src/xllamacpp-{version}-cpu-native" in result.stdout.splitlines()[0]
    assert "deploy/engine_check.py" in result.stdout
    assert f"xllamacpp=={version}" in result.stdout
    assert "--no-binary xllamacpp" in result.stdout
    assert "pip install --no-deps --force-reinstall" in result.stdout


def test_cuda_with_explicit_architectures_portable_wheel_only() -> None:
    result = run_script(
        "--python", sys.executable, "--cuda", "--arch", "86;90", "--portable", "--no-install",
        "--wheel-dir", "/wheels", "--jobs", "8", "--dry-run", CMAKE_ARGS="-DGGML_CUDA_F16=ON",
    )  # fmt: skip
    env = planned_env(result)
    assert env["XLLAMACPP_BUILD_CUDA"] == "1"
    assert env["CUDA_ARCHITECTURES"] == "86;90"
    assert env["XLLAMACPP_RELEASE"] == "1"
    assert env["NPROC"] == "8"
    assert env["CMAKE_ARGS"].split() == [*CMAKE_OFF, "-DGGML_CUDA_F16=ON"]
    assert "-w /wheels" in result.stdout
    assert "pip install" not in result.stdout


def test_tools_only_builds_the_peer_from_the_same_tree_and_installs_nothing() -> None:
    result = run_script("--python", sys.executable, "--tools-only", "--portable", "--dry-run")
    env = planned_env(result)
    assert env["XLLAMACPP_RELEASE"] == "1"
    version = importlib.metadata.version("xllamacpp")
    tree = ROOT / "build" / "engine" / "src" / f"xllamacpp-{version}-cpu-portable"
    assert result.stdout.splitlines()[0].endswith(f"{tree}/scripts/build.py")
    assert "--target llama-server llama-quantize" in result.stdout
    assert "pip install" not in result.stdout and "engine_check" not in result.stdout


def test_cuda_architectures_from_the_environment() -> None:
    result = run_script("--python", sys.executable, "--cuda", "--dry-run", CUDA_ARCHITECTURES="89")
    assert planned_env(result)["CUDA_ARCHITECTURES"] == "89"


def test_cuda_architectures_from_nvidia_smi(tmp_path: Path) -> None:
    """The GPUs nvidia-smi lists (a stand-in printing what the real one prints for two kinds)."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '8.6\\n9.0\\n9.0\\n'\n")
    fake.chmod(0o755)
    result = run_script(
        "--python", sys.executable, "--cuda", "--dry-run", path=f"{tmp_path}:/usr/bin:/bin"
    )
    assert planned_env(result)["CUDA_ARCHITECTURES"] == "86;90"


def test_cuda_architectures_default_without_a_gpu(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ["bash", "sed", "head", "tr", "grep", "sort", "paste", "dirname", "basename"]:
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    result = run_script("--python", sys.executable, "--cuda", "--dry-run", path=str(bin_dir))
    assert planned_env(result)["CUDA_ARCHITECTURES"] == DEFAULT_ARCHS


def test_without_an_installed_engine_the_pyproject_requirement_is_built(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    requirement = next(
        dep
        for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if dep.startswith("xllamacpp")
    )
    result = run_script("--python", str(tmp_path / "v" / "bin" / "python"), "--dry-run")
    assert result.returncode == 0, result.stderr
    download = next(line for line in result.stdout.splitlines() if " download " in line)
    assert re.sub(r"\\(.)", r"\1", download).split() == [
        str(tmp_path / "v" / "bin" / "python"), "-m", "pip", "download", "--no-binary",
        "xllamacpp", "--no-deps", requirement, "-d", str(ROOT / "build" / "engine" / "src"),
    ]  # fmt: skip


def test_explicit_version_wins() -> None:
    result = run_script("--python", sys.executable, "--version", "2026.10.1", "--dry-run")
    assert "xllamacpp==2026.10.1" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "90"], "--arch needs --cuda"),
        (["--cuda", "--arch", "sm_90"], "bad CUDA architecture list"),
        (["--jobs", "0"], "--jobs needs a positive number"),
        (["--version", "1.0; rm -rf /"], "not a version"),
        (["--python", "/nonexistent/python"], "no Python"),
        (["--frobnicate"], "unknown option"),
        (["--check-model", "/nonexistent.gguf"], "no model file"),
        (["--python"], "--python needs a value"),
    ],
)
def test_bad_arguments_stop_with_one_line(args: list[str], message: str) -> None:
    result = run_script("--dry-run", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == "" or "Usage" in result.stdout


@pytest.mark.parametrize(("target", "flags"), [("engine-native", ""), ("engine-cuda", "--cuda")])
def test_make_targets_call_the_script(target: str, flags: str) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run([make, "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = [line for line in result.stdout.splitlines() if "deploy/build-engine.sh" in line]
    assert len(calls) == 1
    assert "--python .venv/bin/python" in calls[0]
    assert ("--cuda" in calls[0]) == bool(flags)
