"""A client that leaves right after the last event of a stream, while the backend's reply is
still open, is metered all the same: the tokens the stream reported count against its key."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.e2e.conftest import GATEWAY_ENV
from tests.gateway.e2e.test_gateway_usage import usage_rows
from tests.gateway.harness import GatewayProcess, ScriptedBackend, openai_gateway, read_request

MODEL = "held-model"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _chunk(data: dict[str, object] | str) -> bytes:
    line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(line), line)


class HeldBackend(ScriptedBackend):
    """An OpenAI-style backend whose streams send their last event and ``[DONE]``, then keep
    the reply open (the chunked body never ends) until the test stops it."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            if (await read_request(reader)).startswith(b"GET"):
                self.models(writer, MODEL)
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
            delta = {"choices": [{"index": 0, "delta": {"content": "hi"}}], "model": MODEL}
            writer.write(_chunk(delta))
            writer.write(_chunk({"choices": [], "usage": USAGE, "model": MODEL}))
            writer.write(_chunk("[DONE]"))
            await writer.drain()
            await self.release.wait()  # the body's last chunk never comes
            return


@pytest.fixture
def held_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    backend = HeldBackend()
    try:
        with openai_gateway(tmp_path, "held", backend.url, **GATEWAY_ENV) as (gateway, key):
            yield gateway, key
    finally:
        backend.stop()


def test_a_client_leaving_after_the_last_event_is_metered(
    held_gateway: tuple[GatewayProcess, str],
) -> None:
    gateway, key = held_gateway
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    seen = []
    with (
        gateway.client(key) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as reply,
    ):
        assert reply.status_code == 200
        for line in reply.iter_lines():
            seen.append(line)
            if line == "data: [DONE]":
                break  # and leave, with the backend's reply still open
    assert any('"usage"' in line for line in seen)
    deadline = time.monotonic() + 20
    rows: dict[str, tuple[int, int, int]] = {}
    while time.monotonic() < deadline and not rows:
        rows = usage_rows(gateway, "k")  # type: ignore[arg-type]  # only its env is read
        time.sleep(0.2)
    assert rows == {MODEL: (1, 11, 7)}
