"""Keys at the gateway: missing, bad, revoked, expired, model-limited, rate-limited, admin."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from tests.gateway.e2e.conftest import Stack
from tests.gateway.harness import create_key, revoke_key
from tests.support import DEFAULT_MODEL

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}]}
NATIVE_CHAT = {**CHAT, "stream": False, "options": {"num_predict": 2}}
OPENAI_CHAT = {**CHAT, "max_tokens": 2}
MESSAGES = {**CHAT, "max_tokens": 2}


def poll_status(client: httpx.Client, path: str, status: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(path).status_code == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never answered {status}")


def test_open_routes_need_no_key(stack: Stack) -> None:
    with stack.client(key="") as http:
        root = http.get("/")
        assert root.status_code == 200 and root.text == "Nexus gateway is running"
        assert http.head("/").status_code == 200
        assert http.get("/health").json() == {"status": "ok"}
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert float(ready.headers["x-nexus-overhead-ms"]) >= 0
        assert set(ready.json()["up"]) == {"ollama", "ollama-2"}


@pytest.mark.parametrize("key", ["", "sk-nexus-000000000000-notavalidsecretnotavalidsecret0", "x"])
def test_missing_or_bad_key_is_401_in_each_api_shape(stack: Stack, key: str) -> None:
    with stack.client(key=key) as http:
        native = http.post("/api/chat", json=NATIVE_CHAT)
        assert native.status_code == 401
        assert isinstance(native.json()["error"], str) and "key" in native.json()["error"]
        assert native.headers["www-authenticate"] == "Bearer"
        openai = http.get("/v1/models")
        assert openai.status_code == 401
        assert openai.json()["error"]["code"] == "invalid_api_key"
        assert openai.json()["error"]["type"] == "invalid_request_error"
        anthropic = http.post("/v1/messages", json=MESSAGES)
        assert anthropic.status_code == 401
        body = anthropic.json()
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert http.get("/api/tags").status_code == 401
        assert http.get("/metrics").status_code == 401


def test_key_in_x_api_key_header_works(stack: Stack) -> None:
    with stack.client(key="") as http:
        reply = http.get("/api/tags", headers={"x-api-key": stack.key})
        assert reply.status_code == 200


def test_revoked_key_stops_working(stack: Stack) -> None:
    key = create_key(stack.env, "to-revoke")
    with stack.client(key) as http:
        poll_status(http, "/api/tags", 200)
        revoke_key(stack.env, "to-revoke")
        poll_status(http, "/api/tags", 401)
        assert "revoked" in http.get("/api/tags").json()["error"]


def test_expired_key_stops_working(stack: Stack) -> None:
    key = create_key(stack.env, "short-lived", "--expires", "2s")
    with stack.client(key) as http:
        poll_status(http, "/api/tags", 401)
        assert "expired" in http.get("/api/tags").json()["error"]


def test_key_limited_to_another_model_gets_403(stack: Stack) -> None:
    key = create_key(stack.env, "other-only", "--models", "other")
    with stack.client(key) as http:
        native = http.post("/api/chat", json=NATIVE_CHAT)
        assert native.status_code == 403
        assert DEFAULT_MODEL in native.json()["error"]
        openai = http.post("/v1/chat/completions", json=OPENAI_CHAT)
        assert openai.status_code == 403
        assert openai.json()["error"]["type"] == "permission_error"
        names = [m["name"] for m in http.get("/api/tags").json()["models"]]
        assert names == ["other:latest"]
        ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert ids == ["other:latest"]
        allowed = http.post("/api/chat", json={**NATIVE_CHAT, "model": "other"})
        assert allowed.status_code == 200


def test_requests_per_minute_limit_is_429_with_retry_after(stack: Stack) -> None:
    key = create_key(stack.env, "rpm", "--rpm", "2")
    with stack.client(key) as http:
        show = {"model": DEFAULT_MODEL}
        assert http.post("/api/show", json=show).status_code == 200
        assert http.post("/api/show", json=show).status_code == 200
        refused = http.post("/api/show", json=show)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "2 requests per minute" in refused.json()["error"]
        openai = http.post("/v1/chat/completions", json=OPENAI_CHAT)
        assert openai.status_code == 429
        assert openai.json()["error"]["code"] == "rate_limit_exceeded"


def test_tokens_per_minute_limit_is_429_with_retry_after(stack: Stack) -> None:
    key = create_key(stack.env, "tpm", "--tpm", "10")
    with stack.client(key) as http:
        first = http.post("/api/chat", json=NATIVE_CHAT)
        assert first.status_code == 200
        assert first.json()["prompt_eval_count"] + first.json()["eval_count"] > 10
        refused = http.post("/api/chat", json=NATIVE_CHAT)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1


def test_model_management_needs_an_admin_key(stack: Stack) -> None:
    copy = {"source": DEFAULT_MODEL, "destination": "gw-copy"}
    with stack.client() as http:
        refused = http.post("/api/copy", json=copy)
        assert refused.status_code == 403
        assert "admin" in refused.json()["error"]
        assert http.request("DELETE", "/api/delete", json={"model": "gw-copy"}).status_code == 403
    with stack.client(stack.admin) as http:
        assert http.post("/api/copy", json=copy).status_code == 200
        with stack.a.client() as direct:  # the default backend is A
            names = [m["name"] for m in direct.get("/api/tags").json()["models"]]
            assert "gw-copy:latest" in names
        assert http.request("DELETE", "/api/delete", json={"model": "gw-copy"}).status_code == 200
        assert http.post("/api/pull", json={"model": "x", "stream": False}).status_code != 403


def test_bad_requests_are_refused_in_shape(stack: Stack) -> None:
    with stack.client() as http:
        bad_json = http.post("/api/chat", content=b"{not json")
        assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
        no_model = http.post("/v1/chat/completions", json={"messages": []})
        assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
        assert http.get("/api/chat").status_code == 405
        unknown = http.get("/nope")
        assert unknown.status_code == 404
        deep = b"[" * 100000 + b"]" * 100000
        assert http.post("/api/chat", content=deep).status_code == 400
        missing = http.post("/api/chat", json={**NATIVE_CHAT, "model": "missing-model"})
        assert missing.status_code == 404
        assert "not found" in missing.json()["error"]


def test_blob_upload_streams_through_to_the_default_backend(stack: Stack) -> None:
    blob = b"a small blob, not a model" * 1000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with stack.client() as http:
        assert http.post(f"/api/blobs/{digest}", content=blob).status_code == 403
    with stack.client(stack.admin) as http:
        assert http.head(f"/api/blobs/{digest}").status_code == 404
        assert http.post(f"/api/blobs/{digest}", content=blob).status_code == 201
        assert http.head(f"/api/blobs/{digest}").status_code == 200
        other = "sha256:" + hashlib.sha256(b"another blob").hexdigest()
        wrong = http.post(f"/api/blobs/{other}", content=blob)
        assert wrong.status_code == 400 and "error" in wrong.json()
    with stack.a.client() as direct:
        assert direct.head(f"/api/blobs/{digest}").status_code == 200
