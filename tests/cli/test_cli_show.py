"""show: the summary, each single-part flag, --verbose and --json."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.support import DEFAULT_MODEL

MODELFILE = '''FROM smollm2:135m
SYSTEM """You are terse.
Answer in one word."""
PARAMETER temperature 0.5
PARAMETER stop "<|im_end|>"
LICENSE """Line one of the license.
Line two.
Line three."""
'''


@pytest.fixture(scope="module")
def described(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model with a system message, parameters and a three-line license."""
    name = "cli-described:latest"
    request = {
        "model": name,
        "from": DEFAULT_MODEL,
        "system": "You are terse.\nAnswer in one word.",
        "parameters": {"temperature": 0.5, "stop": ["<|im_end|>"]},
        "license": "Line one of the license.\nLine two.\nLine three.",
        "stream": False,
    }
    api.post("/api/create", json=request).raise_for_status()
    yield name
    api.request("DELETE", "/api/delete", json={"model": name})


def _show(api: httpx.Client, name: str) -> dict[str, object]:
    response = api.post("/api/show", json={"model": name})
    response.raise_for_status()
    data: dict[str, object] = response.json()
    return data


def test_summary_of_the_default_model(cli: Cli, api: httpx.Client) -> None:
    info = _show(api, DEFAULT_MODEL)
    result = cli("show", DEFAULT_MODEL)
    assert result.code == 0, result.err
    model_info = info["model_info"]
    details = info["details"]
    assert isinstance(model_info, dict) and isinstance(details, dict)
    expected = [
        "  Model",
        "    architecture        llama",
        f"    parameters          {details['parameter_size']}",
        f"    context length      {model_info['llama.context_length']}",
        f"    embedding length    {model_info['llama.embedding_length']}",
        f"    quantization        {details['quantization_level']}",
        "",
        "  Capabilities",
        *[f"    {c}" for c in info["capabilities"]],  # type: ignore[attr-defined]
        "",
    ]
    assert result.out.splitlines() == expected


def test_summary_sections_of_a_created_model(cli: Cli, described: str) -> None:
    out = cli("show", described).out
    section = out.split("  Parameters\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert sorted(section) == ['    stop           "<|im_end|>"', "    temperature    0.5"]
    assert "  System\n    You are terse.\n    Answer in one word.\n\n" in out
    assert "  License\n    Line one of the license.\n    Line two.\n    ...\n\n" in out


@pytest.mark.parametrize(
    ("flag", "field", "end"),
    [
        ("--modelfile", "modelfile", "\n"),
        ("--parameters", "parameters", "\n"),
        ("--template", "template", ""),
        ("--system", "system", ""),
        ("--license", "license", "\n"),
    ],
)
def test_each_part_flag(
    cli: Cli, api: httpx.Client, described: str, flag: str, field: str, end: str
) -> None:
    result = cli("show", described, flag)
    assert result.code == 0, result.err
    assert result.out == f"{_show(api, described)[field]}{end}"


def test_verbose_adds_metadata_and_json_is_the_api_answer(cli: Cli, api: httpx.Client) -> None:
    out = cli("show", DEFAULT_MODEL, "--verbose").out
    assert "  Metadata\n" in out
    assert "general.architecture" in out
    shown = json.loads(cli("show", DEFAULT_MODEL, "--json").out)
    assert shown["details"] == _show(api, DEFAULT_MODEL)["details"]


def test_two_part_flags_are_refused(cli: Cli) -> None:
    result = cli("show", DEFAULT_MODEL, "--system", "--license")
    assert result.code == 1
    assert result.err.startswith("Error: use at most one of --license")


def test_an_unknown_model(cli: Cli) -> None:
    result = cli("show", "no-such-model")
    assert (result.code, result.out) == (1, "")
    assert result.err == "Error: model 'no-such-model' not found\n"


def test_show_reads_the_modelfile_it_was_built_from(
    cli: Cli, tmp_path: Path, scratch: Callable[[str], str]
) -> None:
    name = scratch("modelfile")
    (tmp_path / "Modelfile").write_text(MODELFILE)
    assert cli("create", name, "-f", str(tmp_path / "Modelfile")).code == 0
    assert cli("show", name, "--system").out == "You are terse.\nAnswer in one word."
    parameters = sorted(cli("show", name, "--parameters").out.splitlines())
    assert parameters == [f'{"stop":<30} "<|im_end|>"', f"{'temperature':<30} 0.5"]
