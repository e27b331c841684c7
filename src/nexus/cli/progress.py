"""Progress of long operations (pull, push, create) on stderr.

A terminal gets Ollama-style lines: one spinner per status message and one bar per layer
digest. Anything else gets plain lines: each status once, and each layer once it is complete.
:func:`follow` turns the NDJSON progress objects of /api/pull, /api/push and /api/create into
calls on a view.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.spinner import Spinner
from rich.text import Text

from nexus.cli.console import Consoles
from nexus.cli.humanize import human_bytes


class ProgressView(Protocol):
    #: Whether lines are redrawn in place (a terminal) rather than printed once.
    live: bool

    def status(self, message: str) -> None:
        """Start a new status line; the previous one stops."""

    def retitle(self, message: str) -> None:
        """Change the text of the current status line (only drawn when ``live``)."""

    def bar(self, key: str, label: str, total: int, completed: int) -> None:
        """Create or advance the bar for ``key``."""

    def stop(self) -> None:
        """Stop every spinner, leaving the lines on screen."""


def _is_bar(task: Task) -> bool:
    return bool(task.fields.get("bar"))


def _fmt_remaining(seconds: float) -> str:
    if seconds >= 100 * 3600:
        return "99h+"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class _Spin(ProgressColumn):
    def __init__(self) -> None:
        super().__init__()
        self._spinner = Spinner("dots")

    def render(self, task: Task) -> Text:
        if _is_bar(task) or task.finished:
            return Text("")
        frame = self._spinner.render(task.get_time())
        return frame if isinstance(frame, Text) else Text(str(frame))


class _Percent(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.percentage:3.0f}%") if _is_bar(task) else Text("")


class _Bar(BarColumn):
    def render(self, task: Task) -> Any:
        return super().render(task) if _is_bar(task) else Text("")


class _Sizes(ProgressColumn):
    def render(self, task: Task) -> Text:
        if not _is_bar(task):
            return Text("")
        total = human_bytes(int(task.total or 0))
        if task.finished:
            return Text(f"{total:>6}       ")
        return Text(f"{human_bytes(int(task.completed)):>6}/{total:>6}")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.speed
        if not _is_bar(task) or task.finished or not speed:
            return Text("")
        remaining = _fmt_remaining(task.time_remaining or 0)
        return Text(f"{human_bytes(int(speed)):>6}/s  {remaining:>6}")


class RichProgress:
    live = True

    def __init__(self, consoles: Consoles) -> None:
        self._progress = Progress(
            "{task.description}",
            _Spin(),
            _Percent(),
            _Bar(bar_width=None),
            _Sizes(),
            _Rate(),
            console=consoles.err,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._bars: dict[str, TaskID] = {}
        self._spinner: TaskID | None = None
        self._progress.start()

    def _stop_spinner(self) -> None:
        if self._spinner is not None:
            self._progress.update(self._spinner, total=1, completed=1)
            self._spinner = None

    def status(self, message: str) -> None:
        self._stop_spinner()
        self._spinner = self._progress.add_task(message, total=None)

    def retitle(self, message: str) -> None:
        if self._spinner is None:
            self.status(message)
        else:
            self._progress.update(self._spinner, description=message)

    def bar(self, key: str, label: str, total: int, completed: int) -> None:
        task = self._bars.get(key)
        if task is None:
            self._stop_spinner()
            task = self._progress.add_task(label, total=max(total, 1), completed=0, bar=True)
            self._bars[key] = task
        self._progress.update(task, completed=min(completed, max(total, 1)))

    def stop(self) -> None:
        self._stop_spinner()
        self._progress.stop()


class PlainProgress:
    live = False

    def __init__(self, consoles: Consoles) -> None:
        self._consoles = consoles
        self._done: set[str] = set()

    def status(self, message: str) -> None:
        self._consoles.note(message)

    def retitle(self, message: str) -> None:
        """Intermediate texts are not worth a line each when nothing is redrawn."""

    def bar(self, key: str, label: str, total: int, completed: int) -> None:
        if key not in self._done and total and completed >= total:
            self._done.add(key)
            self._consoles.note(f"{label} 100% {human_bytes(total)}")

    def stop(self) -> None:
        """Nothing is drawn in place, so nothing needs stopping."""


@contextmanager
def progress_view(consoles: Consoles) -> Iterator[ProgressView]:
    view: ProgressView = (
        RichProgress(consoles) if consoles.err_is_terminal else PlainProgress(consoles)
    )
    try:
        yield view
    finally:
        view.stop()


def _short(digest: str) -> str:
    hex_part = digest.removeprefix("sha256:").strip()
    return hex_part[:12]


def follow(
    view: ProgressView, events: Iterable[dict[str, Any]], *, verb: str, skip_unstarted: bool
) -> str:
    """Draw each progress object; return the last status seen (``success`` when all went well).

    ``verb`` names layers without a status text (``pulling``/``pushing``). Pull skips the
    zero-progress announcement of each layer, as Ollama does, so that the bars that show are
    the ones under way.
    """
    last = shown = ""
    for event in events:
        digest = str(event.get("digest") or "")
        status = str(event.get("status") or "")
        if digest:
            total = int(event.get("total") or 0)
            completed = int(event.get("completed") or 0)
            if skip_unstarted and completed == 0:
                continue
            if verb == "pulling":
                label = f"pulling {_short(digest)}:"
            else:
                label = status or f"{verb} {_short(digest)}..."
            view.bar(digest, label, total, completed)
        elif status and status != shown:
            view.status(status)
            shown = status
        if status:
            last = status
    return last
