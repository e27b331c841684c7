"""``create``: a Modelfile turned into an /api/create request, local files sent as blobs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError
from nexus.cli.progress import ProgressView, follow, progress_view
from nexus.errors import InvalidModelName, NexusError
from nexus.store.names import ModelName

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def _chunks(path: Path, digest: str, size: int, view: ProgressView) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sent += len(chunk)
            view.retitle(f"copying file {digest} {100 * sent // max(size, 1)}%")
            yield chunk


def send_blob(client: Client, path: Path, view: ProgressView) -> str:
    """Upload ``path`` unless the server already has its digest; return the digest."""
    real = path.resolve()
    try:
        digest = file_digest(real)
        size = real.stat().st_size
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
    if client.has_blob(digest):
        return digest
    if view.live:
        view.status(f"copying file {digest} 0%")
    client.upload_blob(digest, _chunks(real, digest, size, view))
    if view.live:
        view.retitle(f"copying file {digest} 100%")
    else:
        view.status(f"copying file {digest} 100%")
    return digest


def read_modelfile(file: Path | None) -> tuple[str, Path]:
    """The Modelfile text and the folder its relative paths start from.

    Without ``-f``, ``./Modelfile`` is used, or ``FROM .`` (a GGUF in this folder) if there
    is none.
    """
    if file is None:
        default = Path("Modelfile")
        if not default.is_file():
            return "FROM .\n", Path.cwd()
        file = default
    try:
        return file.read_text(encoding="utf-8"), file.resolve().parent
    except FileNotFoundError:
        raise CLIError(f"Modelfile not found: {file}") from None
    except OSError as exc:
        raise CLIError(f"cannot read {file}: {exc.strerror or exc}") from None


def build_request(
    model: str, text: str, base: Path, client: Client, view: ProgressView
) -> dict[str, Any]:
    from nexus.modelfile.parser import parse_modelfile, to_create_request

    view.status("gathering model components")
    try:
        plan = to_create_request(parse_modelfile(text), model, base)
    except NexusError as exc:
        raise CLIError(exc.message) from None
    request = plan.request
    for key in ("files", "adapters"):
        entries: dict[str, str] = request.get(key) or {}
        for name in list(entries):
            entries[name] = send_blob(client, plan.local_files[name], view)
    return request


def create(
    model: str = typer.Argument(..., metavar="MODEL", help="Name of the new model"),
    file: Path | None = typer.Option(
        None, "--file", "-f", metavar="FILE", help='Name of the Modelfile (default "Modelfile")'
    ),
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        "-q",
        metavar="LEVEL",
        help="Quantize the model to this level (e.g. q4_K_M)",
    ),
) -> None:
    """Create a model from a Modelfile."""
    try:
        ModelName.parse(model)
    except InvalidModelName:
        raise CLIError(f"invalid model name: {model}") from None
    text, base = read_modelfile(file)
    ui = Consoles.create()
    with Client.from_env() as client, progress_view(ui) as view:
        request = build_request(model, text, base, client, view)
        if quantize:
            request["quantize"] = quantize
        last = follow(view, client.create(request), verb="pulling", skip_unstarted=False)
    if last != "success":
        raise CLIError("the server ended the create without success")
