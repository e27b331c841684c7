"""Requests an attacker (or a careless client) sends must not take the server down.

Each test is one way of trying, against a real server with the default model: many embedding
inputs, stalled uploads and headers, huge and deeply nested bodies, load options past what the
machine or the model allows, clients leaving early, and leftovers of a killed server.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    DEFAULT_MODEL,
    ServerProcess,
    address,
    answers,
    metric_total,
    open_connections,
    stalled_embed,
    start_server,
    wait_reset,
)

pytestmark = pytest.mark.integration

M = DEFAULT_MODEL
READ_TIMEOUT_S = 3.0
WRITE_TIMEOUT_S = 2.0
MAX_BODY = 1 << 20
MAX_CLIENT_CONNECTIONS = 100


@pytest.fixture(scope="module")
def guarded(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with short read and write timeouts, a 1 MiB body limit and at most 100
    connections from one address."""
    log = tmp_path_factory.mktemp("hardening") / "server.log"
    srv = start_server(
        models_dir,
        log,
        OLLAMA_CONTEXT_LENGTH="1024",
        OLLAMA_NUM_PARALLEL="2",
        NEXUS_READ_TIMEOUT=f"{READ_TIMEOUT_S:g}s",
        NEXUS_WRITE_TIMEOUT=f"{WRITE_TIMEOUT_S:g}s",
        NEXUS_MAX_BODY_SIZE=str(MAX_BODY),
        NEXUS_MAX_CLIENT_CONNECTIONS=str(MAX_CLIENT_CONNECTIONS),
    )
    yield srv
    srv.stop()


@pytest.fixture
def client(guarded: ServerProcess) -> Iterator[httpx.Client]:
    with guarded.client() as c:
        yield c


def busy_slots(client: httpx.Client) -> float:
    return metric_total(client.get("/metrics").text, "nexus_slots_busy")


def wait_slots_free(client: httpx.Client, deadline_s: float = 120.0) -> None:
    """Until no slot is held (a failure, not a hang, if one stays held)."""
    end = time.monotonic() + deadline_s
    while busy_slots(client) > 0:
        assert time.monotonic() < end, "a slot is still held"
        time.sleep(0.1)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def error_of(resp: httpx.Response) -> str:
    body = resp.json()
    message = body["error"] if isinstance(body["error"], str) else body["error"]["message"]
    assert isinstance(message, str) and message, body
    return message


def raw_socket(url: str) -> socket.socket:
    return socket.create_connection(address(url), timeout=30)


def wait_closed(sock: socket.socket, deadline_s: float) -> bytes:
    """Read until the server closes the connection; what it sent before closing."""
    sock.settimeout(deadline_s)
    received = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return received
        received += data


# ---- 1: one request must not exhaust the runner's connections --------------------------------


def test_embed_with_many_inputs_keeps_descriptors_bounded(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    """Far more inputs than the runner link's connection bound: descriptors stay flat."""
    before = open_fds(guarded.proc.pid)
    inputs = [f"w{i}" for i in range(300)]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            client.post, "/api/embed", json={"model": M, "input": inputs}, timeout=600
        )
        peak = before
        while not concurrent.futures.wait([pending], timeout=0.05).done:
            with contextlib.suppress(FileNotFoundError):
                peak = max(peak, open_fds(guarded.proc.pid))
        resp = pending.result()
    assert resp.status_code == 200, resp.text[:500]
    assert len(resp.json()["embeddings"]) == len(inputs)
    after = open_fds(guarded.proc.pid)
    assert peak - before < 64, (before, peak)
    assert after - before < 16, (before, after)
    assert client.get("/api/tags").status_code == 200


