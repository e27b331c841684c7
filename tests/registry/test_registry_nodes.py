"""Two real nodes on loopback: B pulls from A, pushes to A, and A serves what it was given.

A starts with the default model and a push token; B starts with an empty store and presents
the same token when it pushes. No internet: every name points at 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nexus.store.default_model import ensure_default_model
from tests.registry.conftest import blob_files
from tests.registry.fake_registry import FakeRegistry, digest_of
from tests.server.openapi import validate
from tests.support import DEFAULT_MODEL, ServerProcess, free_port, start_server

pytestmark = pytest.mark.integration

TOKEN = "nexus-test-push-token"
SERVER_ENV = {"OLLAMA_CONTEXT_LENGTH": "2048", "OLLAMA_NUM_PARALLEL": "1"}
PART_SIZE = str(8 << 20)


@pytest.fixture(scope="module")
def node_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    models = tmp_path_factory.mktemp("node-a")
    ensure_default_model(models, DEFAULT_MODEL)
    server = start_server(
        models, models.parent / "node-a.log", NEXUS_PUSH_TOKEN=TOKEN, **SERVER_ENV
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    models = tmp_path_factory.mktemp("node-b")
    server = start_server(
        models,
        models.parent / "node-b.log",
        NEXUS_PUSH_TOKEN=TOKEN,
        NEXUS_PULL_PART_SIZE=PART_SIZE,
        **SERVER_ENV,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node_d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A node with the default model and no push token at all."""
    models = tmp_path_factory.mktemp("node-d")
    ensure_default_model(models, DEFAULT_MODEL)
    server = start_server(models, models.parent / "node-d.log", NEXUS_PUSH_TOKEN="", **SERVER_ENV)
    yield server
    server.stop()


def _port(server: ServerProcess) -> str:
    return server.url.rsplit(":", 1)[1]


def on_a(node_a: ServerProcess, model: str = "smollm2:135m") -> str:
    """The name B uses for ``library/<model>`` on node A."""
    return f"127.0.0.1:{_port(node_a)}/library/{model}"


