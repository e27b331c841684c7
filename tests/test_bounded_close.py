"""A closed connection whose client takes none of the rest of the reply is reset in the end;
one whose client is still reading is left to finish. Timers and transport are stand-ins."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from nexus.net.guarded import BoundedClose


class FakeSocket:
    def __init__(self) -> None:
        self.options: list[tuple[int, int, bytes]] = []

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.options.append((level, option, value))


class FakeTransport:
    def __init__(self, buffered: int) -> None:
        self.buffered = buffered
        self.closed = self.aborted = False
        self.sock = FakeSocket()

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class Handle:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop

    def cancel(self) -> None:
        self.loop.pending.clear()


class FakeLoop:
    """Holds the pending timer; ``fire`` runs it."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        self.pending.append((delay, callback))
        return Handle(self)

    def fire(self) -> None:
        _, callback = self.pending.pop(0)
        callback()


def bounded(buffered: int) -> tuple[BoundedClose, FakeTransport, FakeLoop]:
    transport, loop = FakeTransport(buffered), FakeLoop()
    wrapper = BoundedClose(transport, loop, 5.0)  # type: ignore[arg-type]
    return wrapper, transport, loop


def test_a_client_taking_nothing_is_reset_after_the_timeout() -> None:
    wrapper, transport, loop = bounded(buffered=1000)
    wrapper.close()
    assert transport.closed and not transport.aborted
    assert [delay for delay, _ in loop.pending] == [5.0]
    loop.fire()
    assert transport.aborted
    reset = struct.pack("ii", 1, 0)
    assert transport.sock.options == [(socket.SOL_SOCKET, socket.SO_LINGER, reset)]


def test_a_client_still_reading_is_given_more_time() -> None:
    wrapper, transport, loop = bounded(buffered=1000)
    wrapper.close()
    transport.buffered = 400  # it took some
    loop.fire()
    assert not transport.aborted and len(loop.pending) == 1
    transport.buffered = 0  # and the rest
    loop.fire()
    assert not transport.aborted and not loop.pending


def test_nothing_left_to_send_closes_plainly() -> None:
    wrapper, transport, loop = bounded(buffered=0)
    wrapper.close()
    assert transport.closed and not loop.pending and not transport.aborted


def test_everything_else_is_the_transports() -> None:
    wrapper, transport, _ = bounded(buffered=0)
    wrapper.write(b"abc")
    assert wrapper.get_write_buffer_size() == 3 and not wrapper.is_closing()
    assert wrapper.get_extra_info("socket") is transport.sock


def test_a_connection_lost_meanwhile_stops_the_timer() -> None:
    wrapper, transport, loop = bounded(buffered=10)
    wrapper.close()
    wrapper.lost()
    assert not loop.pending and not transport.aborted
