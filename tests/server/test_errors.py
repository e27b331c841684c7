"""Errors as Ollama reports them, against real servers with the real default model.

The shared session ``server`` answers the plain error cases; extra servers with other
``OLLAMA_*`` settings cover the queue, runner crashes, client disconnects and model limits.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.store.create import create_from_gguf_file
from nexus.store.default_model import default_gguf_path, ensure_default_model
from nexus.store.store import Store
from tests.support import DEFAULT_MODEL, ServerProcess, start_server

pytestmark = pytest.mark.integration

M = DEFAULT_MODEL
FULL_NAME = f"registry.ollama.ai/library/{M}"
BUSY = "server busy, please try again.  maximum pending requests exceeded"
# A raw prompt the model continues for as long as it is allowed to.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


def assert_error(resp: httpx.Response, status: int, message: str | None = None) -> str:
    """The response is ``status`` with a JSON body of exactly ``{"error": "<non-empty>"}``."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    assert isinstance(body["error"], str) and body["error"], body
    if message is not None:
        assert body["error"] == message
    return str(body["error"])


def generate_ok(client: httpx.Client, model: str = M, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "prompt": "Hello", "stream": False, "options": {"num_predict": 2}}
    body.update(extra)
    resp = client.post("/api/generate", json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    assert data["done"] is True
    return data


def ps_names(client: httpx.Client) -> list[str]:
    resp = client.get("/api/ps")
    assert resp.status_code == 200
    return [m["name"] for m in resp.json()["models"]]


def stream_lines(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.iter_lines() if line.strip()]


# ---- unknown models --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "nope:latest", "someone/nope:7b"])
@pytest.mark.parametrize("stream", [True, False])
def test_generate_unknown_model_is_404(http: httpx.Client, name: str, stream: bool) -> None:
    resp = http.post("/api/generate", json={"model": name, "prompt": "hi", "stream": stream})
    assert_error(resp, 404, f"model '{name}' not found")


@pytest.mark.parametrize("name", ["nope", "nope:latest"])
def test_chat_unknown_model_is_404(http: httpx.Client, name: str) -> None:
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    assert_error(http.post("/api/chat", json=body), 404, f"model '{name}' not found")


def test_embed_unknown_model_is_404(http: httpx.Client) -> None:
    resp = http.post("/api/embed", json={"model": "nope", "input": "hi"})
    assert_error(resp, 404, "model 'nope' not found")
    resp = http.post("/api/embeddings", json={"model": "nope", "prompt": "hi"})
    assert_error(resp, 404, "model 'nope' not found")


def test_show_and_delete_unknown_model_are_404(http: httpx.Client) -> None:
    assert_error(http.post("/api/show", json={"model": "nope"}), 404, "model 'nope' not found")
    resp = http.request("DELETE", "/api/delete", json={"model": "nope"})
    assert_error(resp, 404, "model 'nope' not found")


def test_copy_unknown_source_is_404(http: httpx.Client) -> None:
    resp = http.post("/api/copy", json={"source": "nope", "destination": "other"})
    assert_error(resp, 404, 'model "nope" not found')


# ---- malformed bodies ------------------------------------------------------------------------

JSON_ROUTES = [
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/api/show"),
    ("POST", "/api/copy"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/create"),
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_malformed_json_is_400(http: httpx.Client, method: str, path: str) -> None:
    resp = http.request(
        method, path, content=b'{"model": "x", oops', headers={"content-type": "application/json"}
    )
    assert_error(resp, 400)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_empty_body_is_400_missing_request_body(http: httpx.Client, method: str, path: str) -> None:
    assert_error(http.request(method, path, content=b""), 400, "missing request body")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_non_object_json_is_400(http: httpx.Client, body: bytes) -> None:
    assert_error(http.post("/api/generate", content=body), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"model": M, "prompt": 5},
        {"model": M, "prompt": "hi", "keep_alive": [1]},
        {"model": M, "prompt": "hi", "keep_alive": {"s": 1}},
        {"model": M, "prompt": "hi", "keep_alive": "soon"},
        {"model": M, "prompt": "hi", "options": "hot"},
        {"model": M, "prompt": "hi", "images": "abc"},
        {"model": M, "prompt": "hi", "context": "abc"},
        {"model": M, "prompt": "hi", "format": "yaml"},
        {"model": 5, "prompt": "hi"},
    ],
)
def test_generate_wrong_types_are_400(http: httpx.Client, body: dict[str, Any]) -> None:
    assert_error(http.post("/api/generate", json=body), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"model": M, "messages": "hi"},
        {"model": M, "messages": [{"role": "robot", "content": "hi"}]},
        {"model": M, "messages": [{"role": "user", "content": 5}]},
        {"model": M, "messages": [{"role": "user", "content": "hi"}], "keep_alive": [1]},
        {"model": M, "messages": [{"role": "user", "content": "hi"}], "tools": "x"},
    ],
)
def test_chat_wrong_types_are_400(http: httpx.Client, body: dict[str, Any]) -> None:
    assert_error(http.post("/api/chat", json=body), 400)


