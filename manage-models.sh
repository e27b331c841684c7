#!/usr/bin/env bash
# Manage the models of the Ollama-compatible service (Nexus).
#
#   ./manage-models.sh pull llama3.1:8b
#   ./manage-models.sh list
#   ./manage-models.sh remove llama3.1:8b
#   ./manage-models.sh info llama3.1:8b
#
# Where the CLI runs:
#   OLLAMA_CLI="..."   use this command (e.g. "nexus", "ollama", "python -m nexus.cli.main");
#   otherwise, inside the docker compose service $OLLAMA_SERVICE (default "ollama") when
#   it is running; otherwise `ollama` or `nexus` from PATH, talking to $OLLAMA_HOST.

set -euo pipefail

usage() {
  echo "Usage: $0 {pull|list|remove|info} [model-name]"
  exit 1
}

need_model() {
  [[ -n "${1:-}" ]] || usage
}

case "${1:-}" in
  pull | remove | info) need_model "${2:-}" ;;
  list) ;;
  *) usage ;;
esac

service="${OLLAMA_SERVICE:-ollama}"

compose_service_running() {
  command -v docker >/dev/null 2>&1 || return 1
  docker compose ps --services --status running 2>/dev/null | grep -qx "$service"
}

cli=()
if [[ -n "${OLLAMA_CLI:-}" ]]; then
  read -r -a cli <<<"$OLLAMA_CLI"
elif compose_service_running; then
  cli=(docker compose exec)
  [[ -t 0 ]] || cli+=(-T)
  cli+=("$service" ollama)
elif command -v ollama >/dev/null 2>&1; then
  cli=(ollama)
elif command -v nexus >/dev/null 2>&1; then
  cli=(nexus)
else
  echo "Error: no '$service' compose service is running and neither ollama nor nexus is on PATH" >&2
  exit 1
fi

case "${1:-}" in
  pull)
    exec "${cli[@]}" pull "$2"
    ;;
  list)
    exec "${cli[@]}" list
    ;;
  remove)
    exec "${cli[@]}" rm "$2"
    ;;
  info)
    exec "${cli[@]}" show "$2"
    ;;
esac
