"""Fast checks of the request guards; the real-server tests are in ``test_hardening.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus.errors import BadRequest, Canceled, RunnerFailed
from nexus.options import check_load_options, validate_request_options
from nexus.runner.client import _engine_error
from nexus.server.errors import public_message
from nexus.server.limits import BodyLimits
from nexus.server.streaming import ClosingStreamingResponse, until_disconnect


class LeavingRequest:
    """Just enough of a request: ``receive`` reports a disconnect once ``gone`` is set."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_generator_can_be_closed_after_client_left_before_first_chunk() -> None:
    started = asyncio.Event()

    async def chunks() -> AsyncIterator[int]:
        started.set()
        await asyncio.Event().wait()  # a model load that takes long
        yield 1

    gen = chunks()
    request = LeavingRequest()

    async def answer() -> str:
        """What ``reply`` does: wait for the first chunk, close the chunks when that fails."""
        try:
            await until_disconnect(request, anext(gen))  # type: ignore[arg-type]
        except Canceled:
            # before the fix: "aclose(): asynchronous generator is already running"
            await gen.aclose()
            return "canceled"
        return "answered"

    pending = asyncio.ensure_future(answer())
    await started.wait()
    request.gone.set()
    assert await pending == "canceled"


def test_server_error_messages_lose_filesystem_paths() -> None:
    message = "llama runner failed: cannot open /home/u/.ollama/models/blobs/sha256-ab: gone"
    assert public_message(message, 500) == "llama runner failed: cannot open sha256-ab: gone"
    assert public_message("pull http://h:1/v2/library/x failed", 500).endswith("x failed")
    assert "/v2/library/x" in public_message("pull http://h:1/v2/library/x failed", 500)
    assert public_message('model "a/b/c" not found', 404) == 'model "a/b/c" not found'


def test_engine_parser_messages_are_not_passed_on() -> None:
    body = b'{"error": {"message": "[json.exception.parse_error.101] parse error at 3"}}'
    err = _engine_error(400, body)
    assert isinstance(err, BadRequest)
    assert "json.exception" not in err.message
    empty = _engine_error(500, b'{"error": {"message": ""}}')
    assert isinstance(empty, RunnerFailed) and empty.message


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"num_thread": 3}, "num_thread"),
        ({"num_ctx": 9000}, "num_ctx"),
        ({"num_batch": 9000}, "num_batch"),
        ({"num_gpu": -2}, "num_gpu"),
        ({"main_gpu": -1}, "main_gpu"),
    ],
)
def test_load_options_past_bounds_name_the_option(options: dict[str, int], name: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_load_options(options, context_limit=8192, batch_limit=8192, cpus=2)
    assert info.value.param == name and name in info.value.message


def test_load_options_within_bounds_pass() -> None:
    ok = {"num_thread": 2, "num_ctx": 8192, "num_batch": 512, "num_gpu": 999, "main_gpu": 0}
    check_load_options(ok, context_limit=8192, batch_limit=8192, cpus=2)


@pytest.mark.parametrize("value", [1e30, 2**31, -(2**31) - 1])
def test_integer_options_must_fit_the_engine(value: float) -> None:
    with pytest.raises(BadRequest, match="num_predict"):
        validate_request_options({"num_predict": value})
    assert validate_request_options({"seed": 2**32 - 1}) == {"seed": 2**32 - 1}


async def test_a_reply_nobody_reads_is_given_up_and_its_stream_closed() -> None:
    """``send`` never returns once the client's buffers are full: after the write timeout the
    request ends, and the generator behind the reply runs its ``finally`` (a slot released)."""
    released = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
        finally:
            released.set()

    app = BodyLimits(
        ClosingStreamingResponse(body()), max_body_size=0, read_timeout=5.0, write_timeout=0.05
    )
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client says nothing more
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.body" and len(sent) > 3:
            await asyncio.Event().wait()  # the client reads no more

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "asgi": {"spec_version": "2.4"},
    }
    async with asyncio.timeout(30):  # fails rather than hangs
        await app(scope, receive, send)
    assert released.is_set()
    assert sent[0] == "http.response.start"