def test_keep_alive_list_names_unsupported_type(http: httpx.Client) -> None:
    resp = http.post("/api/generate", json={"model": M, "prompt": "hi", "keep_alive": [1]})
    assert "Unsupported type" in assert_error(resp, 400)


def test_keep_alive_string_without_unit_is_400(http: httpx.Client) -> None:
    """In a request a string is a Go duration: ``"10"`` lacks a unit (a number means seconds)."""
    body = {"model": M, "prompt": "hi", "keep_alive": "10", "options": {"num_predict": 1}}
    resp = http.post("/api/generate", json=body)
    assert "missing unit" in assert_error(resp, 400)


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_option_of_wrong_type_is_400(http: httpx.Client, path: str) -> None:
    body: dict[str, Any] = {"model": M, "options": {"temperature": "hot"}}
    if path == "/api/generate":
        body["prompt"] = "hi"
    else:
        body["messages"] = [{"role": "user", "content": "hi"}]
    resp = http.post(path, json=body)
    assert_error(resp, 400, 'option "temperature" must be of type float32')


def test_top_logprobs_out_of_range_is_400(http: httpx.Client) -> None:
    resp = http.post("/api/generate", json={"model": M, "prompt": "hi", "top_logprobs": 21})
    assert "top_logprobs must be between 0 and 20" in assert_error(resp, 400)


@pytest.mark.parametrize("name", ["a/../b", "bad name!", "../../etc/passwd", "x:", ":tag"])
def test_bad_model_names_are_400(http: httpx.Client, name: str) -> None:
    resp = http.post("/api/generate", json={"model": name, "prompt": "hi"})
    assert_error(resp, 400, "invalid model name")
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    assert_error(http.post("/api/chat", json=body), 400, "invalid model name")
    assert_error(http.post("/api/show", json={"model": name}), 400)
    assert_error(http.request("DELETE", "/api/delete", json={"model": name}), 400)


def test_missing_model_is_400(http: httpx.Client) -> None:
    assert_error(http.post("/api/generate", json={"prompt": "hi"}), 400, "model is required")
    assert_error(http.post("/api/show", json={}), 400, "model is required")


@pytest.mark.parametrize(
    "digest", ["sha256:xyz", "sha256:" + "g" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 63]
)
def test_bad_blob_digest_is_400(http: httpx.Client, digest: str) -> None:
    resp = http.post(f"/api/blobs/{digest}", content=b"data")
    assert_error(resp, 400, "invalid digest format")
    resp = http.head(f"/api/blobs/{digest}")
    assert resp.status_code == 400


def test_unknown_route_is_404_page_not_found(http: httpx.Client) -> None:
    for method, path in [("GET", "/api/nope"), ("POST", "/api/nope"), ("GET", "/nope/deeper")]:
        resp = http.request(method, path)
        assert resp.status_code == 404
        assert resp.text == "404 page not found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/generate"), ("GET", "/api/chat"), ("POST", "/api/tags"), ("GET", "/api/show")],
)
def test_wrong_method_is_405(http: httpx.Client, method: str, path: str) -> None:
    resp = http.request(method, path)
    assert resp.status_code == 405
    assert resp.text == "405 method not allowed"


# ---- request semantics -----------------------------------------------------------------------

RAW_CONFLICT = "raw mode does not support template, system, or context"


@pytest.mark.parametrize(
    "extra", [{"system": "be nice"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2, 3]}]
)
@pytest.mark.parametrize("stream", [True, False])
def test_raw_with_system_template_or_context_is_400(
    http: httpx.Client, extra: dict[str, Any], stream: bool
) -> None:
    body = {"model": M, "prompt": "hi", "raw": True, "stream": stream, **extra}
    assert_error(http.post("/api/generate", json=body), 400, RAW_CONFLICT)


@pytest.mark.parametrize("think", [True, "high"])
def test_think_on_non_thinking_model_is_400(http: httpx.Client, think: Any) -> None:
    message = f'"{M}" does not support thinking'
    resp = http.post("/api/generate", json={"model": M, "prompt": "hi", "think": think})
    assert_error(resp, 400, message)
    body = {"model": M, "messages": [{"role": "user", "content": "hi"}], "think": think}
    assert_error(http.post("/api/chat", json=body), 400, message)


