"""The one error type of the template package."""

from __future__ import annotations

from nexus.errors import BadRequest


class TemplateError(BadRequest):
    """Raised when a template does not parse, or fails while it is rendered.

    ``line`` is the 1-based line of the template the problem was found on, when known.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        self.detail = message
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"template: {where}{message}")
