#!/usr/bin/env bash
# Build the xllamacpp engine from its PyPI source into a wheel, check it, then install the wheel.
#
# One script for every engine build: `make engine-native` (this CPU), `make engine-cuda` (this
# machine's GPUs), the Dockerfile's CUDA stage (a portable wheel for several GPU generations) and
# the bench's peer (llama.cpp's llama-server and llama-quantize from the same sources and flags).
# LLGuidance and TLS need downloads from outside PyPI, so they are left out (JSON schemas then go
# through llama.cpp's own grammar converter).
#
# The unpacked sources stay under build/engine/src (or $NEXUS_ENGINE_SRC), one tree per kind of
# build, so a rebuild is incremental and the tree's build/bin holds llama-server and
# llama-quantize built exactly as the engine was; nexus-engine.json in the tree records how.
set -euo pipefail

DEFAULT_ARCHS="75;80;86;89;90"
BASE_CMAKE_ARGS="-DLLAMA_LLGUIDANCE=OFF -DLLAMA_BUILD_BORINGSSL=OFF -DLLAMA_OPENSSL=OFF"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$repo/deploy"

usage() {
  cat <<EOF
Usage: $0 [options]

Builds xllamacpp from its source distribution into a wheel and, unless --no-install, checks that
the wheel loads a model and generates on this machine, then installs it into the environment of
--python. A build for this CPU leaves out instruction sets the CPU advertises but does not run
(deploy/cpu_probe.py); if the built engine still fails its check, it is rebuilt with each set
named explicitly, then portable; if that fails too, the installed engine is kept.

Options:
  --python PY       Python whose pip builds and installs (default: \$PYTHON or python3)
  --version VER     xllamacpp version (default: \$XLLAMACPP_VERSION, else the version installed
                    for PY, else the newest allowed by pyproject.toml)
  --cuda            CUDA build (needs nvcc and cuBLAS)
  --arch LIST       CUDA compute capabilities, e.g. "86;90" (default: \$CUDA_ARCHITECTURES, else
                    those of the GPUs nvidia-smi lists, else $DEFAULT_ARCHS)
  --portable        no tuning for this machine's CPU (for images that run elsewhere)
  --jobs N          parallel compile jobs (default: all cores)
  --wheel-dir DIR   where the wheel is kept (default: $repo/build/engine)
  --no-install      build the wheel only
  --tools-only      build llama-server and llama-quantize only (no wheel); prints their folder
  --check-model F   GGUF the built engine is checked with (default: the default model)
  --no-check        install without checking that the engine runs
  --dry-run         print what would run, run nothing
  -h, --help        this text

Extra CMake options may be given in CMAKE_ARGS; they come after the built-in ones.
EOF
}

die() {
  echo "build-engine: $*" >&2
  exit 2
}

say() {
  echo "build-engine: $*" >&2
}

