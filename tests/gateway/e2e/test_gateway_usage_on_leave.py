"""A client that leaves right after the last event of a stream, while the backend's reply is
still open, is metered all the same: the tokens the stream reported count against its key."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.e2e.conftest import GATEWAY_ENV
from tests.gateway.e2e.test_gateway_usage import usage_rows
from tests.gateway.harness import GatewayProcess, openai_gateway, read_request

MODEL = "held-model"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _chunk(data: dict[str, object] | str) -> bytes:
    line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(line), line)


class HeldBackend:
    """An OpenAI-style backend whose streams send their last event and ``[DONE]``, then keep
    the reply open (the chunked body never ends) until the test stops it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.release = asyncio.Event()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self.release.wait()
            server.close()

        self.loop.run_until_complete(start())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if (await read_request(reader)).startswith(b"GET"):
                    body = json.dumps({"object": "list", "data": [{"id": MODEL}]}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
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
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)
        self.thread.join(10)


@pytest.fixture
def held_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    backend = HeldBackend()
    try:
        url = f"http://127.0.0.1:{backend.port}/v1"
        with openai_gateway(tmp_path, "held", url, **GATEWAY_ENV) as (gateway, key):
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
