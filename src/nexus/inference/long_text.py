"""Tokens of texts far longer than a context, without tokenizing all of them.

Tokenizing a 60 MB prompt made the engine send 40 million token ids back as JSON, which the
server parsed into a list in its event loop: seconds of every client's time and over a gigabyte,
to keep 8,192 of them. Only the start or the end of such a text can be kept, and a token depends
only on the text around it, so the start (or the end) is tokenized alone, with a margin.
"""

from __future__ import annotations

from nexus.runner.client import EngineClient

#: Characters of text one token spans at most, taken as a bound (the longest tokens of common
#: vocabularies are runs of a few dozen spaces or symbols).
MAX_TOKEN_CHARS = 64
#: Tokens past the ones wanted that a slice must hold, so that where it was cut is far away.
MARGIN = 16


def surely_longer(text: str, tokens: int) -> bool:
    """Whether ``text`` is more than ``tokens`` tokens whatever the vocabulary."""
    return len(text) > MAX_TOKEN_CHARS * (tokens + MARGIN)


def _span(tokens: int) -> int:
    return 2 * MAX_TOKEN_CHARS * (tokens + MARGIN)


async def first_tokens(
    client: EngineClient, text: str, n: int, *, add_special: bool
) -> tuple[list[int], int | None]:
    """The first ``n`` tokens of ``text`` (all of them when fewer), and how many it has in all
    (``None`` when that was not counted: more than ``n``)."""
    if len(text) > _span(n):
        tokens = await client.tokenize(text[: _span(n)], add_special=add_special)
        if len(tokens) > n + MARGIN:
            return tokens[:n], None
    tokens = await client.tokenize(text, add_special=add_special)
    return tokens[:n], len(tokens)


async def last_tokens(client: EngineClient, text: str, n: int) -> list[int]:
    """The last ``n`` tokens of ``text`` (no special tokens added)."""
    if len(text) > _span(n):
        tokens = await client.tokenize(text[-_span(n) :], add_special=False)
        if len(tokens) > n + MARGIN:
            return tokens[-n:] if n else []
    tokens = await client.tokenize(text, add_special=False)
    return tokens[-n:] if n else []
