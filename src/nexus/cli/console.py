"""The one place that owns the terminal: results to stdout, progress and notes to stderr.

Commands write through a :class:`Consoles` they create per invocation, never with ``print``.
Results are written as raw text (byte-exact, no markup, no wrapping) so that scripts can
parse them; rich only draws spinners and progress bars, and only when stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.status import Status


def _console(stream: object) -> Console:
    return Console(
        file=stream,  # type: ignore[arg-type]
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=True,
    )


@dataclass(frozen=True)
class Consoles:
    """stdout (``out``) for results, stderr (``err``) for progress, notes and errors."""

    out: Console
    err: Console

    @classmethod
    def create(cls) -> Consoles:
        return cls(out=_console(sys.stdout), err=_console(sys.stderr))

    @property
    def out_is_terminal(self) -> bool:
        return self.out.is_terminal

    @property
    def err_is_terminal(self) -> bool:
        return self.err.is_terminal

    def write(self, text: str) -> None:
        """Raw text to stdout, flushed at once (streamed tokens, results)."""
        self.out.file.write(text)
        self.out.file.flush()

    def line(self, text: str = "") -> None:
        """One result line on stdout."""
        self.write(text + "\n")

    def note(self, text: str = "", *, end: str = "\n") -> None:
        """A line for the user, not for scripts: stderr."""
        self.err.file.write(text + end)
        self.err.file.flush()

    def error(self, message: str) -> None:
        self.note(f"Error: {message}")

    def start_spinner(self, message: str = "") -> SpinnerHandle:
        """A transient spinner on stderr until ``stop()`` (nothing when not a terminal)."""
        status = self.err.status(message, spinner="dots") if self.err_is_terminal else None
        if status is not None:
            status.start()
        return SpinnerHandle(status)

    @contextmanager
    def spinner(self, message: str = "") -> Iterator[None]:
        """A transient spinner on stderr while the block runs."""
        handle = self.start_spinner(message)
        try:
            yield
        finally:
            handle.stop()


class SpinnerHandle:
    """Stops its spinner once; later calls do nothing."""

    def __init__(self, status: Status | None) -> None:
        self._status = status

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
