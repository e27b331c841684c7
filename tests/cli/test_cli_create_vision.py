"""``nexus create`` of a vision model: a Modelfile with two ``FROM`` lines (weights and
projector), or ``FROM`` a folder holding both; the model gets a projector layer."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.server.test_capabilities_vision import build_projector


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    folder = tmp_path_factory.mktemp("vision-files")
    shutil.copyfile(default_gguf, folder / "model.gguf")
    build_projector(folder / "mmproj.gguf", n_out=576)
    return folder


@pytest.fixture
def names(api: httpx.Client) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    for name in created:
        api.request("DELETE", "/api/delete", json={"model": name})


@pytest.mark.parametrize("form", ["two FROM lines", "a folder"])
def test_create_vision_model(
    cli: Cli, api: httpx.Client, files: Path, names: list[str], tmp_path: Path, form: str
) -> None:
    if form == "a folder":
        text = f"FROM {files}\n"
    else:
        text = f"FROM {files / 'model.gguf'}\nFROM {files / 'mmproj.gguf'}\n"
    (tmp_path / "Modelfile").write_text(text)
    name = f"cli-vision-{uuid.uuid4().hex[:8]}"
    names.append(name)
    result = cli("create", name, "-f", str(tmp_path / "Modelfile"))
    assert result.code == 0, result.err
    show = api.post("/api/show", json={"model": name}).json()
    assert "vision" in show["capabilities"]
    assert show["projector_info"]["clip.projector_type"] == "mlp"
    assert show["model_info"]["general.architecture"] == "llama"
    modelfile = show["modelfile"]
    assert modelfile.count("\nFROM ") == 2, modelfile


def test_run_attaches_images_named_in_the_prompt(
    cli: Cli, files: Path, names: list[str], tmp_path: Path
) -> None:
    from tests.server.test_capabilities_vision import BLUE, RED, png

    (tmp_path / "Modelfile").write_text(
        f"FROM {files}\nPARAMETER temperature 0\nPARAMETER num_predict 12\n"
    )
    name = f"cli-vision-{uuid.uuid4().hex[:8]}"
    names.append(name)
    assert cli("create", name, "-f", str(tmp_path / "Modelfile")).code == 0
    (tmp_path / "red.png").write_bytes(png(RED))
    (tmp_path / "blue.png").write_bytes(png(BLUE))

    def ask(image: str) -> str:
        result = cli("run", name, f"What is in ./{image}?", "--nowordwrap", cwd=tmp_path)
        assert result.code == 0, result.err
        return result.out

    red = ask("red.png")
    assert red == ask("red.png")
    assert red != ask("blue.png")
