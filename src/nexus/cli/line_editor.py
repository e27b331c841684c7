"""Line input for the chat: GNU readline editing and history where Python has it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from nexus.config import ClientSettings, ConfigError

HISTORY_LENGTH = 1000


class LineEditor:
    """``input()`` with GNU readline editing and a history file when they are available."""

    def __init__(self, history_file: Path | None) -> None:
        self.history_file = history_file
        try:
            import readline
        except ImportError:  # no readline on this platform: plain input()
            self._readline: Any = None
            return
        self._readline = readline
        if history_file is not None and history_file.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(history_file)
        self.set_history(history_file is not None)

    def set_history(self, on: bool) -> None:
        if self._readline is not None:
            self._readline.set_auto_history(on)

    def read(self, prompt: str) -> str:
        return input(prompt)

    def save(self) -> None:
        if self._readline is None or self.history_file is None:
            return
        try:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            self._readline.set_history_length(HISTORY_LENGTH)
            self._readline.write_history_file(self.history_file)
        except OSError:
            pass


def default_history_file() -> Path | None:
    """``~/.ollama/history``, as Ollama keeps it; none when OLLAMA_NOHISTORY is set."""
    try:
        if ClientSettings.from_env().nohistory:
            return None
    except ConfigError:
        pass
    return Path.home() / ".ollama" / "history"