python="${PYTHON:-python3}"
version="${XLLAMACPP_VERSION:-}"
cuda=0
arch=""
portable=0
jobs=""
wheel_dir="$repo/build/engine"
install=1
tools_only=0
check=1
check_model=""
dry_run=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) [[ $# -ge 2 ]] || die "--python needs a value"; python="$2"; shift 2 ;;
    --version) [[ $# -ge 2 ]] || die "--version needs a value"; version="$2"; shift 2 ;;
    --cuda) cuda=1; shift ;;
    --arch) [[ $# -ge 2 ]] || die "--arch needs a value"; arch="$2"; shift 2 ;;
    --portable) portable=1; shift ;;
    --jobs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive number"
      jobs="$2"; shift 2 ;;
    --wheel-dir) [[ $# -ge 2 ]] || die "--wheel-dir needs a value"; wheel_dir="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    --tools-only) tools_only=1; install=0; shift ;;
    --check-model) [[ $# -ge 2 ]] || die "--check-model needs a value"; check_model="$2"
      shift 2 ;;
    --no-check) check=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

command -v "$python" >/dev/null 2>&1 || die "no Python at '$python' (use --python)"
if [[ "$python" == */* ]]; then  # absolute: the build runs in the source tree
  python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
fi
[[ -z "$check_model" || -f "$check_model" ]] || die "no model file at $check_model"

# What to build: an exact version, or the requirement pyproject.toml states.
if [[ -z "$version" ]]; then
  version="$("$python" -c 'import importlib.metadata as m; print(m.version("xllamacpp"))' \
    2>/dev/null || true)"
fi
if [[ -n "$version" ]]; then
  [[ "$version" =~ ^[0-9][0-9A-Za-z.+-]*$ ]] || die "not a version: $version"
  spec="xllamacpp==$version"
else
  spec="$(sed -n 's/^[[:space:]]*"\(xllamacpp[<>=!~][^"]*\)",\{0,1\}[[:space:]]*$/\1/p' \
    "$repo/pyproject.toml" 2>/dev/null | head -n 1)"
  [[ -n "$spec" ]] || die "no xllamacpp requirement in $repo/pyproject.toml (use --version)"
fi

gpu_env=()
if [[ "$cuda" == 1 ]]; then
  arch="${arch:-${CUDA_ARCHITECTURES:-}}"
  if [[ -z "$arch" ]] && command -v nvidia-smi >/dev/null 2>&1; then
    arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
      | tr -d ' .' | grep -E '^[0-9]+$' | sort -un | paste -sd ';' || true)"
  fi
  arch="${arch:-$DEFAULT_ARCHS}"
  [[ "$arch" =~ ^[0-9]+[a-z]?(\;[0-9]+[a-z]?)*$ ]] || die "bad CUDA architecture list: $arch"
  gpu_env+=("XLLAMACPP_BUILD_CUDA=1" "CUDA_ARCHITECTURES=$arch")
elif [[ -n "$arch" ]]; then
  die "--arch needs --cuda"
fi
flavor="$([[ "$cuda" == 1 ]] && echo "cuda-${arch//;/-}" || echo cpu)-$(
  [[ "$portable" == 1 ]] && echo portable || echo native)"
src_root="${NEXUS_ENGINE_SRC:-$repo/build/engine/src}"

# The CPU instruction sets to build for: portable, native, or native less what traps here.
cpu_args=""
if [[ "$portable" == 0 ]]; then
  cpu_args="$("$python" "$here/cpu_probe.py")" || die "the CPU probe failed"
fi

# Environment of one build attempt: $1 = extra CMake options for the CPU, $2 = 1 for portable.
attempt_env() {
  local env=("CMAKE_ARGS=$BASE_CMAKE_ARGS${1:+ $1}${CMAKE_ARGS:+ $CMAKE_ARGS}")
  env+=("${gpu_env[@]}")
  [[ "$2" == 1 ]] && env+=("XLLAMACPP_RELEASE=1")
  [[ -n "$jobs" ]] && env+=("NPROC=$jobs")
  printf '%s\n' "${env[@]}"
}

tree_of() {
  echo "$src_root/xllamacpp-$1-$flavor"
}

say "$spec ($([[ "$cuda" == 1 ]] && echo "CUDA $arch" || echo CPU)," \
  "$([[ "$portable" == 1 ]] && echo portable || echo "tuned for this CPU${cpu_args:+, $cpu_args}"))"
if [[ "$dry_run" == 1 ]]; then
  mapfile -t build_env < <(attempt_env "$cpu_args" "$portable")
  tree="$(tree_of "${version:-VERSION}")"
  printf 'env'
  if [[ "$tools_only" == 1 ]]; then
    printf ' %q' "${build_env[@]}" "$python" "$tree/scripts/build.py"
  else
    printf ' %q' "${build_env[@]}" "$python" -m pip wheel --no-deps --no-cache-dir \
      -w "$wheel_dir" "$tree"
  fi
  printf '\n'
  printf '%q ' "$python" -m pip download --no-binary xllamacpp --no-deps "$spec" -d "$src_root"
  printf '\n'
  printf '%q ' cmake --build "$tree/thirdparty/llama.cpp/build" --target llama-server \
    llama-quantize
  printf '\n'
  if [[ "$install" == 1 ]]; then
    [[ "$check" == 1 ]] && printf '%q ' "$python" "$here/engine_check.py" \
      "$wheel_dir/xllamacpp-*.whl" && printf '\n'
    printf '%q ' "$python" -m pip install --no-deps --force-reinstall "$wheel_dir/xllamacpp-*.whl"
    printf '\n'
  fi
  exit 0
fi

# What a CUDA build needs, said before minutes of downloading and compiling.
if [[ "$cuda" == 1 ]]; then
  command -v nvcc >/dev/null 2>&1 || die "--cuda needs nvcc (the CUDA toolkit) on PATH"
  cuda_home="${CUDA_HOME:-${CUDA_PATH:-}}"
  if [[ -z "$cuda_home" && -d /usr/local/cuda ]]; then
    cuda_home=/usr/local/cuda
  elif [[ -z "$cuda_home" ]]; then
    cuda_home="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
  fi
  if ! compgen -G "$cuda_home/lib*/libcublas.so*" >/dev/null \
    && ! compgen -G "$cuda_home/targets/*/lib/libcublas.so*" >/dev/null \
    && ! { command -v ldconfig >/dev/null 2>&1 && ldconfig -p | grep -q 'libcublas\.so'; }; then
    die "--cuda needs cuBLAS, found neither in $cuda_home nor by ldconfig (set CUDA_HOME)"
  fi
fi

mkdir -p "$src_root"
staging="$(mktemp -d "$src_root/.work.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# Sources: the sdist, unpacked once per version and kind of build.
tree=""
[[ -n "$version" ]] && tree="$(tree_of "$version")"
if [[ -z "$tree" || ! -f "$tree/scripts/build.py" ]]; then
  "$python" -m pip download --no-binary xllamacpp --no-deps --no-cache-dir "$spec" \
    -d "$staging/sdist" >&2
  archives=("$staging"/sdist/xllamacpp-*.tar.gz)
  [[ -f "${archives[0]}" ]] || die "pip downloaded no xllamacpp source"
  name="$(basename "${archives[0]}" .tar.gz)"
  version="${name#xllamacpp-}"
  tree="$(tree_of "$version")"
  if [[ ! -f "$tree/scripts/build.py" ]]; then
    tar -xzf "${archives[0]}" -C "$staging"
    rm -rf "$tree"
    mv "$staging/$name" "$tree"
  fi
fi
bin_dir="$tree/thirdparty/llama.cpp/build/bin"

# One build with $1 = CPU CMake options and $2 = portable; sets $wheel unless --tools-only.
build() {
  local build_env
  mapfile -t build_env < <(attempt_env "$1" "$2")
  say "building in $tree with ${build_env[*]}"
  if [[ "$tools_only" == 1 ]]; then
    (cd "$tree" && env "${build_env[@]}" "$python" scripts/build.py) >&2
  else
    rm -rf "$staging/wheel"
    # No pip cache: a wheel built earlier with other options must not be reused.
    env "${build_env[@]}" "$python" -m pip wheel --no-deps --no-cache-dir -w "$staging/wheel" \
      "$tree" >&2
    local wheels=("$staging"/wheel/xllamacpp-*.whl)
    [[ -f "${wheels[0]}" ]] || die "pip built no xllamacpp wheel"
    wheel="${wheels[0]}"
  fi
  cmake --build "$tree/thirdparty/llama.cpp/build" --config Release \
    --parallel "${jobs:-$(nproc 2>/dev/null || echo 2)}" --target llama-server llama-quantize >&2
  "$python" - "$tree/nexus-engine.json" "$version" "$flavor" "$bin_dir" "${wheel:-}" \
    "${build_env[@]}" <<'PY'
import base64, hashlib, json, sys, zipfile
path, version, flavor, bin_dir, wheel, *env = sys.argv[1:]
module = None
if wheel:
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        for line in archive.read(record).decode().splitlines():
            name, digest, _ = line.rsplit(",", 2)
            if name.startswith("xllamacpp/xllamacpp") and name.endswith(".so"):
                module = digest.removeprefix("sha256=")
manifest = {"version": version, "flavor": flavor, "bin": bin_dir, "build_env": env,
            "module_sha256": module}
with open(path, "w") as fh:
    json.dump(manifest, fh, indent=2)
PY
}

checked() {
  [[ "$check" == 1 ]] || return 0
  "$python" "$here/engine_check.py" "$wheel" ${check_model:+--model "$check_model"}
}

wheel=""
build "$cpu_args" "$portable"
if [[ "$tools_only" == 1 ]]; then
  say "llama-server and llama-quantize in $bin_dir"
  echo "$bin_dir"
  exit 0
fi
if [[ "$install" == 1 ]] && ! checked; then
  passed=0
  if [[ "$portable" == 0 && -z "$cpu_args" ]]; then
    explicit="$("$python" "$here/cpu_probe.py" --explicit)"
    if [[ -n "$explicit" ]]; then
      say "rebuilding with each instruction set named: $explicit"
      build "$explicit" 0
      checked && passed=1
    fi
  fi
  if [[ "$passed" == 0 && "$portable" == 0 ]]; then
    say "rebuilding portable (no tuning for this CPU)"
    build "" 1
    checked && passed=1
  fi
  [[ "$passed" == 1 ]] || die "the built engine does not run here; the installed engine is kept"
fi
mkdir -p "$wheel_dir"
kept="$wheel_dir/$(basename "$wheel")"
mv -f "$wheel" "$kept"
say "built $kept"
if [[ "$install" == 1 ]]; then
  "$python" -m pip install --no-deps --force-reinstall "$kept"
fi
