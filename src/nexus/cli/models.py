"""Commands about stored and loaded models: list/ls, ps, cp, rm, stop."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import typer

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError, ServerError
from nexus.cli.humanize import human_bytes, human_time, parse_time
from nexus.cli.tables import render_table

JSON_HELP = "Print the server's JSON answer instead of a table"


def _matches(name: str, prefix: str | None) -> bool:
    return prefix is None or name.lower().startswith(prefix.lower())


def list_models(
    prefix: str | None = typer.Argument(
        None, metavar="PREFIX", help="Only models whose name starts with this"
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List models."""
    ui = Consoles.create()
    with Client.from_env() as client:
        models = [m for m in client.list_models() if _matches(str(m.get("name", "")), prefix)]
    if as_json:
        ui.line(json.dumps({"models": models}, indent=2))
        return
    rows = [
        [
            str(m.get("name", "")),
            str(m.get("digest", ""))[:12],
            "-" if m.get("remote_model") else human_bytes(int(m.get("size") or 0)),
            human_time(parse_time(str(m.get("modified_at") or "")), "Never"),
        ]
        for m in models
    ]
    for text in render_table(rows, ("NAME", "ID", "SIZE", "MODIFIED")):
        ui.line(text)


def processor_text(size: int, vram: int) -> str:
    """Where a loaded model lives: ``100% CPU``, ``100% GPU`` or ``48%/52% CPU/GPU``."""
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = math.floor((size - vram) / size * 100 + 0.5)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def until_text(expires: datetime | None, now: datetime) -> str:
    if expires is not None and expires < now:
        return "Stopping..."
    return human_time(expires, "Never", now)


def running_row(model: dict[str, Any], now: datetime) -> list[str]:
    size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    return [
        str(model.get("name", "")),
        str(model.get("digest", ""))[:12],
        human_bytes(size),
        processor_text(size, vram),
        str(int(model.get("context_length") or 0)),
        until_text(parse_time(str(model.get("expires_at") or "")), now),
    ]


def ps(
    prefix: str | None = typer.Argument(
        None, metavar="PREFIX", help="Only models whose name starts with this"
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List running models."""
    ui = Consoles.create()
    with Client.from_env() as client:
        models = [m for m in client.running() if _matches(str(m.get("name", "")), prefix)]
    if as_json:
        ui.line(json.dumps({"models": models}, indent=2))
        return
    now = datetime.now(UTC)
    rows = [running_row(m, now) for m in models]
    for text in render_table(rows, ("NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL")):
        ui.line(text)


def copy(
    source: str = typer.Argument(..., metavar="SOURCE", help="Model to copy"),
    destination: str = typer.Argument(..., metavar="DESTINATION", help="New name"),
) -> None:
    """Copy a model."""
    with Client.from_env() as client:
        client.copy(source, destination)
    Consoles.create().line(f"copied '{source}' to '{destination}'")


def unload(client: Client, model: str) -> None:
    """Ask the server to unload ``model`` now (a generate request with keep_alive 0)."""
    for _ in client.generate({"model": model, "keep_alive": 0}):
        pass


def remove(
    models: list[str] = typer.Argument(..., metavar="MODEL", help="Models to remove"),
) -> None:
    """Remove one or more models."""
    ui = Consoles.create()
    with Client.from_env() as client:
        for model in models:
            try:
                unload(client, model)
            except ServerError as exc:
                if "not found" not in exc.message.lower():
                    ui.note(f"Warning: could not unload '{model}' before removing it")
            client.delete(model)
            ui.line(f"deleted '{model}'")


def stop(model: str = typer.Argument(..., metavar="MODEL", help="Model to stop")) -> None:
    """Stop a running model."""
    with Client.from_env() as client:
        try:
            unload(client, model)
        except ServerError as exc:
            if exc.not_found or "not found" in exc.message.lower():
                raise CLIError(f"model '{model}' not found, nothing to stop") from None
            raise
