"""Borderless, left-aligned tables with four spaces between columns, as Ollama prints them."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

PADDING = "    "


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters count twice."""
    return sum(
        0
        if unicodedata.combining(ch)
        else 2
        if unicodedata.east_asian_width(ch) in ("W", "F")
        else 1
        for ch in text
    )


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str] = ()) -> list[str]:
    """Each cell padded to its column's width; trailing blanks are dropped from each line."""
    table = ([list(header)] if header else []) + [list(row) for row in rows]
    if not table:
        return []
    columns = max(len(row) for row in table)
    widths = [
        max((display_width(row[i]) for row in table if i < len(row)), default=0)
        for i in range(columns)
    ]
    lines = []
    for row in table:
        cells = [cell + " " * (widths[i] - display_width(cell)) for i, cell in enumerate(row)]
        lines.append(PADDING.join(cells).rstrip())
    return lines
