"""The ``nexus`` (also ``ollama``) command line.

``serve`` runs the server; every other command is a client of the server at ``OLLAMA_HOST``,
as Ollama's CLI is, so ``docker compose exec ollama ollama pull llama3.1:8b`` works unchanged.
A command that fails prints one ``Error: <message>`` line on stderr and exits with status 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from nexus import __version__
from nexus.cli import create, doctor, models, run, show, transfer
from nexus.cli.console import Consoles
from nexus.cli.errors import CLIError
from nexus.config import ConfigError, Settings
from nexus.gateway import cli as gateway_cli

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Large language model runner: an Ollama-compatible server on llama.cpp.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def _server_version_warning() -> str | None:
    """A warning when a server answers at ``OLLAMA_HOST`` with another version."""
    import httpx

    from nexus.cli.client import Client

    try:
        with Client.from_env(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
            served = client.nexus_version()
    except CLIError:
        return None
    if served and served != __version__:
        return f"Warning: server version is {served}"
    return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nexus version is {__version__}")
        warning = _server_version_warning()
        if warning:
            typer.echo(warning)
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", "-v", callback=_version, is_eager=True, help="Show version information"
    ),
) -> None:
    """Large language model runner."""


@app.command()
def serve() -> None:
    """Start the server (OLLAMA_HOST, OLLAMA_MODELS and the other OLLAMA_* variables apply)."""
    import uvicorn

    from nexus.net.budget import ConnectionBudget
    from nexus.net.guarded import guarded_protocol
    from nexus.server.app import create_app

    settings = _settings()
    budget = ConnectionBudget.for_process(settings.max_client_connections)
    level = logging.DEBUG if settings.debug else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("nexus").info(
        "Nexus %s listening on %s:%d, models in %s",
        __version__,
        settings.host.host,
        settings.host.port,
        settings.models,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host.host,
        port=settings.host.port,
        log_level="debug" if settings.debug else "warning",
        access_log=bool(settings.debug),
        timeout_graceful_shutdown=5,
        http=guarded_protocol(settings.read_timeout, settings.write_timeout, budget),
        server_header=False,
        headers=[("Server", f"Nexus/{__version__}")],
    )


@app.command("import-default", hidden=True)
def import_default(name: str = typer.Argument("smollm2:135m")) -> None:
    """Register the packaged default model in the store if it is not there yet."""
    from nexus.store.default_model import ensure_default_model

    settings = _settings()
    try:
        created = ensure_default_model(settings.models, name, noprune=settings.noprune)
    except Exception as exc:  # one clear line for any failure
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: {'registered' if created else 'already present'}", err=True)


app.command("start", hidden=True, help="Start the server (same as serve).")(serve)
app.command("create")(create.create)
app.command("show")(show.show)
app.command("run")(run.run)
app.command("stop")(models.stop)
app.command("pull")(transfer.pull)
app.command("push")(transfer.push)
app.command("list")(models.list_models)
app.command("ls", hidden=True, help="List models (same as list).")(models.list_models)
app.command("ps")(models.ps)
app.command("cp")(models.copy)
app.command("rm")(models.remove)
app.command("doctor")(doctor.doctor)
app.add_typer(gateway_cli.app, name="gateway")


@app.command("help")
def help_(
    ctx: typer.Context,
    command: list[str] | None = typer.Argument(None, metavar="COMMAND", help="Command to describe"),
) -> None:
    """Help about any command."""
    root_ctx = ctx.parent or ctx
    group = root_ctx.command
    target, target_ctx = group, root_ctx
    for name in command or []:
        sub = getattr(target, "get_command", lambda _ctx, _name: None)(target_ctx, name)
        if sub is None:
            raise CLIError(f'unknown help topic "{name}"')
        target_ctx = type(root_ctx)(sub, info_name=name, parent=target_ctx)
        target = sub
    Consoles.create().write(target.get_help(target_ctx) + "\n")


def _think_flag(args: list[str]) -> list[str]:
    """A bare ``--think`` means ``--think=true``, as in Ollama; otherwise it takes a value."""
    out: list[str] = []
    for i, arg in enumerate(args):
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--think" and following not in run.THINK_VALUES:
            out.append("--think=true")
        else:
            out.append(arg)
    return out


def _program_name() -> str:
    """``ollama`` when installed under that name, ``nexus`` otherwise."""
    name = Path(sys.argv[0]).name if sys.argv else ""
    return name if name in ("nexus", "ollama") else "nexus"


def main() -> None:
    args = _think_flag(sys.argv[1:]) or ["--help"]  # no command: the help, as a success
    try:
        app(args=args, prog_name=_program_name())
    except CLIError as exc:
        Consoles.create().error(exc.message)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
