"""Parent side of a runner: spawn the engine process, wait for it, stop it, notice its death."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from nexus.errors import RunnerFailed
from nexus.runner.client import EngineClient
from nexus.runner.prompt_gate import PromptGate
from nexus.runner.spec import RunnerSpec

log = logging.getLogger(__name__)

_STDERR_TAIL = 2000


#: A Unix socket's path must fit sockaddr_un (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100


def engine_socket_path(directory: Path) -> str | None:
    """Where the engine listens; ``None`` (loopback TCP then) where a long TMPDIR makes the path
    too long for a Unix socket."""
    path = str(directory / "engine.sock")
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


_PREFIX = "nexus-runner-"


def _owned_prefix(server_pid: int) -> str:
    """Runner files (its log, its socket's directory) are named for the server that owns them,
    so a server killed before it could remove them can be told from one still running."""
    return f"{_PREFIX}{server_pid}-"


def remove_leftovers(directory: Path | None = None) -> int:
    """Remove the runner files this user's servers left in ``directory`` (the temporary
    directory) when they were killed: those named for a process that no longer runs. How many
    were removed."""
    root = Path(directory or tempfile.gettempdir())
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(_PREFIX):
            continue
        pid_text = entry.name[len(_PREFIX) :].partition("-")[0]
        if not pid_text.isdigit() or _running(int(pid_text)):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            if entry.is_dir(follow_symlinks=False):
                if _listening(Path(entry.path) / "engine.sock"):
                    continue  # a server in another PID namespace sharing this directory
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed += 1
    return removed


def _listening(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class RunnerProcess:
    """One engine process serving one model; ``client`` talks llama.cpp's server API to it."""

    def __init__(self, spec: RunnerSpec, *, load_timeout: float, debug: bool = False) -> None:
        self.spec = spec
        self.load_timeout = load_timeout
        self.debug = debug
        self.pid: int | None = None
        self.client: EngineClient | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log_path: Path | None = None
        self._socket_dir: Path | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        #: Accelerators the engine saw at load (name, memory_total, memory_free in bytes).
        self.gpus: list[dict[str, Any]] = []

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def failure(self) -> RunnerFailed:
        """The error to report for requests that the death of this process broke."""
        code = self._proc.returncode if self._proc else None
        if code is None:
            status = "no exit status"
        elif code < 0:
            status = f"signal: {signal.Signals(-code).name}"
        else:
            status = f"exit status {code}"
        tail = self.stderr_tail()
        return RunnerFailed(
            f"llama runner process has terminated: {status}" + (f": {tail}" if tail else "")
        )

    def vram_bytes(self, size: int, n_layers: int) -> int:
        """GPU memory this runner holds: the offloaded share of ``size`` (0 on CPU builds)."""
        if not self.gpus or self.spec.num_gpu == 0:
            return 0
        if self.spec.num_gpu < 0:
            free = sum(int(g.get("memory_free", 0)) for g in self.gpus)
            return min(size, free) if free else size
        layers = max(1, n_layers + 1)
        return size * min(self.spec.num_gpu, layers) // layers

    async def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; whether it has."""
        if self._proc is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout)
        except TimeoutError:
            return False
        return True

    def stderr_tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            data = self._log_path.read_bytes()[-_STDERR_TAIL:]
        except OSError:
            return ""
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if " E " in ln or "error" in ln.lower()]
        return errors[-1].strip() if errors else ""

    async def start(self) -> None:
        prefix = _owned_prefix(os.getpid())
        fd, log_name = tempfile.mkstemp(prefix=prefix, suffix=".log")
        self._log_path = Path(log_name)
        self._socket_dir = Path(tempfile.mkdtemp(prefix=prefix))  # mode 0700
        socket_path = engine_socket_path(self._socket_dir)
        stderr: int = fd
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nexus.runner",
            json.dumps(self.spec.to_json()),
            *([socket_path] if socket_path else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None if self.debug else stderr,
        )
        os.close(fd)
        self.pid = self._proc.pid
        assert self._proc.stdout is not None
        timeout = None if self.load_timeout == float("inf") else self.load_timeout
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            await self.stop()
            raise RunnerFailed(
                f"timed out waiting for llama runner to start - {self.stderr_tail()}"
            ) from None
        except asyncio.CancelledError:
            await self.stop()
            raise
        if not line:
            await self._proc.wait()
            error = self.failure()
            self._cleanup_files()
            raise error
        hello = json.loads(line)
        self.gpus = list(hello.get("gpus") or [])
        self.client = EngineClient(
            hello["address"], PromptGate(self.spec.num_batch, self.spec.num_parallel)
        )
        self._watch = asyncio.create_task(self._watch_exit())

    async def _watch_exit(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        if not self._stopping:
            log.warning(
                "runner %s (pid %s) exited with status %s", self.spec.model_path, self.pid, code
            )

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self.client is not None:
            await self.client.aclose()
        if self._watch is not None:
            self._watch.cancel()
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
