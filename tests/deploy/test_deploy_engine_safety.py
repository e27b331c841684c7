"""An engine built for this machine must be one it can run: deploy/cpu_probe.py leaves out the
instruction sets the CPU advertises but does not execute, and deploy/engine_check.py refuses a
wheel whose engine dies or does not generate, before build-engine.sh installs it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.tools import ROOT


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cpu_probe = _load("cpu_probe")
engine_check = _load("engine_check")
x86 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or shutil.which("cc") is None,
    reason="x86 with a C compiler",
)


def _feature(option: str | None) -> object:
    return next(f for f in cpu_probe.FEATURES if f.option == option)


def test_native_is_kept_when_every_advertised_set_runs() -> None:
    results = {_feature("GGML_AVX2"): True, _feature("GGML_AVX512"): True}
    assert cpu_probe.cmake_options(results) == []


def test_a_set_that_traps_turns_native_off_and_names_what_ran() -> None:
    results = {
        _feature("GGML_AVX2"): True,
        _feature("GGML_FMA"): True,
        _feature("GGML_AMX_INT8"): False,
        _feature(None): False,  # AVX512-FP16: no ggml option, but -march=native would use it
    }
    options = cpu_probe.cmake_options(results)
    assert options[0] == "-DGGML_NATIVE=OFF"
    assert "-DGGML_AVX2=ON" in options and "-DGGML_FMA=ON" in options
    assert "-DGGML_AMX_INT8=OFF" in options and "-DGGML_AVX512=OFF" in options
    assert len(options) == len({o.split("=")[0] for o in options})


def test_cpuinfo_flags_come_from_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_probe.cpu_flags(info) == {"fpu", "sse4_2", "avx2", "amx_tile"}
    assert cpu_probe.cpu_flags(tmp_path / "missing") == set()


@x86
def test_the_probe_runs_what_this_cpu_has_and_refuses_what_it_lacks(tmp_path: Path) -> None:
    """Every set this CPU advertises compiles and runs. A set it lacks, tried anyway, traps or
    is refused (AMX without the kernel's permission), which is what an advertised set that the
    hypervisor does not enable looks like."""
    flags = cpu_probe.cpu_flags()
    results = cpu_probe.probe(flags, "cc")
    assert results, "an x86 CPU advertises at least SSE4.2"
    failed = [f.option for f, ok in results.items() if not ok]
    lacking = [f for f in cpu_probe.FEATURES if not set(f.cpu_flags) <= flags]
    if not lacking:
        pytest.skip("this CPU has every set the probe knows")
    assert not cpu_probe.runs(lacking[0], tmp_path, "cc"), failed
    options = cpu_probe.cmake_options({**results, lacking[0]: False})
    assert options[0] == "-DGGML_NATIVE=OFF"


@x86
def test_the_probe_script_prints_one_line_of_cmake_options() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "cpu_probe.py"), "--explicit"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    options = done.stdout.split()
    assert options[0] == "-DGGML_NATIVE=OFF"
    assert all(o.startswith("-DGGML_") and o.endswith(("=ON", "=OFF")) for o in options)
    assert "-DGGML_SSE42=ON" in options


def _fake_wheel(path: Path, init: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xllamacpp/__init__.py", init)
    return path


FAKE_ENGINE = """
class CommonParams:
    def __init__(self):
        self.model = type("M", (), {})()
        self.cpuparams = type("C", (), {})()
        self.cpuparams_batch = type("C", (), {})()

class Server:
    def __init__(self, params):
        self.params = params

    def handle_completions(self, body):
        return {"usage": {"completion_tokens": %d}}
"""


def test_an_engine_that_dies_with_sigill_is_refused(tmp_path: Path) -> None:
    wheel = _fake_wheel(
        tmp_path / "xllamacpp-0-py3-none-any.whl",
        "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n",
    )
    problem = engine_check.check(wheel, tmp_path / "model.gguf", 1, 60)
    assert problem is not None and "SIGILL" in problem and "does not execute" in problem


def test_an_engine_that_generates_nothing_is_refused(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "xllamacpp-0-py3-none-any.whl", FAKE_ENGINE % 0)
    assert engine_check.check(wheel, tmp_path / "m.gguf", 1, 60) == "the engine generated nothing"


def test_an_engine_that_fails_to_load_is_refused_with_its_error(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "xllamacpp-0-py3-none-any.whl", "raise OSError('no libcuda')")
    problem = engine_check.check(wheel, tmp_path / "m.gguf", 1, 60)
    assert problem is not None and "exit status 1" in problem and "no libcuda" in problem


def test_the_check_uses_the_wheel_not_the_installed_engine(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "xllamacpp-0-py3-none-any.whl", FAKE_ENGINE % 3)
    assert engine_check.check(wheel, tmp_path / "m.gguf", 1, 60) is None


def test_the_installed_engine_passes_the_check_with_the_default_model(tmp_path: Path) -> None:
    """The real engine, repacked as a wheel from the installed files, loads the default model
    and generates."""
    files = importlib.metadata.files("xllamacpp") or []
    wheel = tmp_path / "xllamacpp-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for file in files:
            if str(file).startswith("xllamacpp") and ".dist-info" not in str(file):
                archive.write(file.locate(), str(file))
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "engine_check.py"), str(wheel), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "generates" in done.stderr


# build-engine.sh's whole flow with pip and cmake standing in for the hours of compiling: each
# "build" makes a wheel whose engine traps or works as the plan says, and the real probe and
# check decide what happens next.
FAKE_PYTHON = r"""#!/usr/bin/env bash
state="$FAKE_STATE"
if [[ "$1 $2 $3" == "-m pip download" ]]; then
  dest="${@: -1}"
  mkdir -p "$state/pkg/xllamacpp-9.9.9/scripts" "$dest"
  touch "$state/pkg/xllamacpp-9.9.9/scripts/build.py"
  tar -czf "$dest/xllamacpp-9.9.9.tar.gz" -C "$state/pkg" xllamacpp-9.9.9
  exit 0
fi
if [[ "$1 $2 $3" == "-m pip wheel" ]]; then
  while [[ "$1" != "-w" ]]; do shift; done
  n=$(( $(cat "$state/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$state/count"
  echo "${CMAKE_ARGS}|${XLLAMACPP_RELEASE:-}" >> "$state/builds"
  kind="$(echo "$FAKE_PLAN" | cut -d, -f"$n")"
  mkdir -p "$2"
  exec "$REAL_PYTHON" -c "
import sys, zipfile
trap = 'import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n'
body = trap if sys.argv[2] == 'sigill' else sys.argv[3]
with zipfile.ZipFile(sys.argv[1] + '/xllamacpp-9.9.9-py3-none-any.whl', 'w') as z:
    z.writestr('xllamacpp/__init__.py', body)
    z.writestr('xllamacpp-9.9.9.dist-info/RECORD', 'xllamacpp/xllamacpp.so,sha256=x,1\n')
" "$2" "$kind" "$FAKE_ENGINE"
fi
if [[ "$1 $2 $3" == "-m pip install" ]]; then
  echo "$*" >> "$state/installs"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def _flow(
    tmp_path: Path, plan: str, *args: str, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    state = tmp_path / "state"
    state.mkdir()
    tools = tmp_path / "bin"
    tools.mkdir()
    python = tools / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    (tools / "cmake").write_text("#!/bin/sh\nexit 0\n")
    (tools / "cmake").chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    env = {
        **os.environ,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "FAKE_PLAN": plan,
        "FAKE_ENGINE": FAKE_ENGINE % 2,
        "REAL_PYTHON": sys.executable,
        "NEXUS_ENGINE_SRC": str(tmp_path / "src"),
    }
    env.pop("CMAKE_ARGS", None)
    if "PATH" in extra_env:  # in front of the stand-ins' folder
        env["PATH"] = f"{extra_env.pop('PATH')}:{env['PATH']}"
    env.update(extra_env)
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "build-engine.sh"), "--python", str(python),
         "--version", "9.9.9", "--wheel-dir", str(tmp_path / "wheels"),
         "--check-model", str(model), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    return done, state


@x86
def test_an_engine_that_traps_is_rebuilt_with_each_set_named_then_installed(
    tmp_path: Path,
) -> None:
    done, state = _flow(tmp_path, "sigill,ok")
    assert done.returncode == 0, done.stderr
    builds = (state / "builds").read_text().splitlines()
    assert len(builds) == 2
    if builds[0].split("|")[0].split()[3:]:
        pytest.skip("this CPU advertises a set it does not run: the first build was explicit")
    assert "-DGGML_NATIVE=OFF" in builds[1] and "-DGGML_AVX2=" in builds[1]
    assert "SIGILL" in done.stderr
    installs = (state / "installs").read_text()
    assert str(tmp_path / "wheels" / "xllamacpp-9.9.9-py3-none-any.whl") in installs
    manifest = tmp_path / "src" / "xllamacpp-9.9.9-cpu-native" / "nexus-engine.json"
    assert "-DGGML_NATIVE=OFF" in manifest.read_text()


@x86
def test_when_no_build_runs_the_installed_engine_is_kept(tmp_path: Path) -> None:
    done, state = _flow(tmp_path, "sigill,sigill,sigill")
    assert done.returncode == 2
    assert "the installed engine is kept" in done.stderr
    assert not (state / "installs").exists()
    builds = (state / "builds").read_text().splitlines()
    assert builds[-1].endswith("|1")  # the last try was portable
    assert not (tmp_path / "wheels").exists()


def test_a_portable_build_that_fails_its_check_is_not_installed(tmp_path: Path) -> None:
    done, state = _flow(tmp_path, "sigill", "--portable")
    assert done.returncode == 2
    assert len((state / "builds").read_text().splitlines()) == 1
    assert not (state / "installs").exists()


def test_no_install_skips_the_check(tmp_path: Path) -> None:
    done, state = _flow(tmp_path, "sigill", "--no-install")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "wheels" / "xllamacpp-9.9.9-py3-none-any.whl").is_file()
    assert not (state / "installs").exists()


def _toolkit(tmp_path: Path, cublas: bool) -> dict[str, str]:
    """A CUDA toolkit stand-in: nvcc on PATH, cuBLAS in its lib64 or not."""
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "lib64").mkdir()
    (home / "bin" / "nvcc").write_text("#!/bin/sh\nexit 0\n")
    (home / "bin" / "nvcc").chmod(0o755)
    if cublas:
        (home / "lib64" / "libcublas.so.13").write_bytes(b"")
    return {"CUDA_HOME": str(home), "PATH": str(home / "bin")}


def test_a_cuda_build_without_cublas_stops_before_downloading(tmp_path: Path) -> None:
    toolkit = _toolkit(tmp_path, cublas=False)
    done, state = _flow(tmp_path, "ok", "--cuda", "--arch", "90", "--no-install", **toolkit)
    assert done.returncode == 2
    assert "--cuda needs cuBLAS" in done.stderr
    assert not (state / "builds").exists() and not (tmp_path / "src").exists()


def test_a_cuda_build_with_the_toolkit_goes_on(tmp_path: Path) -> None:
    toolkit = _toolkit(tmp_path, cublas=True)
    done, state = _flow(tmp_path, "ok", "--cuda", "--arch", "90", "--no-install", **toolkit)
    assert done.returncode == 0, done.stderr
    assert len((state / "builds").read_text().splitlines()) == 1
    manifest = tmp_path / "src" / "xllamacpp-9.9.9-cuda-90-native" / "nexus-engine.json"
    assert "CUDA_ARCHITECTURES=90" in manifest.read_text()