def test_think_false_is_accepted(http: httpx.Client) -> None:
    generate_ok(http, think=False)


def test_images_on_non_vision_model_is_400(http: httpx.Client) -> None:
    image = "aGVsbG8="
    message = f"{FULL_NAME} does not support vision"
    resp = http.post("/api/generate", json={"model": M, "prompt": "hi", "images": [image]})
    assert_error(resp, 400, message)
    body = {"model": M, "messages": [{"role": "user", "content": "hi", "images": [image]}]}
    assert_error(http.post("/api/chat", json=body), 400, message)
    body["stream"] = False
    assert_error(http.post("/api/chat", json=body), 400, message)


def _long_text(words: int) -> str:
    return " ".join(f"apple{i % 10}" for i in range(words))


@pytest.mark.parametrize(
    ("path", "prompt"),
    [
        ("/api/chat", {"messages": [{"role": "user", "content": _long_text(3000)}]}),
        ("/api/generate", {"prompt": _long_text(3000)}),  # sent as text: the engine refuses it
        ("/api/generate", {"prompt": _long_text(3000), "raw": True}),
    ],
)
def test_too_long_without_truncation_is_400(
    http: httpx.Client, path: str, prompt: dict[str, Any]
) -> None:
    # The session server runs with OLLAMA_CONTEXT_LENGTH=2048: this is well past it.
    body = {"model": M, **prompt, "truncate": False, "options": {"num_predict": 2}}
    message = assert_error(http.post(path, json=body), 400)
    assert "exceeds the context length (2048 tokens)" in message
    body["stream"] = False
    assert_error(http.post(path, json=body), 400)


