"""The ``nexus`` (also ``ollama``) command line."""

from __future__ import annotations

import logging
import sys

import typer

from nexus import __version__
from nexus.config import ConfigError, Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Large language model runner: an Ollama-compatible server on llama.cpp.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nexus version is {__version__}")
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

    from nexus.server.app import create_app

    settings = _settings()
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
