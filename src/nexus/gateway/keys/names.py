"""Model names compared as Ollama compares them: case-insensitive, ``foo`` is ``foo:latest``."""

from __future__ import annotations


def normalise_model(name: str) -> str:
    """Lowercase ``name`` and add ``:latest`` when no tag follows the last ``/``."""
    name = name.strip().lower()
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name