def test_chat_long_history_is_truncated_with_flag(http: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": _long_text(700)},
        {"role": "assistant", "content": _long_text(700)},
        {"role": "user", "content": _long_text(700)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Say hello."},
    ]
    body = {"model": M, "messages": messages, "options": {"num_predict": 2, "temperature": 0}}
    with http.stream("POST", "/api/chat", json=body) as resp:
        assert resp.status_code == 200
        chunks = stream_lines(resp)
    assert chunks, "no chunks"
    assert all("error" not in c for c in chunks), chunks[-1]
    final = chunks[-1]
    assert final["done"] is True
    assert final.get("truncated") is True
    assert all("truncated" not in c for c in chunks[:-1])


def test_chat_of_thousands_of_messages_is_truncated(http: httpx.Client) -> None:
    """Each message is short, together far past the context: the oldest go, in a few renders."""
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"note {i}"} for i in range(3001)
    ]
    body = {"model": M, "messages": messages, "stream": False,
            "options": {"num_predict": 2, "temperature": 0}}  # fmt: skip
    resp = http.post("/api/chat", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["done"] is True
    assert resp.json().get("truncated") is True
    assert 0 < resp.json()["prompt_eval_count"] < 2048


@pytest.mark.parametrize("raw", [False, True])
def test_generate_too_long_is_truncated_by_default(http: httpx.Client, raw: bool) -> None:
    body = {"model": M, "prompt": _long_text(3000), "raw": raw, "stream": False,
            "options": {"num_predict": 2, "temperature": 0}}  # fmt: skip
    resp = http.post("/api/generate", json=body)
    assert resp.status_code == 200, resp.text
    final = resp.json()
    assert final["truncated"] is True
    assert 0 < final["prompt_eval_count"] <= 2047
    if raw:
        assert "context" not in final
    else:
        assert len(final["context"]) == final["prompt_eval_count"] + final["eval_count"]


@pytest.mark.parametrize("raw", [False, True])
def test_generate_counts_and_context_are_the_prompts_tokens(http: httpx.Client, raw: bool) -> None:
    """Without a context to continue, the prompt's tokens are not asked for before the first
    token; the counts and the reply's ``context`` are still those of the whole prompt."""
    prompt = "Name three colours."
    body = {"model": M, "prompt": prompt, "raw": raw, "stream": False,
            "options": {"num_predict": 3, "temperature": 0}}  # fmt: skip
    final = http.post("/api/generate", json=body).json()
    assert final["eval_count"] == 3
    if raw:  # four words and a full stop, BOS where the model wants one: a handful of tokens
        assert "context" not in final
        assert 4 <= final["prompt_eval_count"] <= 8
    else:
        context = final["context"]
        assert len(context) == final["prompt_eval_count"] + 3
        again = http.post(
            "/api/generate",
            json={**body, "prompt": "And three more.", "context": context, "stream": False},
        ).json()
        assert again["context"][: len(context)] == context
        assert again["prompt_eval_count"] > len(context)


def test_keep_alive_zero_request_unloads_after_it(http: httpx.Client) -> None:
    generate_ok(http)
    assert M in ps_names(http)
    generate_ok(http, keep_alive=0)
    assert M not in ps_names(http)


def test_empty_request_with_keep_alive_zero_unloads(http: httpx.Client) -> None:
    resp = http.post("/api/generate", json={"model": M})
    assert resp.status_code == 200
    assert resp.json()["done_reason"] == "load"
    assert M in ps_names(http)
    resp = http.post("/api/generate", json={"model": M, "keep_alive": 0})
    assert resp.status_code == 200
    assert resp.json()["done_reason"] == "unload"
    assert M not in ps_names(http)


def test_server_keeps_serving_after_errors(http: httpx.Client) -> None:
    # A burst of bad requests first, then a normal one.
    http.post("/api/generate", content=b"{")
    http.post("/api/generate", json={"model": "nope", "prompt": "hi"})
    http.post("/api/generate", json={"model": M, "prompt": "hi", "think": True})
    http.post("/api/chat", json={"model": M, "messages": "hi"})
    data = generate_ok(http)
    assert isinstance(data["response"], str)
    chat = http.post(
        "/api/chat",
        json={
            "model": M,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
            "options": {"num_predict": 2},
        },
    )
    assert chat.status_code == 200
    assert chat.json()["message"]["role"] == "assistant"


# ---- extra servers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of this module's own, so extra servers never touch the shared one."""
    models = tmp_path_factory.mktemp("err-models")
    ensure_default_model(models, M)
    return models


@pytest.fixture(scope="module")
def single_slot(
    own_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # A large context, so a generation left running holds its slot for minutes.
    log = tmp_path_factory.mktemp("logs") / "single-slot.log"
    srv = start_server(own_models, log, OLLAMA_NUM_PARALLEL="1", OLLAMA_CONTEXT_LENGTH="8192")
    yield srv
    srv.stop()


@pytest.fixture
def no_queue(own_models: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(
        own_models,
        tmp_path / "no-queue.log",
        OLLAMA_NUM_PARALLEL="1",
        OLLAMA_MAX_QUEUE="0",
        OLLAMA_CONTEXT_LENGTH="2048",
    )
    yield srv
    srv.stop()


@pytest.fixture
def queue_of_one(own_models: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(
        own_models,
        tmp_path / "queue-one.log",
        OLLAMA_NUM_PARALLEL="1",
        OLLAMA_MAX_QUEUE="1",
        OLLAMA_CONTEXT_LENGTH="2048",
    )
    yield srv
    srv.stop()


def long_generation(num_predict: int = 400) -> dict[str, Any]:
    return {
        "model": M,
        "prompt": COUNTING,
        "raw": True,
        "options": {"num_predict": num_predict, "temperature": 0},
    }


def short_generation() -> dict[str, Any]:
    return {"model": M, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}


def test_queue_full_is_503(no_queue: ServerProcess) -> None:
    with no_queue.client() as holder_client, no_queue.client() as other:
        with holder_client.stream("POST", "/api/generate", json=long_generation()) as holding:
            assert holding.status_code == 200, holding.read()
            lines = holding.iter_lines()
            first = json.loads(next(lines))
            assert first["done"] is False
            # The only slot is taken and no request may wait.
            resp = other.post("/api/generate", json=short_generation())
            assert_error(resp, 503, BUSY)
            resp = other.post(
                "/api/chat",
                json={"model": M, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert_error(resp, 503, BUSY)
        # The first stream is closed; once the server notices, its slot is free again.
        deadline = time.monotonic() + 60
        while True:
            resp = other.post("/api/generate", json=short_generation())
            if resp.status_code != 503 or time.monotonic() > deadline:
                break
        assert resp.status_code == 200, resp.text
        assert resp.json()["done"] is True


def test_queue_of_one_refuses_the_second_waiter(queue_of_one: ServerProcess) -> None:
    """One slot, one queue place: of two more requests, one waits and one gets 503."""
    with (
        queue_of_one.client() as holder_client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):

        def send() -> httpx.Response:
            with queue_of_one.client() as client:
                return client.post("/api/generate", json=short_generation())

        with holder_client.stream(
            "POST", "/api/generate", json=long_generation(num_predict=-1)
        ) as holding:
            assert holding.status_code == 200
            # Keep the line iterator: dropping it would close the connection.
            lines = holding.iter_lines()
            assert json.loads(next(lines))["done"] is False
            futures = [pool.submit(send), pool.submit(send)]
            done, _ = concurrent.futures.wait(
                futures, timeout=120, return_when=concurrent.futures.FIRST_COMPLETED
            )
            assert done, "neither request was answered while the slot was held"
            refused = done.pop().result()
            assert_error(refused, 503, BUSY)
        # Closing the holder frees the slot for the request that waited.
        results = [f.result(timeout=120) for f in futures]
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 503], [r.text for r in results]


def test_runner_killed_mid_request_ends_stream_with_error(single_slot: ServerProcess) -> None:
    with single_slot.client() as client:
        generate_ok(client)  # loaded, so exactly one runner exists
        pids = single_slot.runner_pids()
        assert len(pids) == 1, pids
        with client.stream("POST", "/api/generate", json=long_generation()) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            first = json.loads(next(lines))
            assert first["done"] is False
            os.kill(pids[0], signal.SIGKILL)
            rest = [json.loads(line) for line in lines if line.strip()]
        assert rest, "the stream ended without a final line"
        final = rest[-1]
        assert list(final) == ["error"], final
        assert "runner" in final["error"]
        assert all(not c.get("done") for c in rest[:-1])
        # The next request loads a new runner and succeeds.
        data = generate_ok(client)
        assert data["done"] is True
        new_pids = single_slot.runner_pids()
        assert len(new_pids) == 1 and new_pids[0] != pids[0]
        assert M in ps_names(client)


def test_client_disconnect_frees_the_slot(single_slot: ServerProcess) -> None:
    """With one slot, a generation that would run for minutes is abandoned by its client;
    the next request must be served at once rather than after that generation ends."""
    with single_slot.client() as client:
        generate_ok(client)
        with (
            single_slot.client() as leaver,
            leaver.stream("POST", "/api/generate", json=long_generation(-1)) as resp,
        ):
            assert resp.status_code == 200
            assert json.loads(next(resp.iter_lines()))["done"] is False
        # Leaving the block closed the connection mid-stream.
        data = generate_ok(client)
        assert data["done"] is True
        chat = client.post(
            "/api/chat",
            json={
                "model": M,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
        assert chat.status_code == 200, chat.text


@pytest.fixture
def two_models_store(tmp_path: Path) -> Path:
    """The default model plus ``variant:latest``, a copy of its GGUF with another name in the
    metadata, so it is a different weights file and needs a runner of its own."""
    models = tmp_path / "models"
    ensure_default_model(models, M)
    source = default_gguf_path()
    data = bytearray(source.read_bytes())
    marker = b"Smollm2 135M 8k Lc100K Mix1 Ep2"
    at = data.find(marker, 0, 1 << 20)
    assert at > 0, "metadata name not found in the default GGUF"
    data[at : at + len(marker)] = marker.replace(b"Ep2", b"Ep9")
    variant = tmp_path / "variant.gguf"
    variant.write_bytes(bytes(data))
    create_from_gguf_file(Store(models), "variant", variant, lambda status: None)
    variant.unlink()
    return models


@pytest.fixture
def one_loaded(two_models_store: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(
        two_models_store,
        tmp_path / "one-loaded.log",
        OLLAMA_MAX_LOADED_MODELS="1",
        OLLAMA_NUM_PARALLEL="1",
        OLLAMA_CONTEXT_LENGTH="2048",
    )
    yield srv
    srv.stop()
    shutil.rmtree(two_models_store, ignore_errors=True)


def test_max_loaded_models_one(one_loaded: ServerProcess) -> None:
    with one_loaded.client() as client:
        generate_ok(client, M)
        assert ps_names(client) == [M]
        generate_ok(client, "variant")
        assert ps_names(client) == ["variant:latest"]
        assert len(one_loaded.runner_pids()) == 1

        created = client.post(
            "/api/create",
            json={"model": "smallctx", "from": M, "parameters": {"num_ctx": 1024}, "stream": False},
        )
        assert created.status_code == 200, created.text
        assert created.json() == {"status": "success"}

        generate_ok(client, "smallctx")
        models = client.get("/api/ps").json()["models"]
        assert [m["name"] for m in models] == ["smallctx:latest"]
        assert models[0]["context_length"] == 1024

        generate_ok(client, M)
        models = client.get("/api/ps").json()["models"]
        assert [m["name"] for m in models] == [M]
        assert models[0]["context_length"] == 2048
        assert len(one_loaded.runner_pids()) == 1