def test_an_embed_of_many_inputs_streams_in_bounded_memory(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    """100,000 short inputs (a 0.9 MB body): the reply starts after its first windows, and the
    server holds a window, not every input's task, tokens and vector (1,000,000 inputs took it
    to 1.6 GB within seconds). The client leaving frees the slot."""
    inputs = [f"w{i}" for i in range(100_000)]
    before = guarded.resident_mb()
    body = {"model": M, "input": inputs}
    with client.stream("POST", "/api/embed", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        first = next(resp.iter_raw())
        grown = guarded.resident_mb() - before
    assert first.startswith(b'{"model":"%s","embeddings":[[' % M.encode())
    assert grown < 150, grown
    wait_slots_free(client)


def test_a_client_reading_none_of_a_long_reply_is_dropped(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    """After NEXUS_WRITE_TIMEOUT the slot the reply held is freed, and the connection is reset
    when the client takes none of the rest for as long again (a plain close would wait for it
    for ever, keeping the socket and its buffers)."""
    sock = stalled_embed(guarded.url, 20_000)
    try:
        end = time.monotonic() + 60
        while busy_slots(client) == 0:  # until the embedding is under way
            assert time.monotonic() < end
            time.sleep(0.05)
        wait_slots_free(client)  # 20,000 inputs would hold it for minutes
        wait_reset(sock)
    finally:
        sock.close()
    assert "read none of the reply" in guarded.log.read_text()
    assert client.post("/api/embed", json={"model": M, "input": "x"}).status_code == 200


def test_one_client_cannot_take_every_connection(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    """Another address opening connections as fast as it can gets NEXUS_MAX_CLIENT_CONNECTIONS
    of them; the rest are closed at once, and this address is served meanwhile."""
    flood = open_connections(guarded.url, MAX_CLIENT_CONNECTIONS + 30, source="127.0.0.2")
    try:
        served = [answers(sock) for sock in flood]
        assert served == [True] * MAX_CLIENT_CONNECTIONS + [False] * 30
        assert client.get("/api/tags").status_code == 200
        with guarded.client() as fresh:  # a new connection from this address
            assert fresh.get("/api/version").status_code == 200
    finally:
        for sock in flood:
            sock.close()
    assert "127.0.0.2 has 100 open, its most" in guarded.log.read_text()


# ---- 2: stalled bodies and headers ------------------------------------------------------------


def requests_with_status(client: httpx.Client, route: str, status: str) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        if family.name == "nexus_requests"
        for sample in family.samples
        if sample.name == "nexus_requests_total"
        and sample.labels.get("route") == route
        and sample.labels.get("status") == status
    )


def test_clients_leaving_mid_body_are_not_errors(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    """Each is counted as 499 and nothing is logged: before, each left two tracebacks."""
    before = requests_with_status(client, "/api/generate", "499")
    for _ in range(5):
        sock = raw_socket(guarded.url)
        sock.sendall(
            b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            b'{"model": "' + M.encode() + b'", "prompt": "cut her'
        )
        sock.close()
    end = time.monotonic() + 60
    while requests_with_status(client, "/api/generate", "499") < before + 5:
        assert time.monotonic() < end, "the server never noticed the clients leave"
        time.sleep(0.05)
    log = guarded.log.read_text()
    assert "unhandled error" not in log and "ClientDisconnect" not in log
    assert client.get("/api/tags").status_code == 200


def test_stalled_uploads_do_not_block_other_routes(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    digest = "sha256:" + "ab" * 32
    stalled = []
    for _ in range(8):
        sock = raw_socket(guarded.url)
        sock.sendall(
            f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 100000000\r\n\r\nab".encode()
        )
        stalled.append(sock)
    try:
        started = time.monotonic()
        assert client.get("/api/tags", timeout=2).status_code == 200
        assert client.post("/api/show", json={"model": M}, timeout=2).status_code == 200
        assert client.get("/v2/", timeout=2).status_code == 200
        assert time.monotonic() - started < 4
        # the stalled uploads are answered (408) and closed once the read timeout passes
        for sock in stalled:
            answer = wait_closed(sock, READ_TIMEOUT_S + 10)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        for sock in stalled:
            sock.close()
    leftovers = list((guarded.models / "blobs").glob("sha256-*.tmp"))
    assert leftovers == []


def test_slow_headers_are_closed_after_the_read_timeout(guarded: ServerProcess) -> None:
    sock = raw_socket(guarded.url)
    try:
        sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        wait_closed(sock, READ_TIMEOUT_S + 10)
        assert time.monotonic() - started < READ_TIMEOUT_S + 5
    finally:
        sock.close()


def test_silent_connection_is_closed_after_the_read_timeout(guarded: ServerProcess) -> None:
    sock = raw_socket(guarded.url)
    try:
        assert wait_closed(sock, READ_TIMEOUT_S + 10) == b""
    finally:
        sock.close()


# ---- 3 and 12: load options bounded by the machine and the model ------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("num_thread", 10000),
        ("num_thread", -1),
        ("num_ctx", 10_000_000),
        ("num_ctx", -5),
        ("num_batch", 10_000_000),
        ("num_batch", -1),
        ("num_gpu", -7),
        ("main_gpu", -1),
    ],
)
def test_load_option_past_its_bounds_is_400_naming_it(
    guarded: ServerProcess, client: httpx.Client, option: str, value: int
) -> None:
    runners = set(guarded.runner_pids())
    body = {"model": M, "prompt": "hi", "stream": False, "options": {option: value}}
    resp = client.post("/api/generate", json=body)
    assert resp.status_code == 400, resp.text
    assert option in error_of(resp)
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": M,
            "messages": [{"role": "user", "content": "hi"}],
            "options": {option: value},
        },
    )
    assert resp.status_code == 400, resp.text
    assert option in error_of(resp)
    assert set(guarded.runner_pids()) <= runners  # nothing was started for it


# ---- 4: a client leaving before the first chunk -----------------------------------------------


def test_client_leaving_before_first_chunk_logs_no_aclose_error(
    guarded: ServerProcess, client: httpx.Client
) -> None:
    # unload, so the next request waits for a load before its first chunk
    client.post("/api/generate", json={"model": M, "keep_alive": 0})
    body = b'{"model": "%s", "prompt": "Count to ten.", "options": {"num_predict": 4}}' % M.encode()
    sock = raw_socket(guarded.url)
    sock.sendall(
        b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    sock.close()
    gen = {"model": M, "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    assert client.post("/api/generate", json=gen).status_code == 200
    log = guarded.log.read_text()
    assert "already running" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


# ---- 6: deeply nested JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/chat",
        "/api/generate",
        "/api/show",
        "/api/pull",
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
    ],
)
def test_deeply_nested_json_is_400_and_the_connection_survives(
    client: httpx.Client, path: str
) -> None:
    depth = 100_000
    body = b'{"model": "x", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text[:300]
    assert "nest" in error_of(resp)
    assert client.get("/api/version").status_code == 200


@pytest.mark.parametrize(
    ("path", "field", "item"),
    [
        ("/api/chat", "messages", b"{}"),
        ("/v1/chat/completions", "messages", b"{}"),
        ("/api/embed", "input", b"[1]"),
        ("/api/generate", "context", b"[]"),
    ],
)
def test_a_body_of_too_many_small_values_is_400_before_parsing(
    guarded: ServerProcess, client: httpx.Client, path: str, field: str, item: bytes
) -> None:
    """150,001 empty objects or arrays in 0.6 MB: parsed and validated, 200,000 tiny messages
    held the event loop for a second (a 64 MB body would hold it for ten)."""
    items = b",".join([item] * 150_001)
    body = b'{"model": "%s", "%s": [%s]}' % (M.encode(), field.encode(), items)
    before = guarded.resident_mb()
    resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text[:300]
    assert "100,000 JSON arrays and objects" in error_of(resp)
    assert guarded.resident_mb() - before < 50
    assert client.get("/api/version").status_code == 200


# ---- 6b: lone UTF-16 surrogates ---------------------------------------------------------------

LONE = "\\ud800"  # as a client writes it in JSON: half of a pair, never valid text
SURROGATE_BODIES = {
    "/api/chat": '{"model": "%s", "messages": [{"role": "user", "content": "hi%s"}], '
    '"stream": false, "options": {"num_predict": 2}}',
    "/api/generate": '{"model": "%s", "prompt": "hi%s", "stream": false, '
    '"options": {"num_predict": 2}}',
    "/v1/chat/completions": '{"model": "%s", "messages": [{"role": "user", "content": "hi%s"}], '
    '"max_tokens": 2}',
    "/v1/responses": '{"model": "%s", "input": "hi", "instructions": "be%s", '
    '"max_output_tokens": 2}',
    "/v1/messages": '{"model": "%s", "max_tokens": 2, '
    '"messages": [{"role": "user", "content": "hi%s"}]}',
    "/api/embed": '{"model": "%s", "input": "hi%s"}',
}


@pytest.mark.parametrize("path", SURROGATE_BODIES, ids=SURROGATE_BODIES.keys())
def test_a_lone_surrogate_reads_as_a_replacement_character(client: httpx.Client, path: str) -> None:
    """As Go's decoder reads it (U+FFFD): the request is served, and what is echoed back (a
    Responses object's instructions) is valid UTF-8."""
    body = SURROGATE_BODIES[path] % (M, LONE)
    resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    resp.content.decode("utf-8")
    if path == "/v1/responses":
        assert resp.json()["instructions"] == "be\ufffd"


def test_a_lone_surrogate_in_a_name_is_an_invalid_name(client: httpx.Client) -> None:
    body = '{"source": "' + M + '", "destination": "copy' + LONE + '"}'
    resp = client.post("/api/copy", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text[:300]
    assert "invalid" in error_of(resp)


# ---- 7: body size -----------------------------------------------------------------------------


def test_body_over_the_limit_is_413_with_a_message(client: httpx.Client) -> None:
    prompt = "a" * (MAX_BODY + 10)
    resp = client.post("/api/generate", json={"model": M, "prompt": prompt})
    assert resp.status_code == 413, resp.text[:300]
    assert "NEXUS_MAX_BODY_SIZE" in error_of(resp)
    resp = client.post(
        "/v1/chat/completions",
        json={"model": M, "messages": [{"role": "user", "content": prompt}]},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "%s", "prompt": "' % M.encode()
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    resp = client.post("/api/generate", content=chunks())
    assert resp.status_code == 413, resp.text[:300]
    assert "bytes" in error_of(resp)


def test_blob_uploads_are_not_limited_by_the_body_size(client: httpx.Client) -> None:
    import hashlib

    data = os.urandom(MAX_BODY * 2)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = client.post(f"/api/blobs/{digest}", content=data)
    assert resp.status_code in (200, 201), resp.text


# ---- 9: small ones ----------------------------------------------------------------------------


def test_num_predict_out_of_range_is_400_at_once(client: httpx.Client) -> None:
    started = time.monotonic()
    resp = client.post(
        "/api/generate",
        json={"model": M, "prompt": "hi", "stream": False, "options": {"num_predict": 1e30}},
    )
    assert resp.status_code == 400, resp.text
    assert "num_predict" in error_of(resp)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_stream_must_be_a_boolean(client: httpx.Client, value: Any) -> None:
    resp = client.post("/api/generate", json={"model": M, "prompt": "hi", "stream": value})
    assert resp.status_code == 400, resp.text
    assert "stream" in error_of(resp)


def test_create_with_an_unknown_message_role_is_400(client: httpx.Client) -> None:
    resp = client.post(
        "/api/create",
        json={
            "model": "nexus-test-role:latest",
            "from": M,
            "messages": [{"role": "x", "content": "hi"}],
            "stream": False,
        },
    )
    assert resp.status_code == 400, resp.text
    assert "role" in error_of(resp)
    assert client.post("/api/show", json={"model": "nexus-test-role"}).status_code == 404


def test_copy_to_a_name_differing_only_in_case_keeps_one_model(client: httpx.Client) -> None:
    try:
        assert client.post(
            "/api/copy", json={"source": M, "destination": "nexus-case:1"}
        ).is_success
        assert client.post(
            "/api/copy", json={"source": M, "destination": "NEXUS-CASE:1"}
        ).is_success
        names = [m["name"] for m in client.get("/api/tags").json()["models"]]
        assert [n for n in names if n.lower() == "nexus-case:1"] == ["NEXUS-CASE:1"], names
    finally:
        client.request("DELETE", "/api/delete", json={"model": "nexus-case:1"})


# ---- 5: leftovers of a killed server ----------------------------------------------------------


@pytest.mark.parametrize("noprune", ["0", "1"])
def test_leftover_temporary_files_are_removed_at_start(tmp_path: Path, noprune: str) -> None:
    blobs = tmp_path / "models" / "blobs"
    blobs.mkdir(parents=True)
    old = time.time() - 2 * 86400
    tmp_blob = blobs / "sha256-k3j4h5.tmp"
    upload = blobs / ("upload-" + "0" * 32)
    fresh_upload = blobs / ("upload-" + "1" * 32)
    partial = blobs / ("sha256-" + "c" * 64 + "-partial")
    for path in (tmp_blob, upload, fresh_upload, partial):
        path.write_bytes(b"x" * 1000)
    for path in (tmp_blob, upload, partial):
        os.utime(path, (old, old))
    srv = start_server(tmp_path / "models", tmp_path / "server.log", OLLAMA_NOPRUNE=noprune)
    try:
        assert not tmp_blob.exists()
        assert not upload.exists()
        assert fresh_upload.exists()  # a push in progress elsewhere may still finish it
        assert partial.exists()  # a pull resumes from it
    finally:
        srv.stop()


def test_runner_files_of_a_killed_server_are_removed_at_start(
    models_dir: Path, tmp_path: Path
) -> None:
    """A server killed with its model loaded leaves its runner's log and socket directory in
    the temporary directory; the next server removes them, and nothing of a running one."""
    tmpdir = tmp_path / "t"
    tmpdir.mkdir()
    live = tmpdir / f"nexus-runner-{os.getpid()}-kept"  # named for a process still running
    live.mkdir()
    srv = start_server(models_dir, tmp_path / "killed.log", TMPDIR=str(tmpdir))
    try:
        with srv.client() as http:
            body = {"model": M, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
            assert http.post("/api/generate", json=body).status_code == 200
        runners = srv.runner_pids()
        left = sorted(p.name for p in tmpdir.glob(f"nexus-runner-{srv.proc.pid}-*"))
        assert len(left) == 2 and any(name.endswith(".log") for name in left), left
        srv.proc.kill()
        srv.proc.wait()
        for pid in runners:  # a runner ends when its server's pipe closes
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.1)
        assert sorted(p.name for p in tmpdir.glob(f"nexus-runner-{srv.proc.pid}-*")) == left
    finally:
        srv.stop()
    again = start_server(models_dir, tmp_path / "again.log", TMPDIR=str(tmpdir))
    try:
        assert not list(tmpdir.glob(f"nexus-runner-{srv.proc.pid}-*"))
        assert live.is_dir()
    finally:
        again.stop()


# ---- 8: invalid JSON schemas ------------------------------------------------------------------

BAD_SCHEMA = {"type": "objekt", "properties": {"a": {"type": 5}}}


def test_invalid_format_schema_is_400_naming_format(client: httpx.Client) -> None:
    for path, body in (
        ("/api/generate", {"model": M, "prompt": "hi", "format": BAD_SCHEMA, "stream": False}),
        (
            "/api/chat",
            {"model": M, "messages": [{"role": "user", "content": "hi"}], "format": BAD_SCHEMA},
        ),
    ):
        resp = client.post(path, json=body)
        assert resp.status_code == 400, resp.text
        assert error_of(resp).startswith("format"), error_of(resp)


def test_invalid_response_format_schema_is_400_naming_it(client: httpx.Client) -> None:
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": M,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": BAD_SCHEMA},
            },
        },
    )
    assert resp.status_code == 400, resp.text
    assert "response_format" in error_of(resp)


