"""``run MODEL [PROMPT]``: one answer when given a prompt or piped input, else a chat."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from nexus.cli.client import Client
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError, ServerError
from nexus.cli.session import Session, generate_once, load_model
from nexus.cli.transfer import INSECURE_HELP, pull_model
from nexus.config import parse_duration

THINK_VALUES = ("true", "false", "high", "medium", "low", "max")


def parse_think(value: str | None) -> bool | str | None:
    if value is None:
        return None
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    if value in THINK_VALUES:
        return value
    raise CLIError(f'invalid --think value "{value}": use one of {", ".join(THINK_VALUES)}')


def parse_keep_alive(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        parse_duration(value, bare_seconds=False)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return value


def show_or_pull(client: Client, ui: Consoles, model: str, *, insecure: bool) -> dict[str, Any]:
    """The model's /api/show answer, pulling the model first when the server lacks it."""
    try:
        return client.show(model)
    except ServerError as exc:
        if not exc.not_found:
            raise
    pull_model(client, ui, model, insecure=insecure)
    return client.show(model)


def _embed(client: Client, ui: Consoles, session: Session, text: str, **extra: Any) -> None:
    if not text:
        raise CLIError(
            f'{session.model} is an embedding model: give it text, nexus run {session.model} "text"'
        )
    body: dict[str, Any] = {"model": session.model, "input": text}
    if session.keep_alive is not None:
        body["keep_alive"] = session.keep_alive
    body.update({k: v for k, v in extra.items() if v is not None})
    embeddings = client.embed(body).get("embeddings") or []
    if not embeddings:
        raise CLIError("no embeddings returned")
    ui.line(json.dumps(embeddings[0], separators=(",", ":")))


def _greet(ui: Consoles, session: Session) -> None:
    """Show the model's own MESSAGE lines as if they had just been typed and answered."""
    from nexus.cli.display import AnswerWriter

    for message in session.loaded_messages:
        role, content = message.get("role"), str(message.get("content") or "")
        if role == "user":
            ui.line(f">>> {content}")
        elif role == "assistant":
            AnswerWriter(ui, wrap=session.word_wrap).content(content)
            ui.write("\n\n")


def run(
    model: str = typer.Argument(..., metavar="MODEL", help="Model to run"),
    prompt: list[str] | None = typer.Argument(
        None, metavar="PROMPT", help="Prompt (otherwise: interactive chat)"
    ),
    keepalive: str | None = typer.Option(
        None, "--keepalive", metavar="DURATION", help="Duration to keep the model loaded (e.g. 5m)"
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show timings for the response"),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    nowordwrap: bool = typer.Option(
        False, "--nowordwrap", help="Don't wrap words to the next line automatically"
    ),
    format_: str = typer.Option(
        "", "--format", metavar="FORMAT", help="Response format (json or a JSON schema)"
    ),
    think: str | None = typer.Option(
        None,
        "--think",
        metavar="VALUE",
        help="Thinking: true/false, or high/medium/low for models that have it",
    ),
    hidethinking: bool = typer.Option(False, "--hidethinking", help="Hide thinking output"),
    truncate: bool | None = typer.Option(
        None, "--truncate/--no-truncate", help="Embedding models: truncate over-long input"
    ),
    dimensions: int = typer.Option(
        0,
        "--dimensions",
        metavar="N",
        show_default=False,
        help="Embedding models: truncate embeddings to this many dimensions",
    ),
) -> None:
    """Run a model."""
    ui = Consoles.create()
    session = Session(
        model=model,
        keep_alive=parse_keep_alive(keepalive),
        think=parse_think(think),
        think_set=think is not None,
        hide_thinking=hidethinking,
        word_wrap=not nowordwrap,
        verbose=verbose,
        format=format_,
    )
    if format_:
        from nexus.cli.session import parse_format

        parse_format(format_)
    words = list(prompt or [])
    interactive = True
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            words.insert(0, piped)
        interactive = False
    if words or not ui.out_is_terminal:
        interactive = False
    text = " ".join(words)

    with Client.from_env() as client:
        info = show_or_pull(client, ui, model, insecure=insecure)
        session.apply_show(info)
        capabilities = info.get("capabilities") or []
        if "embedding" in capabilities and "completion" not in capabilities:
            _embed(client, ui, session, text, truncate=truncate, dimensions=dimensions or None)
            return
        if not interactive:
            generate_once(client, ui, session, text)
            return
        load_model(client, ui, session)
        _greet(ui, session)
        from nexus.cli.repl import Repl

        Repl(client, ui, session).loop()
