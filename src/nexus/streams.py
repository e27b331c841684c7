"""Async-iterator helpers shared by the service, the API translations and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


async def aclose(it: AsyncIterable[Any]) -> None:
    """Close an async generator (running its ``finally`` blocks); other iterators are left be."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


async def prepend(first: T | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first`` (when not ``None``), then ``rest``; ``rest`` is closed however this ends, so a
    consumer that stops early still releases what ``rest`` holds (a runner slot)."""
    try:
        if first is not None:
            yield first
        async for item in rest:
            yield item
    finally:
        await aclose(rest)
