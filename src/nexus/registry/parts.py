"""Splitting a blob into ranged parts, and the on-disk state that lets a download resume.

A download in progress is ``blobs/sha256-<hex>-partial`` (the data, written in place at each
part's offset) plus ``blobs/sha256-<hex>-partial-<N>`` per part, holding Ollama's JSON
``{"N":…,"Offset":…,"Size":…,"Completed":…}``. A part's ``Completed`` only ever counts bytes
already written to the data file, so resuming from it never leaves a hole.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

MB = 1000 * 1000
NUM_PARTS = 16
MIN_PART_SIZE = 100 * MB
MAX_PART_SIZE = 1000 * MB

_STATE_RE = re.compile(r"-\d+")


def default_part_size(total: int) -> int:
    """Ollama's rule: a sixteenth of the blob, clamped to [100 MB, 1000 MB]."""
    return min(max(total // NUM_PARTS, MIN_PART_SIZE), MAX_PART_SIZE)


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    @property
    def start(self) -> int:
        """The first byte still to fetch."""
        return self.offset + self.completed

    @property
    def end(self) -> int:
        """One past the part's last byte."""
        return self.offset + self.size

    @property
    def done(self) -> bool:
        return self.completed >= self.size

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}

    @classmethod
    def from_json(cls, data: object) -> Part | None:
        if not isinstance(data, dict):
            return None
        values = [data.get(key) for key in ("N", "Offset", "Size", "Completed")]
        counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        if len(counts) != len(values):
            return None
        n, offset, size, completed = counts
        return cls(n=n, offset=offset, size=size, completed=min(completed, size))


def split_parts(total: int, part_size: int) -> list[Part]:
    """Consecutive parts of ``part_size`` bytes (the last may be shorter) covering ``total``."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    parts: list[Part] = []
    offset = 0
    while offset < total:
        size = min(part_size, total - offset)
        parts.append(Part(n=len(parts), offset=offset, size=size))
        offset += size
    return parts


def covers(parts: list[Part], total: int) -> bool:
    """Whether ``parts`` (numbered 0..n-1) tile ``[0, total)`` exactly, in order."""
    offset = 0
    for index, part in enumerate(parts):
        if part.n != index or part.offset != offset or part.size <= 0:
            return False
        offset += part.size
    return offset == total


class PartialFiles:
    """The files of one in-progress download, beside the final blob path."""

    def __init__(self, blob_path: Path) -> None:
        self.blob_path = blob_path
        self.data = blob_path.with_name(blob_path.name + "-partial")

    def state(self, n: int) -> Path:
        return self.blob_path.with_name(f"{self.data.name}-{n}")

    def state_files(self) -> list[Path]:
        directory = self.data.parent
        if not directory.is_dir():
            return []
        prefix = self.data.name
        found = []
        for entry in directory.iterdir():
            rest = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
            if _STATE_RE.fullmatch(rest):
                found.append(entry)
        return found

    def load(self, total: int) -> list[Part] | None:
        """The saved parts when they describe a resumable download of ``total`` bytes."""
        if not self.data.is_file() or self.data.stat().st_size != total:
            return None
        parts = []
        for path in self.state_files():
            try:
                part = Part.from_json(json.loads(path.read_text()))
            except (OSError, ValueError):
                return None
            if part is None:
                return None
            parts.append(part)
        parts.sort(key=lambda p: p.n)
        return parts if parts and covers(parts, total) else None

    def save(self, part: Part) -> None:
        """Replace part ``n``'s state in one step, so a crash never leaves half a file."""
        target = self.state(part.n)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(part.to_json()) + "\n")
        os.replace(tmp, target)

    def create(self, parts: list[Part], total: int) -> None:
        """Start over: a sparse data file of ``total`` bytes and fresh part states."""
        self.clear()
        self.data.parent.mkdir(parents=True, exist_ok=True)
        with self.data.open("wb") as f:
            f.truncate(total)
        for part in parts:
            self.save(part)

    def clear_states(self) -> None:
        for path in self.state_files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def clear(self) -> None:
        self.clear_states()
        with contextlib.suppress(FileNotFoundError):
            self.data.unlink()

    def exists(self) -> bool:
        return self.data.exists()