def test_invalid_tool_parameters_are_400_with_tool_choice_required(client: httpx.Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": BAD_SCHEMA}}
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": M,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [tool],
            "tool_choice": "required",
        },
    )
    assert resp.status_code == 400, resp.text
    assert "tools[0].function.parameters" in error_of(resp)


def _enum(n: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": {"enum": list(range(n))}}}


def test_a_schema_the_sampler_would_crawl_through_is_400_at_once(client: httpx.Client) -> None:
    """A 200,000-value enum took the engine 14 s per token (for every request on the runner);
    20,000 optional properties made the converter recurse past Python's limit (a 500). (The
    body limit here is 1 MiB.)"""
    messages = [{"role": "user", "content": "hi"}]
    optional = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20000)}}
    for schema, what in ((_enum(100_000), "alternatives"), (optional, "properties")):
        resp = client.post("/api/chat", json={"model": M, "messages": messages, "format": schema})
        assert resp.status_code == 400, resp.text[:300]
        assert error_of(resp).startswith("format is too large") and what in error_of(resp)
    wanted = {"type": "json_schema", "json_schema": {"name": "x", "schema": _enum(5000)}}
    resp = client.post(
        "/v1/chat/completions", json={"model": M, "messages": messages, "response_format": wanted}
    )
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["error"]["param"] == "response_format.json_schema.schema"
    # each tool within the bounds, all of them together (a forced call of any) past them
    tools = [
        {"type": "function", "function": {"name": f"f{i}", "parameters": _enum(600)}}
        for i in range(2)
    ]
    resp = client.post(
        "/v1/chat/completions",
        json={"model": M, "messages": messages, "tools": tools, "tool_choice": "required"},
    )
    assert resp.status_code == 400, resp.text[:300]
    assert error_of(resp).startswith("tools is too large")
    assert client.get("/api/version").status_code == 200
