"""RunnerProcess with the real default model: start, use, stop, fail, die."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import tempfile
from pathlib import Path

import pytest

from nexus.errors import RunnerFailed
from nexus.runner.process import MAX_SOCKET_PATH, RunnerProcess, engine_socket_path
from nexus.runner.spec import RunnerSpec

pytestmark = pytest.mark.integration

LOAD_TIMEOUT = 120.0


def small_spec(model_path: Path | str) -> RunnerSpec:
    return RunnerSpec(model_path=str(model_path), num_ctx=512, num_parallel=1, num_thread=2)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_tokenize_complete_stop(default_gguf: Path) -> None:
    runner = RunnerProcess(small_spec(default_gguf), load_timeout=LOAD_TIMEOUT)
    assert not runner.alive
    await runner.start()
    try:
        assert runner.alive
        assert isinstance(runner.pid, int) and process_exists(runner.pid)
        assert runner.client is not None
        assert await runner.client.health()
        # the engine listens on a Unix socket in a directory only this user may enter
        assert runner.client.address.startswith("unix://")
        socket_dir = Path(runner.client.address.removeprefix("unix://")).parent
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        # when memory runs out, the kernel ends a runner before the server
        adj = Path(f"/proc/{runner.pid}/oom_score_adj").read_text().strip()
        assert int(adj) >= 500

        tokens = await runner.client.tokenize("Hello world, hello world")
        assert tokens and all(isinstance(t, int) for t in tokens)
        assert await runner.client.detokenize(tokens) == "Hello world, hello world"

        body = {
            "prompt": "The capital of France is",
            "n_predict": 8,
            "temperature": 0.0,
            "top_k": 1,
            "seed": 42,
            "cache_prompt": False,
        }
        first = await runner.client.completion(body)
        second = await runner.client.completion(body)
        assert isinstance(first["content"], str) and first["content"].strip()
        assert 0 < int(first["tokens_predicted"]) <= 8
        assert first["content"] == second["content"], "greedy decoding must be deterministic"

        events = [e async for e in runner.client.completion_stream(body)]
        assert events[-1]["stop"] is True
        streamed = "".join(e.get("content", "") for e in events)
        assert streamed == first["content"]
    finally:
        pid = runner.pid
        await runner.stop()
    assert not runner.alive
    assert pid is not None and not process_exists(pid)
    assert not socket_dir.exists()
    # Stopping again is harmless.
    await runner.stop()


async def test_missing_model_file_fails_with_message(tmp_path: Path) -> None:
    runner = RunnerProcess(small_spec(tmp_path / "missing.gguf"), load_timeout=LOAD_TIMEOUT)
    with pytest.raises(RunnerFailed) as info:
        await runner.start()
    assert "terminated" in info.value.message
    assert info.value.status == 500
    assert not runner.alive
    if runner.pid is not None:
        assert not process_exists(runner.pid)


async def test_not_a_gguf_file_fails_with_message(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file at all" * 100)
    runner = RunnerProcess(small_spec(bogus), load_timeout=LOAD_TIMEOUT)
    with pytest.raises(RunnerFailed) as info:
        await runner.start()
    assert info.value.message.strip()
    assert not runner.alive


async def test_killed_process_is_noticed(default_gguf: Path) -> None:
    runner = RunnerProcess(small_spec(default_gguf), load_timeout=LOAD_TIMEOUT)
    await runner.start()
    try:
        assert runner.pid is not None
        os.kill(runner.pid, signal.SIGKILL)
        assert await runner.wait_exit(60), "the killed runner must be reaped"
        assert not runner.alive
        failure = runner.failure()
        assert isinstance(failure, RunnerFailed)
        assert "terminated" in failure.message
        assert str(-signal.SIGKILL) in failure.message or "signal" in failure.message
    finally:
        await runner.stop()
    assert not runner.alive


def test_engine_socket_path_falls_back_to_tcp_when_too_long(tmp_path: Path) -> None:
    assert engine_socket_path(Path("/tmp/nexus-runner-x")) == "/tmp/nexus-runner-x/engine.sock"
    long_dir = tmp_path / ("d" * MAX_SOCKET_PATH)
    assert engine_socket_path(long_dir) is None


async def test_runner_on_loopback_tcp_when_tmpdir_is_long(
    default_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_tmp = tmp_path / ("t" * MAX_SOCKET_PATH)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    runner = RunnerProcess(small_spec(default_gguf), load_timeout=LOAD_TIMEOUT)
    await runner.start()
    try:
        assert runner.client is not None
        assert runner.client.address.startswith("http://127.0.0.1:")
        assert await runner.client.tokenize("Hello")
    finally:
        await runner.stop()
    assert list(long_tmp.iterdir()) == []


async def test_prompts_reach_their_first_token_in_turn(default_gguf: Path) -> None:
    """The engine fills each batch with its slots' prompts lowest slot first, so under load a
    prompt on a high slot waited while later ones kept arriving on lower ones. Through the
    runner's prompt gate, long prompts (over half a batch) go one at a time, in turn."""
    spec = RunnerSpec(
        model_path=str(default_gguf), num_ctx=512, num_parallel=4, num_batch=64, num_thread=2
    )
    runner = RunnerProcess(spec, load_timeout=LOAD_TIMEOUT)
    await runner.start()
    try:
        client = runner.client
        assert client is not None and client.gate is not None
        firsts: list[int] = []

        async def one(i: int) -> None:
            # 100 tokens: more than half of a 64-token batch
            tokens = [1000 + 97 * i + k for k in range(100)]
            body = {"prompt": tokens, "n_predict": 8, "temperature": 0.0, "cache_prompt": False}
            stream = client.completion_stream(body)
            await anext(stream)
            firsts.append(i)
            await stream.aclose()  # the client leaves after its first token

        # each started (and queued for its turn) before the next
        await asyncio.gather(*(one(i) for i in range(10)))
        assert firsts == list(range(10))
        assert client.gate.entered == 0
    finally:
        await runner.stop()