def ndjson(response: httpx.Response, *, failed: bool = False) -> list[dict[str, Any]]:
    """The lines of a streamed reply; checked against Ollama's schema unless ``failed``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    if not failed:
        validate(response)
    return [json.loads(line) for line in response.text.splitlines() if line]


def collapsed(chunks: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        status = chunk.get("status") or f"error: {chunk.get('error')}"
        if not out or out[-1] != status:
            out.append(status)
    return out


def a_manifest(node_a: ServerProcess, model: str = "smollm2", tag: str = "135m") -> httpx.Response:
    with node_a.client() as http:
        return http.get(f"/v2/library/{model}/manifests/{tag}")


def pull(server: ServerProcess, model: str, **body: Any) -> httpx.Response:
    with server.client() as http:
        return http.post("/api/pull", json={"model": model, **body})


def ensure_pulled(node_a: ServerProcess, node_b: ServerProcess) -> None:
    response = pull(node_b, on_a(node_a), insecure=True, stream=False)
    assert response.json() == {"status": "success"}, response.text


# --- pull ---------------------------------------------------------------------------------


def test_pull_streams_ollama_progress(node_a: ServerProcess, node_b: ServerProcess) -> None:
    manifest = a_manifest(node_a).json()
    layers = [*manifest["layers"], manifest["config"]]
    chunks = ndjson(pull(node_b, on_a(node_a), insecure=True))
    assert collapsed(chunks) == [
        "pulling manifest",
        *(f"pulling {layer['digest'][7:19]}" for layer in layers),
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    for layer in layers:
        progress = [c for c in chunks if c.get("digest") == layer["digest"]]
        assert all(c["total"] == layer["size"] for c in progress)
        completed = [c["completed"] for c in progress]
        assert completed == sorted(completed)
        assert completed[-1] == layer["size"]
    # Stored as A stores it: same manifest bytes (so the same ID), blobs that hash right.
    with node_a.client() as a, node_b.client() as b:
        b_tags = {m["name"]: m for m in b.get("/api/tags").json()["models"]}
        a_tags = {m["name"]: m for m in a.get("/api/tags").json()["models"]}
    assert b_tags[on_a(node_a)]["digest"] == a_tags[DEFAULT_MODEL]["digest"]
    weights = manifest["layers"][0]["digest"]
    data = (node_b.models / "blobs" / weights.replace(":", "-")).read_bytes()
    assert f"sha256:{hashlib.sha256(data).hexdigest()}" == weights
    assert not [n for n in blob_files(node_b.models) if "partial" in n]


def test_pull_not_streamed(node_a: ServerProcess, node_b: ServerProcess) -> None:
    with node_b.client() as b:
        b.request("DELETE", "/api/delete", json={"model": on_a(node_a)})
        assert on_a(node_a) not in [m["name"] for m in b.get("/api/tags").json()["models"]]
    response = pull(node_b, on_a(node_a), insecure=True, stream=False)
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    validate(response)
    with node_b.client() as b:
        assert on_a(node_a) in [m["name"] for m in b.get("/api/tags").json()["models"]]


def test_pulled_model_is_listed_shown_and_generates(
    node_a: ServerProcess, node_b: ServerProcess
) -> None:
    ensure_pulled(node_a, node_b)
    name = on_a(node_a)
    with node_b.client() as b:
        listed = {m["name"]: m for m in b.get("/api/tags").json()["models"]}
        assert listed[name]["details"]["family"] == "llama"
        shown = b.post("/api/show", json={"model": name})
        assert shown.status_code == 200, shown.text
        assert shown.json()["details"]["quantization_level"]
        generated = b.post(
            "/api/generate",
            json={"model": name, "prompt": "Hi", "stream": False, "options": {"num_predict": 4}},
        )
    assert generated.status_code == 200, generated.text
    assert generated.json()["done"] is True
    assert generated.json()["eval_count"] > 0


def test_pulling_again_downloads_nothing(node_a: ServerProcess, node_b: ServerProcess) -> None:
    ensure_pulled(node_a, node_b)
    manifest = a_manifest(node_a).json()
    layers = [*manifest["layers"], manifest["config"]]
    chunks = ndjson(pull(node_b, on_a(node_a), insecure=True))
    progress = [c for c in chunks if "digest" in c]
    # One report per layer, each already complete: nothing was transferred.
    assert [(c["digest"], c["completed"], c["total"]) for c in progress] == [
        (layer["digest"], layer["size"], layer["size"]) for layer in layers
    ]
    assert chunks[-1] == {"status": "success"}
    assert pull(node_b, on_a(node_a), insecure=True, stream=False).json() == {"status": "success"}


def test_legacy_name_field(node_a: ServerProcess, node_b: ServerProcess) -> None:
    with node_b.client() as b:
        response = b.post(
            "/api/pull", json={"name": on_a(node_a), "insecure": True, "stream": False}
        )
    assert response.json() == {"status": "success"}


# --- pull errors --------------------------------------------------------------------------


def test_unknown_model(node_a: ServerProcess, node_b: ServerProcess) -> None:
    name = on_a(node_a, "no-such-model:1")
    chunks = ndjson(pull(node_b, name, insecure=True), failed=True)
    assert chunks == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    response = pull(node_b, name, insecure=True, stream=False)
    assert response.status_code == 404
    assert response.json() == {"error": "pull model manifest: file does not exist"}


def test_unreachable_registry(node_b: ServerProcess) -> None:
    port = free_port()  # closed: nothing listens there
    response = pull(node_b, f"127.0.0.1:{port}/library/smollm2:135m", insecure=True, stream=False)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error.startswith("pull model manifest: ")
    assert f"127.0.0.1:{port}" in error


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"model": "a/b/c/d"}, "invalid model name"),
        ({"model": "bad name"}, "invalid model name"),
        ({"model": "x:"}, "invalid model name"),
        ({}, "model is required"),
        ({"model": "http://127.0.0.1:9/library/m:1"}, "insecure protocol http"),
        ({"model": 3}, None),
    ],
)
def test_bad_requests(node_b: ServerProcess, body: dict[str, Any], error: str | None) -> None:
    for path in ("/api/pull", "/api/push"):
        with node_b.client() as b:
            response = b.post(path, json=body)
        assert response.status_code == 400, response.text
        if error is not None:
            assert response.json() == {"error": error}


def test_corrupt_blob_is_refused_and_nothing_is_written(node_b: ServerProcess) -> None:
    from tests.registry.fake_registry import serve

    with serve(FakeRegistry()) as registry:
        weights = bytes(range(256)) * 4096
        registry.add_model("library/corrupt", "1", b"{}", [("x", weights)])
        registry.blobs[digest_of(weights)] = weights[::-1]
        name = f"127.0.0.1:{registry.port}/library/corrupt:1"
        response = pull(node_b, name, insecure=True, stream=False)
    assert response.status_code == 502
    want, got = digest_of(weights), digest_of(weights[::-1])
    assert response.json() == {
        "error": f"digest mismatch, file must be downloaded again: want {want}, got {got}"
    }
    with node_b.client() as b:
        names = [m["name"] for m in b.get("/api/tags").json()["models"]]
    assert name not in names
    assert not [n for n in blob_files(node_b.models) if want[7:] in n]


# --- served side: read ----------------------------------------------------------------


def test_registry_read_side(node_a: ServerProcess) -> None:
    with node_a.client() as a:
        base = a.get("/v2/")
        assert (base.status_code, base.json()) == (200, {})
        got = a.get("/v2/library/smollm2/manifests/135m")
        assert got.status_code == 200
        assert got.headers["content-type"] == (
            "application/vnd.docker.distribution.manifest.v2+json"
        )
        digest = f"sha256:{hashlib.sha256(got.content).hexdigest()}"
        assert got.headers["docker-content-digest"] == digest
        head = a.head("/v2/library/smollm2/manifests/135m")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        by_digest = a.get(f"/v2/library/smollm2/manifests/{digest}")
        assert by_digest.content == got.content

        config = got.json()["config"]
        blob = a.get(f"/v2/library/smollm2/blobs/{config['digest']}")
        assert blob.status_code == 200 and len(blob.content) == config["size"]
        assert digest_of(blob.content) == config["digest"]
        part = a.get(
            f"/v2/library/smollm2/blobs/{config['digest']}", headers={"Range": "bytes=2-9"}
        )
        assert part.status_code == 206
        assert part.content == blob.content[2:10]
        assert part.headers["content-range"] == f"bytes 2-9/{config['size']}"
        blob_head = a.head(f"/v2/library/smollm2/blobs/{config['digest']}")
        assert blob_head.status_code == 200
        assert blob_head.headers["content-length"] == str(config["size"])

        missing = a.get("/v2/library/nope/manifests/latest")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        no_blob = a.get(f"/v2/library/smollm2/blobs/sha256:{'0' * 64}")
        assert no_blob.status_code == 404
        assert no_blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert a.head(f"/v2/library/smollm2/blobs/sha256:{'0' * 64}").status_code == 404


# --- push -----------------------------------------------------------------------------


def test_push_to_a_node_with_the_token(node_a: ServerProcess, node_b: ServerProcess) -> None:
    ensure_pulled(node_a, node_b)
    pirate = on_a(node_a, "smollm2-pirate:latest")
    with node_b.client() as b:
        created = b.post(
            "/api/create",
            json={
                "model": pirate,
                "from": on_a(node_a),
                "system": "You are a pirate.",
                "stream": False,
            },
        )
        assert created.status_code == 200, created.text
        chunks = ndjson(b.post("/api/push", json={"model": pirate, "insecure": True}))
        b_digest = {m["name"]: m["digest"] for m in b.get("/api/tags").json()["models"]}[pirate]
    pushed = [c for c in chunks if "digest" in c]
    assert collapsed(chunks) == [
        "retrieving manifest",
        *dict.fromkeys(f"pushing {c['digest'][7:19]}" for c in pushed),
        "pushing manifest",
        "success",
    ]
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for chunk in pushed:
        by_digest.setdefault(chunk["digest"], []).append(chunk)
    assert len(by_digest) == 3  # weights, system, config
    assert all(c[-1]["completed"] == c[-1]["total"] for c in by_digest.values())
    weights = next(iter(by_digest.values()))
    assert len(weights) == 1  # A has the weights already: reported complete, not sent
    with node_a.client() as a:
        listed = {m["name"]: m for m in a.get("/api/tags").json()["models"]}
        assert listed["smollm2-pirate:latest"]["digest"] == b_digest
        shown = a.post("/api/show", json={"model": "smollm2-pirate:latest"})
        assert shown.json()["system"] == "You are a pirate."
        served = a.get("/v2/library/smollm2-pirate/manifests/latest")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == b_digest


def test_push_without_token_is_refused(node_a: ServerProcess, node_d: ServerProcess) -> None:
    target = on_a(node_a, "from-d:latest")
    with node_d.client() as d:
        created = d.post(
            "/api/create",
            json={"model": target, "from": DEFAULT_MODEL, "system": "Be terse.", "stream": False},
        )
        assert created.status_code == 200, created.text
        response = d.post("/api/push", json={"model": target, "insecure": True, "stream": False})
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized: push token required"}
        streamed = d.post("/api/push", json={"model": target, "insecure": True})
        chunks = ndjson(streamed, failed=True)
        assert chunks[0] == {"status": "retrieving manifest"}
        assert chunks[-1] == {"error": "unauthorized: push token required"}
    with node_a.client() as a:
        assert "from-d:latest" not in [m["name"] for m in a.get("/api/tags").json()["models"]]


def test_push_of_a_missing_model(node_b: ServerProcess) -> None:
    with node_b.client() as b:
        response = b.post("/api/push", json={"model": "127.0.0.1:9/library/none:1"})
    assert response.status_code == 404
    assert response.json() == {"error": 'model "127.0.0.1:9/library/none:1" not found'}


# --- served side: write ---------------------------------------------------------------


def _errors(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def test_write_side_refuses_without_the_right_token(
    node_a: ServerProcess, node_d: ServerProcess
) -> None:
    uploads = "/v2/library/x/blobs/uploads/"
    manifest = "/v2/library/x/manifests/latest"
    with node_a.client() as a:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            response = a.post(uploads, headers=headers)
            assert response.status_code == 401, response.text
            assert _errors(response) == "UNAUTHORIZED"
            assert response.headers["www-authenticate"].startswith("Bearer ")
            assert a.put(manifest, content=b"{}", headers=headers).status_code == 401
            assert a.patch(uploads + "0" * 32, content=b"x", headers=headers).status_code == 401
    with node_d.client() as d:
        off = d.post(uploads, headers={"Authorization": f"Bearer {TOKEN}"})
        assert off.status_code == 405
        assert _errors(off) == "UNSUPPORTED"
        assert "NEXUS_PUSH_TOKEN" in off.json()["errors"][0]["message"]


def test_upload_protocol(node_a: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = b"hello from an upload " * 1000
    digest = digest_of(data)
    with node_a.client(headers=auth) as a:
        started = a.post("/v2/library/up/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["location"]
        first = a.patch(location, content=data[:5000], headers={"Content-Range": "0-4999"})
        assert first.status_code == 202
        assert first.headers["range"] == "0-4999"
        # A chunk that does not continue the upload is refused.
        gap = a.patch(first.headers["location"], content=b"x", headers={"Content-Range": "9-9"})
        assert gap.status_code == 416
        wrong = a.put(first.headers["location"], params={"digest": "sha256:" + "0" * 64})
        assert wrong.status_code == 400 and _errors(wrong) == "DIGEST_INVALID"
        assert a.head(f"/v2/library/up/blobs/{digest}").status_code == 404

        started = a.post("/v2/library/up/blobs/uploads/")
        location = started.headers["location"]
        a.patch(location, content=data[:5000])
        done = a.put(location, params={"digest": digest}, content=data[5000:])
        assert done.status_code == 201, done.text
        assert done.headers["docker-content-digest"] == digest
        assert a.get(f"/v2/library/up/blobs/{digest}").content == data
        # Mounting a blob that is there answers 201 at once.
        mounted = a.post("/v2/library/up/blobs/uploads/", params={"mount": digest, "from": "a/b"})
        assert mounted.status_code == 201

        missing = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "c", "digest": "sha256:" + "1" * 64, "size": 1},
                "layers": [],
            }
        )
        refused = a.put("/v2/library/up/manifests/latest", content=missing)
        assert refused.status_code == 400 and _errors(refused) == "MANIFEST_BLOB_UNKNOWN"
        assert a.put("/v2/library/up/manifests/latest", content=b"not json").status_code == 400
    assert not list((node_a.models / "blobs").glob("upload-*"))
