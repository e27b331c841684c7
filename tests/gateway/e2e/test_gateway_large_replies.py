"""A reply that is not a stream but too large to hold (embeddings of many inputs) is passed on as
it comes: no size limit, the gateway's memory stays flat, its counts are still metered, and a
backend that breaks it off leaves the client with a cut reply, never a well-formed part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.gateway.e2e.conftest import GATEWAY_ENV, Stack
from tests.gateway.e2e.test_gateway_usage import usage_rows
from tests.gateway.harness import (
    GatewayProcess,
    ScriptedBackend,
    create_key,
    openai_gateway,
    read_request,
)
from tests.support import DEFAULT_MODEL, stalled_reader, wait_reset

MODEL = "big-model"
ROW = b'{"object":"embedding","index":0,"embedding":[' + b",".join([b"0.1234567"] * 1024) + b"]}"
PIECE = 1024 * 1024


def _reply_parts(rows: int, prompt: int) -> tuple[bytes, bytes]:
    head = b'{"object":"list","data":['
    tail = b'],"model":"%s","usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (
        MODEL.encode(),
        prompt,
        prompt,
    )
    return head, tail


def reply_size(rows: int, prompt: int) -> int:
    head, tail = _reply_parts(rows, prompt)
    return len(head) + rows * len(ROW) + (rows - 1) + len(tail)


class BigBackend(ScriptedBackend):
    """An OpenAI-style backend whose embeddings reply has as many rows of 1,024 numbers as the
    request's ``dimensions`` says, else one an input (the row itself is the same each time), with
    usage at its end. An input ``fail`` makes it answer 500, ``short`` one row too few.
    ``user`` lists what else it does: ``chunked`` sends it chunked, ``cut`` breaks it off after
    3 MB."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if request.startswith(b"GET"):
                self.models(writer, MODEL)
                await writer.drain()
                continue
            data = json.loads(request.split(b"\r\n\r\n", 1)[1])
            inputs = data["input"]
            rows, modes = int(data.get("dimensions", len(inputs))), data.get("user", "").split(",")
            prompt = len(inputs)
            if "fail" in inputs:
                error = b'{"error":{"message":"no such luck","type":"server_error"}}'
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: "
                             b"application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(error), error))  # fmt: skip
                await writer.drain()
                continue
            if "short" in inputs:
                rows -= 1
            size = reply_size(rows, prompt)
            if "chunked" in modes:
                framing = b"transfer-encoding: chunked"
            else:
                framing = b"content-length: %d" % size
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            writer.write(framing + b"\r\n\r\n")
            sent = 0
            for piece in self._body(rows, prompt):
                if "cut" in modes and sent > 3 * PIECE:
                    return  # the connection closes mid-reply
                chunked = "chunked" in modes
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
                await writer.drain()
            if "chunked" in modes:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    @staticmethod
    def _body(rows: int, prompt: int) -> Iterator[bytes]:
        head, tail = _reply_parts(rows, prompt)
        pending = [head]
        size = len(head)
        for row in range(rows):
            pending.append(ROW if row == 0 else b"," + ROW)
            size += len(pending[-1])
            if size >= PIECE:
                yield b"".join(pending)
                pending, size = [], 0
        yield b"".join([*pending, tail])


