#!/bin/sh
# Container entrypoint. Runs a nexus command (`serve` when none is given, so `docker run IMAGE list`
# works as with Ollama's image) or any program on PATH (`nexus gateway`, `bash`). Before the server
# starts it registers the default model when the image carries one (NEXUS_IMPORT_DEFAULT=1): the
# store lives on the volume, so that happens at start, once per store.
set -e

case "${1:-}" in
  "") set -- nexus serve ;;
  -*) set -- nexus "$@" ;;
  *) command -v -- "$1" >/dev/null 2>&1 || set -- nexus "$@" ;;
esac

if [ "${NEXUS_IMPORT_DEFAULT:-0}" = 1 ]; then
  case "$1 ${2:-}" in
    "nexus serve" | "ollama serve" | "nexus start" | "ollama start")
      if ! nexus import-default; then
        echo "entrypoint: could not register the default model in ${OLLAMA_MODELS:-$HOME/.ollama/models}" \
          "as uid $(id -u): is the volume writable by it? (see docs/deploy.md)" >&2
        exit 1
      fi
      ;;
  esac
fi

exec "$@"
