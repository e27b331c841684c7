"""Streamed answers on stdout: word wrapping at the terminal's width and thinking blocks."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from nexus.cli.console import Consoles
from nexus.cli.tables import display_width

# Columns kept free at the right edge, and the longest word worth moving to the next line.
_MARGIN = 5
_LONG_WORD = 10


@dataclass
class WordWrapper:
    """Breaks streamed text between words; a word that would cross the edge is moved down.

    Text arrives a few characters at a time and is written at once, so a word already on
    screen is erased (cursor left, clear to end of line) and rewritten on the next line.
    """

    width: int
    column: int = 0
    word: str = ""

    def feed(self, text: str) -> str:
        out: list[str] = []
        limit = self.width - _MARGIN
        for ch in text:
            if ch in "\r\n":
                out.append(ch)
                self.column, self.word = 0, ""
                continue
            ch_width = display_width(ch)
            if self.column + ch_width > limit:
                moved = self.word if display_width(self.word) <= self.width - _LONG_WORD else ""
                if moved:
                    out.append(f"\x1b[{display_width(moved)}D\x1b[K")
                out.append("\n")
                if ch in " \t":
                    out.append(moved)
                    self.column, self.word = display_width(moved), ""
                    continue
                out.append(moved + ch)
                self.word = moved + ch
                self.column = display_width(self.word)
                continue
            out.append(ch)
            self.column += ch_width
            if ch in " \t" or ch_width > 1:
                self.word = ""
            else:
                self.word += ch
        return "".join(out)


@dataclass
class AnswerWriter:
    """Writes one answer: optional thinking block first, then the content."""

    consoles: Consoles
    wrap: bool
    hide_thinking: bool = False
    _wrapper: WordWrapper | None = None
    _thinking_open: bool = False
    _thinking_text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reset_wrapper()

    def _reset_wrapper(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        use = self.wrap and self.consoles.out_is_terminal and width >= _LONG_WORD
        self._wrapper = WordWrapper(width) if use else None

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.consoles.write(self._wrapper.feed(text) if self._wrapper else text)

    def _styled(self, text: str, *, grey_after: bool) -> str:
        """Bold grey ``text``; the thinking itself stays grey until the block closes."""
        if not self.consoles.out_is_terminal:
            return text
        return f"\x1b[1;90m{text}\x1b[0m" + ("\x1b[90m" if grey_after else "")

    def thinking(self, text: str) -> None:
        if not text or self.hide_thinking:
            return
        if not self._thinking_open:
            self.consoles.write(self._styled("Thinking...\n", grey_after=True))
            self._thinking_open = True
        self._thinking_text.append(text)
        self._emit(text)

    def content(self, text: str) -> None:
        if text and self._thinking_open:
            self.close_thinking()
        self._emit(text)

    def close_thinking(self) -> None:
        if not self._thinking_open:
            return
        if not "".join(self._thinking_text).endswith("\n"):
            self.consoles.write("\n")
        self.consoles.write(self._styled("...done thinking.\n\n", grey_after=False))
        self._thinking_open = False
        self._thinking_text.clear()
        self._reset_wrapper()
