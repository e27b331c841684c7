"""The API key format and how a key is stored and checked.

A key reads ``sk-nexus-<keyid>-<secret>``: ``keyid`` is 12 lowercase hex characters, public, and
the row's primary key; ``secret`` is 32 URL-safe random characters (192 bits). Only a random
salt and ``HMAC-SHA256(salt, secret)`` are stored. Because the secret is random with more than
190 bits of entropy, nobody can guess it from the hash, so a fast keyed hash is the right choice
(a slow password hash guards against guessing low-entropy passwords and would only cost CPU on
every request here).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sk-nexus-"
KEY_ID_CHARS = 12
SECRET_CHARS = 32

_KEY = re.compile(r"sk-nexus-([0-9a-f]{12})-([A-Za-z0-9_-]{32})")


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``raw`` is shown once and never stored."""

    key_id: str
    raw: str
    salt: str
    hash: str


def new_key_id() -> str:
    return secrets.token_hex(KEY_ID_CHARS // 2)


def hash_secret(salt: str, secret: str) -> str:
    """``HMAC-SHA256(salt, secret)`` in hex; ``salt`` is hex text."""
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def generate(key_id: str | None = None) -> NewKey:
    """A new random key with its salt and hash."""
    key_id = key_id or new_key_id()
    secret = secrets.token_urlsafe(24)  # 24 random bytes: exactly 32 characters
    salt = secrets.token_hex(16)
    return NewKey(key_id, f"{PREFIX}{key_id}-{secret}", salt, hash_secret(salt, secret))


def parse(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else ``None``."""
    match = _KEY.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def verify(secret: str, salt: str, expected_hash: str) -> bool:
    """Whether ``secret`` hashes to ``expected_hash``, compared in constant time."""
    try:
        actual = hash_secret(salt, secret)
    except ValueError:  # a corrupt salt in the database
        return False
    return hmac.compare_digest(actual, expected_hash)
