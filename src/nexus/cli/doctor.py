"""``nexus doctor``: check the model store, and with ``--repair`` fix what can be fixed.

Like ``import-default``, this is a local maintenance command that reads the store directly
rather than asking the server: it must work when the server is down or will not start because
of the very damage it looks for, and hashing every blob is disk work best done beside the
disk. Repairs only remove files (never rewrite them); run them with the server stopped.
"""

from __future__ import annotations

import typer

from nexus.config import ConfigError, Settings
from nexus.store.doctor import examine
from nexus.store.store import Store


def doctor(
    repair: bool = typer.Option(False, "--repair", help="Remove what cannot be used"),
    quick: bool = typer.Option(False, "--quick", help="Check sizes only, do not hash blobs"),
) -> None:
    """Check every manifest and blob of the store (digest, size, references)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    store = Store(settings.models, noprune=settings.noprune)
    report = examine(store, repair=repair, verify_content=not quick)
    for finding in report.findings:
        action = f" -> {finding.repaired}" if finding.repaired else ""
        typer.echo(f"{finding.subject}: {finding.problem}{action}")
    typer.echo(
        f"{report.manifests} manifest(s), {report.blobs} blob(s) checked in {settings.models}: "
        + ("healthy" if report.healthy else f"{len(report.findings)} problem(s)")
    )
    if not report.healthy:
        raise typer.Exit(1)
