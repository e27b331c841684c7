"""A throwaway PostgreSQL cluster for the key store's tests.

``initdb`` and ``pg_ctl`` come from ``PATH`` or Debian's ``/usr/lib/postgresql/<version>/bin``.
PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user (which
Debian's package creates). The cluster lives in a temporary folder, listens on a free port of
127.0.0.1 with its socket in that folder, trusts local connections and is removed on stop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port

USER = "nexus"


class Unavailable(Exception):
    """No PostgreSQL here; the message says why (a test skip reason)."""


def find_binaries() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    raise Unavailable("PostgreSQL not installed (no initdb on PATH or in /usr/lib/postgresql)")


def _run_as() -> dict[str, Any]:
    """``subprocess`` arguments that drop root to the ``postgres`` user; none otherwise."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable(
            "running as root and there is no postgres user to run PostgreSQL as"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class Cluster:
    folder: Path
    bin: Path
    port: int
    run_as: dict[str, Any]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self.run_as,
        )

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Cluster:
    """Create and start a cluster; raises :class:`Unavailable` when that cannot be done here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed") from None
    binaries = find_binaries()
    run_as = _run_as()
    # /tmp, not TMPDIR, when root: the postgres user must reach the folder, and the socket's
    # path must stay short.
    folder = Path(tempfile.mkdtemp(prefix="nexus-pg-", dir="/tmp" if run_as else None))
    if run_as:
        os.chown(folder, run_as["user"], run_as["group"])
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    init = subprocess.run(
        [
            str(binaries / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **run_as,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-500:]}")
    port = free_port()
    cluster = Cluster(folder, binaries, port, run_as)
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    started = cluster._pg_ctl("start", "-w", "-t", "60", "-l", str(folder / "log"), "-o", options)
    if started.returncode != 0:
        log = ""
        with contextlib.suppress(OSError):
            log = (folder / "log").read_text()[-500:]
        cluster.stop()
        raise Unavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}".strip())
    return cluster
