"""The timing summary ``--verbose`` and ``/set verbose`` print on stderr after an answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nexus.cli.humanize import go_duration


def _int(final: Mapping[str, Any], key: str) -> int:
    value = final.get(key)
    return int(value) if isinstance(value, int | float) else 0


def summary_lines(final: Mapping[str, Any]) -> list[str]:
    """Lines for the metrics of a final (``done``) response; zero values are left out."""
    lines: list[str] = []
    total, load = _int(final, "total_duration"), _int(final, "load_duration")
    prompt_count, prompt_ns = _int(final, "prompt_eval_count"), _int(final, "prompt_eval_duration")
    eval_count, eval_ns = _int(final, "eval_count"), _int(final, "eval_duration")
    if total > 0:
        lines.append(f"total duration:       {go_duration(total)}")
    if load > 0:
        lines.append(f"load duration:        {go_duration(load)}")
    if prompt_count > 0:
        lines.append(f"prompt eval count:    {prompt_count} token(s)")
    if prompt_ns > 0:
        lines.append(f"prompt eval duration: {go_duration(prompt_ns)}")
        lines.append(f"prompt eval rate:     {prompt_count / (prompt_ns / 1e9):.2f} tokens/s")
    if eval_count > 0:
        lines.append(f"eval count:           {eval_count} token(s)")
    if eval_ns > 0:
        lines.append(f"eval duration:        {go_duration(eval_ns)}")
        lines.append(f"eval rate:            {eval_count / (eval_ns / 1e9):.2f} tokens/s")
    return lines
