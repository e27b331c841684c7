"""Model names across backends, and the merged model lists the gateway answers itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.gateway.backends import Backend


def canonical(name: str) -> str:
    """One spelling per model: Ollama's names are case-insensitive and ``foo`` is
    ``foo:latest``; OpenAI-style ids (``org/Model-8B``) compare the same way."""
    name = name.strip().lower()
    return name.removesuffix(":latest")


def tagged(name: str) -> str:
    """A name with an explicit tag, as Ollama clients expect in ``/api/tags``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def unknown_details() -> dict[str, Any]:
    """Ollama's ``details`` for a model an OpenAI-compatible backend serves: nothing known."""
    return {
        "parent_model": "",
        "format": "",
        "family": "",
        "families": None,
        "parameter_size": "",
        "quantization_level": "",
    }


def _openai_row(model_id: str) -> dict[str, Any]:
    return {
        "name": tagged(model_id),
        "model": tagged(model_id),
        "modified_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "size": 0,
        "digest": "",
        "details": unknown_details(),
    }


def tags(backends: list[Backend], allowed: Any) -> dict[str, Any]:
    """``/api/tags``: every model of every healthy backend once (first backend wins)."""
    seen: set[str] = set()
    rows = []
    for backend in backends:
        if not backend.up:
            continue
        for entry in backend.entries:
            name = str(entry.get("id") if backend.kind == "openai" else entry.get("model", ""))
            key = canonical(name)
            if not name or key in seen or not allowed(name):
                continue
            seen.add(key)
            rows.append(_openai_row(name) if backend.kind == "openai" else entry)
    return {"models": rows}


def running(backends: list[Backend], allowed: Any) -> dict[str, Any]:
    """``/api/ps``: the loaded models of every healthy ``ollama`` backend."""
    rows = [
        row
        for backend in backends
        if backend.up
        for row in backend.running
        if allowed(str(row.get("model") or row.get("name") or ""))
    ]
    return {"models": rows}


def openai_models(backends: list[Backend], allowed: Any) -> dict[str, Any]:
    """``/v1/models``: OpenAI's list over every healthy backend."""
    seen: set[str] = set()
    data = []
    now = int(time.time())
    for backend in backends:
        if not backend.up:
            continue
        for entry in backend.entries:
            if backend.kind == "openai":
                name = str(entry.get("id", ""))
                row = dict(entry)
            else:
                name = str(entry.get("model") or entry.get("name") or "")
                row = {"id": name, "object": "model", "created": now, "owned_by": "library"}
            key = canonical(name)
            if not name or key in seen or not allowed(name):
                continue
            seen.add(key)
            data.append(row)
    return {"object": "list", "data": data}


def find_model(backends: list[Backend], name: str, allowed: Any) -> dict[str, Any] | None:
    """``/v1/models/{name}``: the one entry, if a healthy backend has it."""
    key = canonical(name)
    for row in openai_models(backends, allowed)["data"]:
        if canonical(str(row["id"])) == key:
            return dict(row)
    return None
