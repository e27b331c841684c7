"""Errors of the key store; the command line turns each into one ``Error:`` line."""

from __future__ import annotations


class KeyStoreError(Exception):
    """Base of the key store's errors; ``message`` is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatabaseURLError(KeyStoreError):
    """The database URL does not parse or names a database driver that is not installed."""


class KeyExists(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f'key "{name}" exists')
        self.name = name


class KeyNotFound(KeyStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f'no key "{name}"')
        self.name = name
