#!/usr/bin/env bash
# Build the xllamacpp engine from its PyPI source into a wheel, then install that wheel.
#
# One script for every engine build: `make engine-native` (this CPU), `make engine-cuda` (this
# machine's GPUs) and the Dockerfile's CUDA stage (a portable wheel for several GPU generations).
# LLGuidance and TLS need downloads from outside PyPI, so they are left out (JSON schemas then go
# through llama.cpp's own grammar converter).
set -euo pipefail

DEFAULT_ARCHS="75;80;86;89;90"
BASE_CMAKE_ARGS="-DLLAMA_LLGUIDANCE=OFF -DLLAMA_BUILD_BORINGSSL=OFF -DLLAMA_OPENSSL=OFF"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<EOF
Usage: $0 [options]

Builds xllamacpp from its source distribution with pip, into a wheel, and installs the wheel
(unless --no-install) into the environment of --python.

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
  --dry-run         print what would run, run nothing
  -h, --help        this text

Extra CMake options may be given in CMAKE_ARGS; they come after the built-in ones.
EOF
}

die() {
  echo "build-engine: $*" >&2
  exit 2
}

python="${PYTHON:-python3}"
version="${XLLAMACPP_VERSION:-}"
cuda=0
arch=""
portable=0
jobs=""
wheel_dir="$repo/build/engine"
install=1
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
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

command -v "$python" >/dev/null 2>&1 || die "no Python at '$python' (use --python)"

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

build_env=("CMAKE_ARGS=$BASE_CMAKE_ARGS${CMAKE_ARGS:+ $CMAKE_ARGS}")
if [[ "$cuda" == 1 ]]; then
  arch="${arch:-${CUDA_ARCHITECTURES:-}}"
  if [[ -z "$arch" ]] && command -v nvidia-smi >/dev/null 2>&1; then
    arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
      | tr -d ' .' | grep -E '^[0-9]+$' | sort -un | paste -sd ';' || true)"
  fi
  arch="${arch:-$DEFAULT_ARCHS}"
  [[ "$arch" =~ ^[0-9]+[a-z]?(\;[0-9]+[a-z]?)*$ ]] || die "bad CUDA architecture list: $arch"
  build_env+=("XLLAMACPP_BUILD_CUDA=1" "CUDA_ARCHITECTURES=$arch")
elif [[ -n "$arch" ]]; then
  die "--arch needs --cuda"
fi
[[ "$portable" == 1 ]] && build_env+=("XLLAMACPP_RELEASE=1")
[[ -n "$jobs" ]] && build_env+=("NPROC=$jobs")

echo "build-engine: $spec ($([[ "$cuda" == 1 ]] && echo "CUDA $arch" || echo CPU)," \
  "$([[ "$portable" == 1 ]] && echo portable || echo "tuned for this CPU"))" >&2
if [[ "$dry_run" == 1 ]]; then
  printf 'env'
  printf ' %q' "${build_env[@]}" "$python" -m pip wheel --no-deps --no-cache-dir \
    --no-binary xllamacpp -w "$wheel_dir" "$spec"
  printf '\n'
  if [[ "$install" == 1 ]]; then
    printf '%q ' "$python" -m pip install --no-deps --force-reinstall "$wheel_dir/xllamacpp-*.whl"
    printf '\n'
  fi
  exit 0
fi

mkdir -p "$wheel_dir"
staging="$(mktemp -d "$wheel_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
# No pip cache: a wheel built earlier with other options (CPU vs CUDA) must not be reused.
env "${build_env[@]}" "$python" -m pip wheel --no-deps --no-cache-dir --no-binary xllamacpp \
  -w "$staging" "$spec"
wheels=("$staging"/xllamacpp-*.whl)
[[ -f "${wheels[0]}" ]] || die "pip built no xllamacpp wheel"
wheel="$wheel_dir/$(basename "${wheels[0]}")"
mv -f "${wheels[0]}" "$wheel"
echo "build-engine: built $wheel" >&2
if [[ "$install" == 1 ]]; then
  "$python" -m pip install --no-deps --force-reinstall "$wheel"
fi
