"""A tiny registry on loopback, in the test process: serves manifests and blobs, counts the
bytes it sends, can stall mid-blob, serve wrong bytes, and demand a bearer token."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_CHUNK = 16 * 1024


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def make_manifest(config: bytes, layers: list[tuple[str, bytes]]) -> bytes:
    """Compact manifest JSON for a config blob and ``(media type, data)`` layers."""
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": media, "digest": digest_of(data), "size": len(data)}
            for media, data in layers
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class FakeRegistry:
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: Bytes at or past this blob offset are only sent once ``release`` is set.
    stall_at: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    #: When set, every request except ``/token`` needs ``Authorization: Bearer <token>``.
    token: str | None = None
    blob_bytes_sent: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_model(
        self, repo: str, tag: str, config: bytes, layers: list[tuple[str, bytes]]
    ) -> bytes:
        manifest = make_manifest(config, layers)
        self.manifests[(repo, tag)] = manifest
        self.blobs[digest_of(config)] = config
        for _, data in layers:
            self.blobs[digest_of(data)] = data
        return manifest

    def count(self, n: int) -> None:
        with self.lock:
            self.blob_bytes_sent += n

    def reset_counts(self) -> None:
        with self.lock:
            self.blob_bytes_sent = 0
            self.requests.clear()


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
            body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
            self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

        def _authorized(self) -> bool:
            if registry.token is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {registry.token}":
                return True
            host = self.headers.get("Host", "")
            challenge = (
                f'Bearer realm="http://{host}/token",service="fake",'
                f'scope="repository:library/tiny:pull"'
            )
            self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
            return False

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            with registry.lock:
                registry.requests.append((self.command, url.path))
            if url.path == "/token":
                registry.token_requests.append(parse_qs(url.query))
                self._send(200, json.dumps({"token": registry.token}).encode())
                return
            if not self._authorized():
                return
            parts = url.path.split("/")
            # /v2/<ns>/<model>/<kind>/<ref>
            if len(parts) != 6 or parts[1] != "v2":
                self._error(404, "NOT_FOUND")
                return
            repo, kind, ref = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
            if kind == "manifests":
                manifest = registry.manifests.get((repo, ref))
                if manifest is None:
                    self._error(404, "MANIFEST_UNKNOWN")
                    return
                self._send(200, manifest, {"Content-Type": MANIFEST_TYPE})
                return
            blob = registry.blobs.get(ref) if kind == "blobs" else None
            if blob is None:
                self._error(404, "BLOB_UNKNOWN")
                return
            self._blob(blob)

        def _blob(self, blob: bytes) -> None:
            start, end = 0, len(blob) - 1
            status = 200
            header = self.headers.get("Range")
            if header and header.startswith("bytes="):
                first, _, last = header[6:].partition("-")
                start, end = int(first), min(int(last or len(blob) - 1), len(blob) - 1)
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(blob)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            pos = start
            try:
                while pos <= end:
                    stall = registry.stall_at
                    if stall is not None and pos >= stall and not registry.release.is_set():
                        registry.release.wait(60)
                        self.close_connection = True  # dropped once released
                        return
                    stop = min(end + 1, pos + _CHUNK)
                    if stall is not None and pos < stall and not registry.release.is_set():
                        stop = min(stop, stall)
                    self.wfile.write(blob[pos:stop])
                    self.wfile.flush()
                    registry.count(stop - pos)
                    pos = stop
            except OSError:
                pass

    return Handler


@contextmanager
def serve(registry: FakeRegistry) -> Iterator[FakeRegistry]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    server.daemon_threads = True
    registry.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        registry.release.set()
        server.shutdown()
        server.server_close()
