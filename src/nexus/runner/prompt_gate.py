"""Prompts into one engine in arrival order, so that none waits behind later ones for ever.

The engine evaluates prompts in batches of ``num_batch`` tokens, filling each batch with the
pending prompts of its slots in slot order, lowest first. Under steady load a prompt on a high
slot can therefore wait as long as new prompts keep arriving on lower ones (30 clients on 4
slots leaving after their first token: the first on the last slot was answered last, after
34 s, while later ones took 2-12 s). Ollama's own runner takes the sequences in turn; the gate
gets that fairness from outside the engine. Prompts enter the engine first come, first served,
and only so many together that one batch holds them all, except that one long prompt (over
half a batch) may be in beside short ones counted up to the other half. So every short prompt
let in is evaluated within one batch of it (after the long one at worst), and a long one gets at
least half of every batch: a prompt waits for those before it and at most one long one after.

A prompt is measured by an upper bound first (a token per byte of text); only when that does
not let it in at once, and the text may still be short, is it tokenized for the exact count.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

#: Tokens a tokenizer may add around a text (BOS, EOS, a leading space).
SPECIALS = 4
#: Bytes of text a token holds on average, taken as the most (English runs about 4.5, code a
#: little more): a text of more than this many bytes a token of half a batch is taken as long
#: without tokenizing it (a text of unusually long tokens then waits as a long one would).
MAX_BYTES_PER_TOKEN = 8


def prompt_bound(prompt: Any) -> int | None:
    """At most how many tokens an engine prompt holds (no tokenizer writes more than a token a
    byte, besides its specials); ``None`` where that is not known (images)."""
    if isinstance(prompt, str):
        return len(prompt.encode("utf-8", "surrogatepass")) + SPECIALS
    if isinstance(prompt, list):
        return len(prompt)
    return None


class PromptGate:
    """First come, first served entry of prompts into one engine, a batch's worth at once.

    ``batch`` is the engine's batch size in tokens and ``parallel`` its number of slots: each
    batch first takes a token for every slot that is generating, prompts share the rest
    (``room``). ``enter`` and ``leave`` take the prompt's size in tokens (``None``: unknown,
    taken as long).
    """

    def __init__(self, batch: int, parallel: int) -> None:
        self.room = max(2, batch - parallel)
        self.half = self.room // 2
        self._inside = 0  # the counted sizes of the prompts in the engine
        self._entered = 0
        self._long_inside = False
        self._queue: deque[tuple[int | None, asyncio.Future[None]]] = deque()

    @property
    def entered(self) -> int:
        """Prompts in the engine now, awaiting their first token."""
        return self._entered

    def is_long(self, size: int | None) -> bool:
        return size is None or size > self.half

    def worth_counting(self, bound: int | None) -> bool:
        """Whether a text of at most ``bound`` tokens could be short: only then is its exact
        count worth asking for."""
        return bound is not None and bound <= self.half * MAX_BYTES_PER_TOKEN

    def _share(self, size: int | None) -> int:
        return self.half if size is None else max(1, min(size, self.half))

    def _has_room(self, size: int | None) -> bool:
        if self._entered == 0:
            return True
        if self.is_long(size) and self._long_inside:
            return False
        return self._inside + self._share(size) <= self.room

    def fits(self, size: int | None) -> bool:
        """Whether a prompt of ``size`` tokens would be let in now."""
        return not self._queue and self._has_room(size)

    async def enter(self, size: int | None) -> None:
        """Wait for the prompt's turn; give it back with ``leave(size)``."""
        if self.fits(size):
            self._admit(size)
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((size, ticket))
        try:
            await ticket
        except BaseException:
            if ticket.done() and not ticket.cancelled():
                self.leave(size)  # let in just as it was cancelled: give the turn back
            else:
                ticket.cancel()
                self._wake()  # those behind it may fit now
            raise

    def leave(self, size: int | None) -> None:
        """The prompt has had its first token (or failed, or was abandoned)."""
        self._inside -= self._share(size)
        self._entered -= 1
        if self.is_long(size):
            self._long_inside = False
        self._wake()

    def _admit(self, size: int | None) -> None:
        self._inside += self._share(size)
        self._entered += 1
        if self.is_long(size):
            self._long_inside = True

    def _wake(self) -> None:
        while self._queue:
            size, ticket = self._queue[0]
            if ticket.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            if not self._has_room(size):
                return
            self._queue.popleft()
            self._admit(size)
            ticket.set_result(None)
