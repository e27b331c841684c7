#!/usr/bin/env python3
"""Which x86 instruction sets this machine really executes, as ggml's CMake options.

A CPU under a hypervisor can advertise instruction sets the host does not let it run (AMX tiles
whose state the hypervisor does not enable, AVX512-FP16): an engine compiled with
``-march=native`` then dies with SIGILL. Each set the CPU advertises is tried here by compiling
and running a few instructions of it. Prints one line of CMake options for build-engine.sh:
nothing when ``GGML_NATIVE=ON`` is safe, else ``-DGGML_NATIVE=OFF`` with every set that ran
switched on one by one (``--explicit`` prints that form in any case). On other architectures it
prints nothing: the built engine is checked before it is installed either way.

Standard library only; needs a C compiler (``$CC``, else ``cc``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Feature:
    """One instruction set: ggml's CMake option (None: not one ggml names, but -march=native may
    use it), the /proc/cpuinfo flags that advertise it, compiler flags, and a C body using it."""

    option: str | None
    cpu_flags: tuple[str, ...]
    cc_flags: tuple[str, ...]
    body: str


AMX_SETUP = """
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 3;
    static struct { unsigned char palette, start, reserved[14]; unsigned short colsb[16];
                    unsigned char rows[16]; } __attribute__((aligned(64))) cfg;
    cfg.palette = 1;
    for (int i = 0; i < 3; i++) { cfg.rows[i] = 16; cfg.colsb[i] = 64; }
    _tile_loadconfig(&cfg);
    _tile_zero(0); _tile_zero(1); _tile_zero(2);
"""

FEATURES: tuple[Feature, ...] = (
    Feature("GGML_SSE42", ("sse4_2",), ("-msse4.2",),
            "out = _mm_crc32_u32((unsigned)in, 7u);"),
    Feature("GGML_F16C", ("f16c",), ("-mf16c",),
            "out = _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16((short)in)));"),
    Feature("GGML_FMA", ("fma",), ("-mfma",),
            "__m256 a = _mm256_set1_ps(in); out = _mm256_cvtss_f32(_mm256_fmadd_ps(a, a, a));"),
    Feature("GGML_BMI2", ("bmi2",), ("-mbmi2",), "out = _pdep_u32((unsigned)in, 0x0f0fu);"),
    Feature("GGML_AVX", ("avx",), ("-mavx",),
            "__m256 a = _mm256_set1_ps(in); out = _mm256_cvtss_f32(_mm256_add_ps(a, a));"),
    Feature("GGML_AVX2", ("avx2",), ("-mavx2",),
            "__m256i a = _mm256_set1_epi32(in);"
            " out = _mm256_extract_epi32(_mm256_add_epi32(a, a), 0);"),
    Feature("GGML_AVX_VNNI", ("avx_vnni",), ("-mavx2", "-mavxvnni"),
            "__m256i a = _mm256_set1_epi32(in);"
            " out = _mm256_extract_epi32(_mm256_dpbusd_avx_epi32(a, a, a), 0);"),
    Feature("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
            ("-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512dq", "-mavx512bw"),
            "__m512i a = _mm512_set1_epi16((short)in);"
            " out = _mm512_reduce_add_epi32(_mm512_add_epi16(a, a));"),
    Feature("GGML_AVX512_VBMI", ("avx512vbmi",), ("-mavx512f", "-mavx512vbmi"),
            "__m512i a = _mm512_set1_epi8((char)in);"
            " out = _mm512_reduce_add_epi32(_mm512_permutexvar_epi8(a, a));"),
    Feature("GGML_AVX512_VNNI", ("avx512_vnni",), ("-mavx512f", "-mavx512vnni"),
            "__m512i a = _mm512_set1_epi32(in);"
            " out = _mm512_reduce_add_epi32(_mm512_dpbusd_epi32(a, a, a));"),
    Feature("GGML_AVX512_BF16", ("avx512_bf16",), ("-mavx512f", "-mavx512bf16"),
            "__m512 a = _mm512_set1_ps(in); __m512bh b = _mm512_cvtne2ps_pbh(a, a);"
            " out = _mm512_reduce_add_ps(_mm512_dpbf16_ps(a, b, b));"),
    Feature(None, ("avx512_fp16",), ("-mavx512f", "-mavx512fp16"),
            "__m512h a = _mm512_set1_ph((_Float16)in);"
            " out = (float)_mm512_reduce_add_ph(_mm512_add_ph(a, a));"),
    Feature("GGML_AMX_TILE", ("amx_tile",), ("-mamx-tile",), AMX_SETUP + "_tile_release();"),
    Feature("GGML_AMX_INT8", ("amx_tile", "amx_int8"), ("-mamx-tile", "-mamx-int8"),
            AMX_SETUP + "_tile_dpbssd(0, 1, 2); _tile_release();"),
    Feature("GGML_AMX_BF16", ("amx_tile", "amx_bf16"), ("-mamx-tile", "-mamx-bf16"),
            AMX_SETUP + "_tile_dpbf16ps(0, 1, 2); _tile_release();"),
)  # fmt: skip

PROGRAM = """#include <immintrin.h>
#include <unistd.h>
#include <sys/syscall.h>
volatile int in = 3;
volatile float out;
int main(void) {
%s
    return 0;
}
"""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The flags of the first processor /proc/cpuinfo lists."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def runs(feature: Feature, workdir: Path, compiler: str) -> bool:
    """Whether a program using ``feature`` compiles and exits cleanly (no SIGILL)."""
    name = (feature.option or "_".join(feature.cpu_flags)).lower()
    source, binary = workdir / f"{name}.c", workdir / name
    source.write_text(PROGRAM % feature.body)
    build = subprocess.run(
        [compiler, "-O1", *feature.cc_flags, str(source), "-o", str(binary)],
        capture_output=True,
        timeout=120,
    )
    if build.returncode != 0:
        return False  # a compiler too old for the set cannot emit it either
    try:
        return subprocess.run([str(binary)], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def probe(flags: set[str], compiler: str) -> dict[Feature, bool]:
    """Every advertised feature, tried: whether it ran."""
    advertised = [f for f in FEATURES if set(f.cpu_flags) <= flags]
    with tempfile.TemporaryDirectory(prefix="nexus-cpu-probe-") as tmp:
        return {f: runs(f, Path(tmp), compiler) for f in advertised}


def cmake_options(results: dict[Feature, bool], explicit: bool = False) -> list[str]:
    """Nothing when every advertised set ran (native is safe), else each set on or off."""
    if all(results.values()) and not explicit:
        return []
    ran = {f.option for f, ok in results.items() if ok and f.option}
    options = ["-DGGML_NATIVE=OFF"]
    for option in dict.fromkeys(f.option for f in FEATURES if f.option):
        options.append(f"-D{option}={'ON' if option in ran else 'OFF'}")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explicit", action="store_true",
                        help="name every instruction set even when native is safe")  # fmt: skip
    parser.add_argument("--cpuinfo", type=Path, default=Path("/proc/cpuinfo"))
    args = parser.parse_args(argv)
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        print()
        return 0
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:  # nothing can be built here either; the engine check still runs
        print("cpu_probe: no C compiler (set CC): nothing probed", file=sys.stderr)
        print()
        return 0
    results = probe(cpu_flags(args.cpuinfo), compiler)
    for feature, ok in results.items():
        if not ok:
            name = feature.option or "+".join(feature.cpu_flags)
            print(f"cpu_probe: {name} is advertised but does not run here", file=sys.stderr)
    print(" ".join(cmake_options(results, args.explicit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
