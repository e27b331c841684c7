"""Modelfile parsing: keywords, quoting, errors with their line, and the create request."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.errors import BadRequest
from nexus.modelfile.parser import ModelfileError, parse_modelfile, to_create_request
from nexus.modelfile.render import render_modelfile

FULL = '''# a comment
FROM llama3.2
from   llama3.2:1b
PARAMETER temperature 0.7
parameter stop "<|eot_id|>"
PARAMETER stop <|end|>
PARAMETER num_ctx 4096
TEMPLATE """{{ if .System }}<|system|>
{{ .System }}{{ end }}<|user|>
{{ .Prompt }}"""
SYSTEM "You are \\"helpful\\"."
LICENSE """MIT
License"""
LICENSE Apache-2.0
MESSAGE user Is the sky blue?
MESSAGE assistant Yes.
REQUIRES 0.14.0
'''


def test_parses_every_instruction() -> None:
    mf = parse_modelfile(FULL)
    names = [c.name for c in mf.commands]
    assert names == [
        "from", "from", "parameter", "parameter", "parameter", "parameter",
        "template", "system", "license", "license", "message", "message", "requires",
    ]  # fmt: skip
    assert mf.commands[1].args == "llama3.2:1b"
    template = mf.first("template")
    assert template is not None
    assert (
        template.args == "{{ if .System }}<|system|>\n{{ .System }}{{ end }}<|user|>\n{{ .Prompt }}"
    )
    system = mf.first("system")
    assert system is not None and system.args == 'You are "helpful".'
    assert [c.args for c in mf.all("license")] == ["MIT\nLicense", "Apache-2.0"]
    assert [(c.key, c.args) for c in mf.all("message")] == [
        ("user", "Is the sky blue?"),
        ("assistant", "Yes."),
    ]


def test_create_request_types_parameters_and_collects_stops(tmp_path: Path) -> None:
    plan = to_create_request(parse_modelfile(FULL), "mine", tmp_path)
    req = plan.request
    assert req["model"] == "mine"
    assert req["from"] == "llama3.2:1b"
    assert req["parameters"] == {
        "temperature": 0.7,
        "stop": ["<|eot_id|>", "<|end|>"],
        "num_ctx": 4096,
    }
    assert req["system"] == 'You are "helpful".'
    assert req["license"] == ["MIT\nLicense", "Apache-2.0"]
    assert req["messages"][0] == {"role": "user", "content": "Is the sky blue?"}
    assert req["requires"] == "0.14.0"
    assert plan.local_files == {}


def test_from_local_file_and_directory(tmp_path: Path) -> None:
    weights = tmp_path / "w" / "model.gguf"
    weights.parent.mkdir()
    weights.write_bytes(b"GGUF")
    plan = to_create_request(parse_modelfile("FROM ./w/model.gguf\n"), "m", tmp_path)
    assert plan.local_files == {"model.gguf": weights}
    assert "files" in plan.request and "from" not in plan.request
    plan = to_create_request(parse_modelfile("FROM ./w\n"), "m", tmp_path)
    assert plan.local_files == {"model.gguf": weights}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("FROM x\nBOGUS y\n", 2, "command must be one of"),
        ("FROM x\nPARAMETER temperature hot\n", 2, "invalid float value"),
        ("FROM x\nPARAMETER nonsense 1\n", 2, "unknown parameter"),
        ("FROM x\nMESSAGE robot hi\n", 2, "message role must be one of"),
        ('FROM x\nSYSTEM """never closed\nmore\n', 2, "unterminated"),
        ('FROM x\n\nSYSTEM "open\n', 3, "unterminated"),
        ("FROM x\nREQUIRES soon\n", 2, "semver"),
        ("FROM x\nPARAMETER\n", 2, "missing value"),
    ],
)
def test_errors_name_the_line(text: str, line: int, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(ModelfileError) as err:
        to_create_request(parse_modelfile(text), "m", tmp_path)
    assert err.value.line == line
    assert err.value.message.startswith(f"(line {line}): ")
    assert fragment in err.value.message
    assert err.value.status == 400


def test_missing_from() -> None:
    with pytest.raises(BadRequest, match="no FROM line"):
        parse_modelfile("SYSTEM hi\n")


def test_rendered_modelfile_parses_back_to_the_same_request(tmp_path: Path) -> None:
    params = {"temperature": 0.5, "stop": ["<a>", "<b>"], "num_ctx": 2048}
    blob = tmp_path / "sha256-abc"
    blob.write_bytes(b"GGUF")
    text = render_modelfile(
        short_name="m:latest",
        model_path=str(blob),
        adapters=[],
        template="{{ .Prompt }}\n",
        system='Say "hi"',
        params=params,
        licenses=["MIT"],
        messages=[{"role": "user", "content": "hello\nthere"}],
    )
    req = to_create_request(parse_modelfile(text), "copy", tmp_path).request
    assert req["files"] == {"sha256-abc": str(blob)}
    assert req["template"] == "{{ .Prompt }}\n"
    assert req["system"] == 'Say "hi"'
    assert req["parameters"] == params
    assert req["license"] == ["MIT"]
    assert req["messages"] == [{"role": "user", "content": "hello\nthere"}]