@pytest.fixture
def big(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway in front of a ``BigBackend``, with the environment ``indirect`` gives."""
    env = {**GATEWAY_ENV, **getattr(request, "param", {})}
    backend = BigBackend()
    try:
        with openai_gateway(tmp_path, "big", backend.url, **env) as (gateway, key):
            yield gateway, key
    finally:
        backend.stop()


def _memory_kb(gateway: GatewayProcess, field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (the highest resident size so far) of the gateway process."""
    for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in the gateway's status")


@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_a_reply_larger_than_any_limit_passes_with_flat_memory(
    big: tuple[GatewayProcess, str], mode: str
) -> None:
    gateway, key = big
    rows = 300 * 1024 * 1024 // len(ROW) + 1  # over 300 MB
    expected = reply_size(rows, 3)
    request = {"model": MODEL, "input": ["a", "b", "c"], "dimensions": rows, "user": mode}
    before = _memory_kb(gateway, "VmRSS")
    received = 0
    last = b""
    with (
        gateway.client(key) as http,
        http.stream("POST", "/v1/embeddings", json=request) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["x-nexus-backend"] == "big"
        if mode == "length":
            assert int(reply.headers["content-length"]) == expected
        for piece in reply.iter_bytes():
            received += len(piece)
            last = (last + piece)[-200:]
    assert received == expected
    assert last.endswith(b'"usage":{"prompt_tokens":3,"total_tokens":3}}')
    grown_mb = (_memory_kb(gateway, "VmHWM") - before) / 1024
    assert grown_mb < 64, f"the gateway grew by {grown_mb:.0f} MB relaying a 300 MB reply"
    assert _usage_once(gateway) == {MODEL: (1, 3, 0)}


def expect_cut(http: httpx.Client, path: str, body: dict[str, object]) -> None:
    """A 200 reply whose connection closes before its end."""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", path, json=body) as reply,
    ):
        assert reply.status_code == 200
        for _ in reply.iter_bytes():
            pass


def _usage_once(gateway: GatewayProcess) -> dict[str, tuple[int, int, int]]:
    rows: dict[str, tuple[int, int, int]] = {}
    for _ in range(100):
        rows = usage_rows(gateway, "k")  # type: ignore[arg-type]  # only its env is read
        if rows:
            break
    return rows


def test_the_openai_client_reads_a_passed_reply(big: tuple[GatewayProcess, str]) -> None:
    gateway, key = big
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    rows = 3 * PIECE // len(ROW)  # about 3 MB, past what is held whole
    reply = client.embeddings.create(
        model=MODEL, input=["a", "b"], dimensions=rows, extra_body={"user": "chunked"}
    )
    assert len(reply.data) == rows and len(reply.data[-1].embedding) == 1024
    assert reply.usage.prompt_tokens == 2
    assert _usage_once(gateway) == {MODEL: (1, 2, 0)}


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_reply_broken_off_reaches_the_client_cut(
    big: tuple[GatewayProcess, str], framing: str
) -> None:
    gateway, key = big
    rows = 8 * PIECE // len(ROW)
    modes = "cut,chunked" if framing == "chunked" else "cut"
    cut = {"model": MODEL, "input": ["a"], "dimensions": rows, "user": modes}
    with gateway.client(key) as http:
        expect_cut(http, "/v1/embeddings", cut)
        assert "cut off the reply to /v1/embeddings: backend big failed" in gateway.log.read_text()
        whole = http.post(
            "/v1/embeddings", json={"model": MODEL, "input": ["a"], "dimensions": 4}
        ).json()
    assert len(whole["data"]) == 4


@pytest.mark.parametrize("big", [{"NEXUS_GATEWAY_WRITE_TIMEOUT": "1s"}], indirect=True)
def test_a_client_reading_none_of_a_reply_is_dropped(big: tuple[GatewayProcess, str]) -> None:
    """After NEXUS_GATEWAY_WRITE_TIMEOUT the request ends (and with it the backend's), and the
    connection is reset once the client has taken none of the rest for as long again."""
    gateway, key = big
    body = json.dumps({"model": MODEL, "input": ["a"], "dimensions": 5000}).encode()
    sock = stalled_reader(
        gateway.url,
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (key.encode(), len(body), body),
    )
    try:
        wait_reset(sock)
    finally:
        sock.close()
    assert "read none of the reply" in gateway.log.read_text()
    with gateway.client(key) as http:
        reply = http.post("/v1/embeddings", json={"model": MODEL, "input": ["a"], "dimensions": 2})
    assert len(reply.json()["data"]) == 2


def test_many_embeddings_through_the_gateway_equal_the_backends(stack: Stack) -> None:
    """A real backend's reply of more than a megabyte, through the gateway with the official
    client: the same vectors as asked directly, and its count metered."""
    key = create_key(stack.env, "embedder")
    inputs = [f"sentence number {n}" for n in range(120)]
    native = ollama.Client(host=stack.gateway.url, headers={"Authorization": f"Bearer {key}"})
    through = native.embed(model=DEFAULT_MODEL, input=inputs)
    direct = ollama.Client(host=stack.a.url).embed(model=DEFAULT_MODEL, input=inputs)
    assert len(through.embeddings) == 120
    for got, want in zip(through.embeddings, direct.embeddings, strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-3
    assert through.prompt_eval_count == direct.prompt_eval_count
    rows: dict[str, tuple[int, int, int]] = {}
    for _ in range(100):
        rows = usage_rows(stack, "embedder")
        if rows:
            break
    assert rows == {DEFAULT_MODEL: (1, direct.prompt_eval_count or 0, 0)}


def _native(gateway: GatewayProcess, key: str) -> ollama.Client:
    return ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})


def test_a_native_embedding_of_many_inputs_goes_a_window_at_a_time(
    big: tuple[GatewayProcess, str],
) -> None:
    """Through an OpenAI backend, 3,000 inputs: every vector there, the counts summed, and the
    gateway's memory flat (the reply is about 28 MB, its floats some 150 MB in Python)."""
    gateway, key = big
    before = _memory_kb(gateway, "VmRSS")
    reply = _native(gateway, key).embed(model=MODEL, input=[f"i{n}" for n in range(3000)])
    grown_mb = (_memory_kb(gateway, "VmHWM") - before) / 1024
    assert len(reply.embeddings) == 3000 and reply.prompt_eval_count == 3000
    assert abs(sum(x * x for x in reply.embeddings[-1]) - 1) < 1e-6  # normalized, as Ollama's
    assert grown_mb < 48, f"the gateway grew by {grown_mb:.0f} MB"
    assert _usage_once(gateway) == {MODEL: (1, 3000, 0)}


@pytest.mark.parametrize(
    ("count", "bad", "status", "message"),
    [
        (100, 5, 500, "no such luck"),
        (100, 0, 502, "returned 63 embeddings for 64 inputs"),
        (10, 3, 502, "returned 9 embeddings for 10 inputs"),
    ],
)
def test_a_first_window_that_fails_is_an_error_reply(
    big: tuple[GatewayProcess, str], count: int, bad: int, status: int, message: str
) -> None:
    gateway, key = big
    inputs = [f"i{n}" for n in range(count)]
    inputs[bad] = "fail" if status == 500 else "short"
    with pytest.raises(ollama.ResponseError) as caught:
        _native(gateway, key).embed(model=MODEL, input=inputs)
    assert caught.value.status_code == status and message in caught.value.error


def test_a_later_window_that_fails_cuts_the_reply(big: tuple[GatewayProcess, str]) -> None:
    gateway, key = big
    inputs = [f"i{n}" for n in range(200)]
    inputs[150] = "fail"
    body = {"model": MODEL, "input": inputs}
    with gateway.client(key) as http:
        expect_cut(http, "/api/embed", body)
        assert "failed at input 128: no such luck" in gateway.log.read_text()
        assert http.post("/api/embed", json={"model": MODEL, "input": ["a"]}).status_code == 200
