"""``show``: a model's summary, or one of its parts (Modelfile, parameters, template...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import typer

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError
from nexus.cli.tables import render_table
from nexus.store.gguf_meta import human_number

PARTS = ("license", "modelfile", "parameters", "system", "template")


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _head(text: str, count: int) -> list[list[str]]:
    """The first ``count`` non-blank lines of ``text``, then ``...`` if there were more."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:count]]
    if len(lines) > count:
        rows.append(["", "..."])
    return rows


def _model_rows(info: Mapping[str, Any]) -> list[list[str]]:
    details: Mapping[str, Any] = info.get("details") or {}
    model_info: Mapping[str, Any] | None = info.get("model_info")
    rows: list[list[str]] = []
    if info.get("remote_host"):
        rows.append(["", "Remote model", str(info.get("remote_model", ""))])
        rows.append(["", "Remote URL", str(info["remote_host"])])
    if model_info:
        arch = str(model_info.get("general.architecture") or "")
        if arch:
            rows.append(["", "architecture", arch])
        params = str(details.get("parameter_size") or "")
        count = model_info.get("general.parameter_count")
        if not params and isinstance(count, int | float):
            params = human_number(int(count))
        if params:
            rows.append(["", "parameters", params])
        for key in ("context_length", "embedding_length"):
            value = _number(model_info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", key.replace("_", " "), value])
    else:
        rows.append(["", "architecture", str(details.get("family", ""))])
        rows.append(["", "parameters", str(details.get("parameter_size", ""))])
    rows.append(["", "quantization", str(details.get("quantization_level", ""))])
    if info.get("requires"):
        rows.append(["", "requires", str(info["requires"])])
    return rows


def _metadata_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        shown: list[str] = []
        width = 1
        for item in value:
            text = str(item)
            extra = len(text) + (2 if shown else 0)
            if shown and width + extra > 10:
                break
            shown.append(text)
            width += extra
        more = f" ...+{len(value) - len(shown)} more" if len(shown) < len(value) else ""
        return "[" + " ".join(shown) + more + "]"
    if value is None:
        return "<nil>"
    return str(value)


def info_lines(info: Mapping[str, Any], *, verbose: bool = False) -> list[str]:
    """The summary ``show`` prints: one indented table per section, a blank line after each."""
    sections: list[tuple[str, list[list[str]]]] = [("Model", _model_rows(info))]
    capabilities = info.get("capabilities") or []
    if capabilities:
        sections.append(("Capabilities", [["", str(c)] for c in capabilities]))
    parameters = str(info.get("parameters") or "")
    if parameters:
        rows = [["", *line.split()] for line in parameters.splitlines() if line.strip()]
        sections.append(("Parameters", rows))
    model_info: Mapping[str, Any] = info.get("model_info") or {}
    if verbose and model_info:
        rows = [["", key, _metadata_value(model_info[key])] for key in sorted(model_info)]
        sections.append(("Metadata", rows))
    tensors = info.get("tensors") or []
    if verbose and tensors:
        rows = [
            ["", str(t.get("name", "")), str(t.get("type", "")), str(t.get("shape", ""))]
            for t in tensors
        ]
        sections.append(("Tensors", rows))
    if info.get("system"):
        sections.append(("System", _head(str(info["system"]), 2)))
    if info.get("license"):
        sections.append(("License", _head(str(info["license"]), 2)))
    lines: list[str] = []
    for title, rows in sections:
        lines.append(f"  {title}")
        lines.extend(render_table(rows))
        lines.append("")
    return lines


def _part_writer(ui: Consoles, part: str) -> Callable[[str], None]:
    # license, modelfile and parameters end with a newline; system and template as they are.
    return ui.line if part in ("license", "modelfile", "parameters") else ui.write


def show(
    model: str = typer.Argument(..., metavar="MODEL", help="Model to describe"),
    license_: bool = typer.Option(False, "--license", help="Show the license of a model"),
    modelfile: bool = typer.Option(False, "--modelfile", help="Show the Modelfile of a model"),
    parameters: bool = typer.Option(False, "--parameters", help="Show the parameters of a model"),
    template: bool = typer.Option(False, "--template", help="Show the template of a model"),
    system: bool = typer.Option(False, "--system", help="Show the system message of a model"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show all model metadata"),
    as_json: bool = typer.Option(False, "--json", help="Print the server's JSON answer"),
) -> None:
    """Show information for a model."""
    chosen = [
        name
        for name, on in zip(PARTS, (license_, modelfile, parameters, system, template), strict=True)
        if on
    ]
    if len(chosen) > 1:
        raise CLIError(
            "use at most one of --license, --modelfile, --parameters, --system, --template"
        )
    ui = Consoles.create()
    with Client.from_env() as client:
        info = client.show(model, verbose=verbose)
    if as_json:
        ui.line(json.dumps(info, indent=2))
        return
    if chosen:
        _part_writer(ui, chosen[0])(str(info.get(chosen[0]) or ""))
        return
    for line in info_lines(info, verbose=verbose):
        ui.line(line)
