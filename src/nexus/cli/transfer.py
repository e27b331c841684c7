"""``pull`` and ``push``: registry transfers run by the server, drawn from its progress."""

from __future__ import annotations

import typer

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError, ServerError
from nexus.cli.progress import follow, progress_view
from nexus.errors import InvalidModelName
from nexus.store.names import ModelName

INSECURE_HELP = "Use an insecure registry (plain http, unverified TLS)"


def pull_model(client: Client, ui: Consoles, model: str, *, insecure: bool) -> None:
    """Pull ``model`` with per-layer progress on stderr; raise when it did not succeed."""
    with progress_view(ui) as view:
        last = follow(
            view, client.pull(model, insecure=insecure), verb="pulling", skip_unstarted=True
        )
    if last != "success":
        raise CLIError(f"pulling {model} ended without success")


def pull(
    model: str = typer.Argument(..., metavar="MODEL", help="Model to pull"),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
) -> None:
    """Pull a model from a registry."""
    ui = Consoles.create()
    with Client.from_env() as client:
        pull_model(client, ui, model, insecure=insecure)


def _is_ollama_com(host: str) -> bool:
    return host.endswith((".ollama.ai", ".ollama.com"))


def push(
    model: str = typer.Argument(..., metavar="MODEL", help="Model to push"),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
) -> None:
    """Push a model to a registry."""
    try:
        name = ModelName.parse(model)
    except InvalidModelName:
        raise CLIError(f"invalid model name: {model}") from None
    ui = Consoles.create()
    with Client.from_env() as client, progress_view(ui) as view:
        try:
            last = follow(
                view, client.push(model, insecure=insecure), verb="pushing", skip_unstarted=False
            )
        except ServerError as exc:
            text = exc.message.lower()
            if "access denied" in text or "unauthorized" in text:
                raise CLIError(
                    f"not allowed to push to {name.namespace}/; "
                    "copy the model under a namespace of yours and push that"
                ) from None
            raise
    if last != "success":
        raise CLIError(f"pushing {model} ended without success")
    destination = name.full()
    if _is_ollama_com(name.host):
        short = name.display().removesuffix(":latest")
        destination = f"https://ollama.com/{short}"
    ui.line()
    ui.line("Pushed; the model is now at:")
    ui.line()
    ui.line(f"\t{destination}")
