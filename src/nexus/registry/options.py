"""Knobs of a transfer: part size, parallelism, retries, how often progress is reported."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.registry.parts import NUM_PARTS, default_part_size


@dataclass(frozen=True)
class TransferOptions:
    #: Bytes per ranged part; None applies Ollama's rule (total/16 in [100 MB, 1000 MB]).
    part_size: int | None = None
    #: Parts of one blob fetched at the same time.
    max_parallel: int = NUM_PARTS
    #: Failed attempts allowed per part (an attempt that made progress does not count).
    retries: int = 6
    #: First retry delay in seconds; doubles each time.
    backoff_s: float = 1.0
    #: Seconds between progress reports of a transfer.
    progress_interval_s: float = 0.1
    #: Seconds without a byte before a connection is given up (and the part retried).
    read_timeout_s: float = 30.0

    def part_size_for(self, total: int) -> int:
        return self.part_size if self.part_size else default_part_size(total)
