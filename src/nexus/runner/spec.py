"""What selects a runner process: the weights and the options fixed at load time."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunnerSpec:
    """Runners are keyed by weights blob; a request whose spec differs reloads the runner."""

    model_path: str
    #: Context per request (Ollama's ``num_ctx``); the engine holds ``num_ctx * num_parallel``.
    num_ctx: int
    num_parallel: int = 1
    num_batch: int = 512
    #: Layers to offload; -1 lets the engine fit as many as GPU memory allows.
    num_gpu: int = -1
    main_gpu: int = 0
    num_thread: int = 0
    use_mmap: bool = True
    flash_attention: bool | None = None
    kv_cache_type: str = "f16"
    adapters: tuple[str, ...] = ()
    #: Multimodal projector (vision tower) files, loaded beside the weights.
    projectors: tuple[str, ...] = ()
    #: Mean pooling for models whose GGUF names no pooling, so chat models also embed.
    mean_pooling: bool = True
    #: A second runner of the same weights for embeddings only: llama.cpp's server never
    #: batches an embedding with generations, so on a generating runner it would wait for all.
    embeddings_only: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        """What the scheduler keeps one runner for."""
        return self.model_path, self.embeddings_only

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunnerSpec:
        data = dict(data)
        data["adapters"] = tuple(data.get("adapters", ()))
        data["projectors"] = tuple(data.get("projectors", ()))
        return cls(**data)

    @property
    def threads(self) -> int:
        return self.num_thread if self.num_thread > 0 else default_threads()


def default_threads() -> int:
    """Physical cores are what llama.cpp wants; without a cheap way to know, use what we may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@functools.cache
def machine_cpus() -> int:
    """CPUs this machine has (read once: ``os.cpu_count`` reads sysfs on every call)."""
    return max(1, os.cpu_count() or 1)
