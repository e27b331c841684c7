"""create: from a model name with SYSTEM/PARAMETER, and from a local GGUF sent as a blob."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from nexus.store.default_model import default_gguf_path
from tests.cli.conftest import Cli
from tests.cli.helpers import cli_env, run_cli
from tests.support import ServerProcess, start_server


@pytest.fixture(scope="module")
def gguf_digest() -> str:
    sha = hashlib.sha256()
    with default_gguf_path().open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A second server whose store starts empty, so that blobs must be uploaded to it."""
    root = tmp_path_factory.mktemp("empty-server")
    srv = start_server(root / "models", root / "server.log")
    yield srv
    srv.stop()


def test_create_from_a_model_with_system_and_parameters(
    cli: Cli, api: httpx.Client, tmp_path: Path, scratch: Callable[[str], str]
) -> None:
    name = scratch("create")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM smollm2:135m\nSYSTEM Reply in French.\nPARAMETER temperature 0\n")
    result = cli("create", name, "-f", str(modelfile))
    assert result.code == 0, result.err
    assert result.out == ""
    statuses = result.err.splitlines()
    assert statuses[0] == "gathering model components"
    assert statuses[-2:] == ["writing manifest", "success"]
    assert any(s.startswith("using existing layer sha256:") for s in statuses)
    info = api.post("/api/show", json={"model": name}).json()
    assert info["system"] == "Reply in French."
    assert info["parameters"].split() == ["temperature", "0"]


def test_the_default_modelfile_is_the_one_here(
    cli: Cli, api: httpx.Client, tmp_path: Path, scratch: Callable[[str], str]
) -> None:
    name = scratch("here")
    (tmp_path / "Modelfile").write_text("FROM smollm2:135m\nSYSTEM From the folder.\n")
    result = cli("create", name, cwd=tmp_path)
    assert result.code == 0, result.err
    assert api.post("/api/show", json={"model": name}).json()["system"] == "From the folder."


def test_create_from_a_gguf_the_server_already_has(
    cli: Cli, api: httpx.Client, tmp_path: Path, scratch: Callable[[str], str], gguf_digest: str
) -> None:
    name = scratch("gguf")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {default_gguf_path()}\nPARAMETER num_ctx 1024\n")
    result = cli("create", name, "--file", str(modelfile))
    assert result.code == 0, result.err
    assert "copying file" not in result.err  # the blob was there: nothing uploaded
    assert result.err.splitlines()[-1] == "success"
    tags = {m["name"]: m for m in api.get("/api/tags").json()["models"]}
    assert name in tags
    assert cli("show", name, "--parameters").out.split() == ["num_ctx", "1024"]


def test_create_uploads_a_blob_the_server_lacks(
    empty_server: ServerProcess, tmp_path: Path, gguf_digest: str
) -> None:
    env = cli_env(empty_server.url.removeprefix("http://"), tmp_path)
    gguf = default_gguf_path()
    # A relative FROM path is read from the Modelfile's folder.
    (tmp_path / gguf.name).symlink_to(gguf)
    (tmp_path / "Modelfile").write_text(f"FROM ./{gguf.name}\n")
    blob = empty_server.models / "blobs" / f"sha256-{gguf_digest.removeprefix('sha256:')}"
    assert not blob.exists()
    first = run_cli(["create", "uploaded", "-f", str(tmp_path / "Modelfile")], env)
    assert first.code == 0, first.err
    assert f"copying file {gguf_digest} 100%" in first.err.splitlines()
    assert blob.stat().st_size == gguf.stat().st_size
    second = run_cli(["create", "uploaded-again", "-f", str(tmp_path / "Modelfile")], env)
    assert second.code == 0, second.err
    assert "copying file" not in second.err
    listed = run_cli(["list"], env).out
    assert "uploaded:latest" in listed and "uploaded-again:latest" in listed


def test_a_missing_modelfile(cli: Cli, tmp_path: Path) -> None:
    result = cli("create", "cli-never:latest", "-f", str(tmp_path / "nope"))
    assert (result.code, result.err) == (1, f"Error: Modelfile not found: {tmp_path / 'nope'}\n")


def test_a_modelfile_that_does_not_parse(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM smollm2:135m\nBOGUS thing\n")
    result = cli("create", "cli-never:latest", "-f", str(tmp_path / "Modelfile"))
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith("Error: (line 2): command must be one of")


def test_a_base_model_that_does_not_exist(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./missing.gguf\n")
    result = cli("create", "cli-never:latest", "-f", str(tmp_path / "Modelfile"))
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith("Error: (line 1): no such file")


def test_an_invalid_name(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM smollm2:135m\n")
    result = cli("create", "bad name!", "-f", str(tmp_path / "Modelfile"))
    assert (result.code, result.err) == (1, "Error: invalid model name: bad name!\n")
