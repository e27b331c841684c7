"""Running the CLI as a subprocess against a test server, with or without a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLI = (sys.executable, "-m", "nexus.cli.main")
TIMEOUT = 180.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")


def cli_env(host: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: OLLAMA_HOST only, a private HOME, no proxies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(key, None)
    env.update({"OLLAMA_HOST": host, "HOME": str(home), "NO_PROXY": "*", **extra})
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(
    args: list[str], env: Mapping[str, str], *, stdin: str | None = None, cwd: Path | None = None
) -> Result:
    proc = subprocess.run(
        [*CLI, *args],
        env=dict(env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def plain(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


@dataclass
class Terminal:
    """The CLI on a pseudo-terminal: write keystrokes, read until some text shows."""

    proc: subprocess.Popen[bytes]
    fd: int
    seen: str = ""
    _read_to: int = field(default=0)

    @classmethod
    def start(cls, args: list[str], env: Mapping[str, str], columns: int = 200) -> Terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        proc = subprocess.Popen(
            [*CLI, *args],
            env=dict(env),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            # Make the terminal the child's controlling terminal, so that Ctrl-C signals it.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        return cls(proc, master)

    def _pump(self, wait: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            return False
        if not data:
            return False
        self.seen += data.decode("utf-8", errors="replace")
        return True

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        """Read until ``text`` shows after the last match; what came before it (plain)."""
        deadline = time.monotonic() + timeout
        while True:
            clean = plain(self.seen)
            at = clean.find(text, self._read_to)
            if at >= 0:
                before = clean[self._read_to : at]
                self._read_to = at + len(text)
                return before
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen; output so far:\n{clean[-3000:]}")
            if not self._pump(0.2) and self.proc.poll() is not None:
                raise AssertionError(f"{text!r} not seen before exit; output:\n{clean[-3000:]}")

    def wait_for_output(self, timeout: float = TIMEOUT) -> None:
        """Block until anything more arrives (a spinner frame or a token)."""
        size = len(self.seen)
        deadline = time.monotonic() + timeout
        while len(self.seen) == size:
            if time.monotonic() > deadline:
                raise AssertionError("no output")
            if not self._pump(0.2) and self.proc.poll() is not None:
                raise AssertionError("exited")

    def end_of_input(self) -> None:
        os.write(self.fd, b"\x04")

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def interrupt(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.1)
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)
