"""Ctrl-C that stops an answer without tearing down the program mid-way.

While a :class:`StopOnInterrupt` block runs, SIGINT only marks it stopped; the
``KeyboardInterrupt`` is raised at once only inside :meth:`StopOnInterrupt.waiting` sections
(blocking reads, where nothing is half-drawn). Code outside them checks :attr:`stopped`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any


class StopOnInterrupt:
    def __init__(self) -> None:
        self.stopped = False
        self._armed = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True
        if self._armed:
            self._armed = False
            raise KeyboardInterrupt

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """A section that a Ctrl-C interrupts immediately (as ``KeyboardInterrupt``)."""
        if self.stopped:
            raise KeyboardInterrupt
        self._armed = True
        try:
            yield
        finally:
            self._armed = False
