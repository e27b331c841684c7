"""Vision models end to end: the default GGUF plus a small multimodal projector built here with
random weights (a one-block CLIP tower and LLaVA's MLP projector, as llama.cpp's mtmd loads
it). The reply comes from the image embedding: another image gives another greedy answer."""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import gguf
import httpx
import numpy as np
import pytest

from tests.support import DEFAULT_MODEL, ServerProcess

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 12}
RED, BLUE = (255, 0, 0), (0, 0, 255)


def build_projector(path: Path, n_out: int) -> None:
    """A CLIP vision tower (32x32 images, 8x8 patches, one block of width 32) with an MLP
    projector into the language model's ``n_out`` embedding width; random weights."""
    rng = np.random.default_rng(0)
    width, ff, patch, size = 32, 64, 8, 32
    w = gguf.GGUFWriter(str(path), arch="clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.embedding_length", width)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.projection_dim", n_out)
    w.add_uint32("clip.vision.attention.head_count", 4)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_uint32("clip.vision.image_size", size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("general.file_type", 0)

    def tensor(name: str, shape: tuple[int, ...], scale: float = 0.2) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def norm(name: str) -> None:
        w.add_tensor(f"{name}.weight", np.ones(width, np.float32))
        w.add_tensor(f"{name}.bias", np.zeros(width, np.float32))

    tensor("v.patch_embd.weight", (width, 3, patch, patch))
    tensor("v.patch_embd.bias", (width,))
    tensor("v.class_embd", (width,))
    tensor("v.position_embd.weight", ((size // patch) ** 2 + 1, width))
    norm("v.pre_ln")
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        tensor(f"v.blk.0.{name}.weight", (width, width))
        tensor(f"v.blk.0.{name}.bias", (width,))
    norm("v.blk.0.ln1")
    norm("v.blk.0.ln2")
    tensor("v.blk.0.ffn_up.weight", (ff, width))
    tensor("v.blk.0.ffn_up.bias", (ff,))
    tensor("v.blk.0.ffn_down.weight", (width, ff))
    tensor("v.blk.0.ffn_down.bias", (width,))
    tensor("mm.0.weight", (n_out, width), 0.5)
    tensor("mm.0.bias", (n_out,))
    tensor("mm.2.weight", (n_out, n_out), 0.1)
    tensor("mm.2.bias", (n_out,))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def png(color: tuple[int, int, int], size: int = 40) -> bytes:
    row = b"\x00" + bytes(color) * size
    raw = row * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def b64(color: tuple[int, int, int]) -> str:
    return base64.b64encode(png(color)).decode()


def _upload(http: httpx.Client, path: Path) -> str:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    r = http.post(f"/api/blobs/{digest}", content=path.read_bytes())
    assert r.status_code in (200, 201), r.text
    return digest


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vision") / "mmproj.gguf"
    build_projector(path, n_out=576)  # SmolLM2-135M's embedding width
    return path


@pytest.fixture(scope="module")
def vision(server: ServerProcess, default_gguf: Path, projector: Path) -> Iterator[str]:
    name = f"nexus-test-vision-{uuid.uuid4().hex[:8]}:latest"
    with server.client() as http:
        files = {"model.gguf": _upload(http, default_gguf), "mmproj.gguf": _upload(http, projector)}
        r = http.post("/api/create", json={"model": name, "files": files, "stream": False})
        assert r.status_code == 200, r.text
        yield name
        http.request("DELETE", "/api/delete", json={"model": name})


def _chat(http: httpx.Client, model: str, image: str | None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": "What is in this image?"}
    if image:
        message["images"] = [image]
    body = {"model": model, "messages": [message], "stream": False, "options": GREEDY, **extra}
    r = http.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_show_reports_vision_and_the_projector(http: httpx.Client, vision: str) -> None:
    show = http.post("/api/show", json={"model": vision}).json()
    assert "vision" in show["capabilities"]
    assert show["projector_info"]["general.architecture"] == "clip"
    assert show["projector_info"]["clip.vision.projection_dim"] == 576
    assert (
        "vision" not in http.post("/api/show", json={"model": DEFAULT_MODEL}).json()["capabilities"]
    )


def test_the_image_decides_the_answer(http: httpx.Client, vision: str) -> None:
    red = _chat(http, vision, b64(RED))
    again = _chat(http, vision, b64(RED))
    blue = _chat(http, vision, b64(BLUE))
    assert red["message"]["content"] == again["message"]["content"]
    assert red["message"]["content"] != blue["message"]["content"]
    # the image's tokens are in the prompt
    assert red["prompt_eval_count"] > _chat(http, vision, None)["prompt_eval_count"]


def test_generate_with_images(http: httpx.Client, vision: str) -> None:
    def generate(color: tuple[int, int, int]) -> str:
        body = {
            "model": vision,
            "prompt": "Describe the picture.",
            "images": [b64(color)],
            "stream": False,
            "options": GREEDY,
        }
        r = http.post("/api/generate", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["response"])

    assert generate(RED) != generate(BLUE)


def test_images_refused_without_a_projector(http: httpx.Client) -> None:
    r = http.post(
        "/api/chat",
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "hi", "images": [b64(RED)]}],
            "stream": False,
        },
    )
    assert r.status_code == 400
    assert "does not support vision" in r.json()["error"]


def test_openai_image_url_parts(server: ServerProcess, http: httpx.Client, vision: str) -> None:
    client = server.openai_client()

    def ask(color: tuple[int, int, int]) -> str:
        reply = client.chat.completions.create(
            model=vision,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{b64(color)}"},
                        },
                    ],
                }
            ],
            temperature=0,
            seed=1,
            max_tokens=12,
        )
        return reply.choices[0].message.content or ""

    assert ask(RED) == _chat(http, vision, b64(RED))["message"]["content"]
    assert ask(RED) != ask(BLUE)


def test_anthropic_image_blocks(server: ServerProcess, vision: str) -> None:
    client = anthropic.Anthropic(
        base_url=server.url,
        api_key="unused",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False, timeout=120),
    )

    def ask(color: tuple[int, int, int]) -> str:
        message = client.messages.create(
            model=vision,
            max_tokens=12,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": b64(color),
                            },
                        },
                        {"type": "text", "text": "What is in this image?"},
                    ],
                }
            ],
            extra_body={"temperature": 0, "seed": 1},
        )
        return "".join(b.text for b in message.content if b.type == "text")  # type: ignore[union-attr]

    assert ask(RED) != ask(BLUE)
