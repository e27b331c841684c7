"""Errors a command reports as one ``Error: <message>`` line before exiting with status 1."""

from __future__ import annotations


class CLIError(Exception):
    """Raised when a command fails in a way the user should read about (never a traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerError(CLIError):
    """Raised when the server answers with an error status or an ``{"error"}`` stream line."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


class NotConnected(CLIError):
    """Raised when nothing answers at the server's address."""

    def __init__(self, url: str) -> None:
        super().__init__(f"could not connect to Nexus at {url}; is `nexus serve` running?")
        self.url = url
