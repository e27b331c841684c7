"""``nexus gateway``: run the gateway, and manage its API keys and read its usage.

The key commands work on the database named by ``NEXUS_GATEWAY_DB`` (default
``sqlite:///~/.nexus/gateway.db``) directly; no gateway needs to run. A command that fails
prints one ``Error: <message>`` line on stderr and exits with status 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

from nexus.cli.humanize import human_time
from nexus.cli.tables import render_table
from nexus.config import ConfigError, parse_duration

if TYPE_CHECKING:  # SQLAlchemy and Alembic load only when a gateway command runs
    from nexus.gateway.keys.records import KeyInfo
    from nexus.gateway.keys.store import KeyStore

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    help="Serve the gateway (no command), manage its API keys, show usage.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
keys_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Create, list and revoke the gateway's API keys (in NEXUS_GATEWAY_DB).",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(keys_app, name="keys")

_DAYS = re.compile(r"(\d+(?:\.\d*)?)d")
_LONGEST = 100 * 365 * 86400


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(1)


def parse_period(text: str) -> timedelta:
    """A positive Go-style duration that may start with days: ``30d``, ``1d12h``, ``90m``."""
    value = text.strip()
    days = 0.0
    match = _DAYS.match(value)
    if match:
        days = float(match.group(1))
        value = value[match.end() :]
    seconds = parse_duration(value, bare_seconds=False) if value else 0.0
    total = days * 86400 + seconds
    if not 0 < total < float("inf"):
        raise ValueError(f'"{text}" is not a positive duration')
    if total > _LONGEST:
        raise ValueError(f'"{text}" is longer than 100 years')
    return timedelta(seconds=total)


def _period(text: str, option: str) -> timedelta:
    try:
        return parse_period(text)
    except (ValueError, OverflowError) as exc:
        raise _fail(f"invalid {option} {text!r}: {exc} (for example 30d, 12h, 90m)") from None


@contextmanager
def _store() -> Iterator[KeyStore]:
    """The key store at ``NEXUS_GATEWAY_DB``; every failure becomes one ``Error:`` line."""
    from sqlalchemy.exc import SQLAlchemyError

    from nexus.gateway.keys import db
    from nexus.gateway.keys.errors import DatabaseURLError, KeyStoreError
    from nexus.gateway.keys.store import KeyStore

    url = db.url_from_env()
    try:
        store = KeyStore.open(url)
    except DatabaseURLError as exc:
        raise _fail(str(ConfigError(db.ENV_VAR, db.shown_url(url), exc.message))) from None
    except (SQLAlchemyError, OSError) as exc:
        raise _fail(f"could not open the gateway database: {_why(exc)}") from None
    try:
        yield store
    except KeyStoreError as exc:
        raise _fail(exc.message) from None
    except SQLAlchemyError as exc:
        raise _fail(f"gateway database: {_why(exc)}") from None
    finally:
        store.close()


def _why(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's statement and parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _models(info: KeyInfo) -> str:
    return ",".join(info.record.models) or "all"


def _when(value: datetime | None, never: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else never


@app.callback(invoke_without_command=True)
def gateway(ctx: typer.Context) -> None:
    """Serve the gateway when no command is given."""
    if ctx.invoked_subcommand is None:
        from nexus.gateway.serve import serve

        serve()


@keys_app.command("create")
def create_key(
    name: str = typer.Argument(..., help="A unique name for the key"),
    models: str = typer.Option(
        "", "--models", help="Comma-separated models the key may use (default: all)"
    ),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="Requests per minute at most"),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="Tokens per minute at most"),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime, for example 30d, 12h or 90m (default: never expires)"
    ),
    admin: bool = typer.Option(
        False,
        "--admin",
        help="Also allow the management routes (pull, push, create, delete, copy, blobs)",
    ),
) -> None:
    """Create a key and print it, once, alone on the last line."""
    name = name.strip()
    if not name or len(name) > 200:
        raise _fail("a key name needs 1 to 200 characters")
    lifetime = _period(expires, "--expires") if expires else None
    with _store() as store:
        now = datetime.now(UTC)
        expires_at = now + lifetime if lifetime else None
        raw, info = store.create_key(
            name,
            models=[m for m in models.split(",") if m.strip()],
            rpm=rpm,
            tpm=tpm,
            admin=admin,
            expires_at=expires_at,
            now=now,
        )
    record = info.record
    typer.echo(f'Created key "{record.name}" (id {record.id})')
    typer.echo(f"  models:  {_models(info)}")
    typer.echo(f"  limits:  {_limit(record.rpm)} requests, {_limit(record.tpm)} tokens per minute")
    typer.echo(f"  expires: {_when(record.expires_at, 'never')}{' UTC' if expires_at else ''}")
    typer.echo(f"  admin:   {'yes' if record.admin else 'no'}")
    typer.echo("Store the key now; it is not shown again:")
    typer.echo(raw)


@keys_app.command("list")
def list_keys() -> None:
    """List the keys (never their secrets). Times are UTC."""
    with _store() as store:
        keys = store.list_keys()
    now = datetime.now(UTC)
    rows = [
        [
            info.record.name,
            info.record.id,
            _models(info),
            _limit(info.record.rpm),
            _limit(info.record.tpm),
            _when(info.record.expires_at, "never"),
            human_time(info.last_used_at, zero="never", now=now),
            info.status(now),
        ]
        for info in keys
    ]
    header = ["NAME", "ID", "MODELS", "RPM", "TPM", "EXPIRES", "LAST USED", "STATUS"]
    for line in render_table(rows, header):
        typer.echo(line)


@keys_app.command("revoke")
def revoke_key(name: str = typer.Argument(..., help="The key's name")) -> None:
    """Revoke a key; gateways refuse it within their refresh interval. Its usage stays."""
    with _store() as store:
        info = store.revoke(name)
    typer.echo(f'Revoked key "{info.record.name}" (id {info.record.id})')


@app.command("usage")
def usage(
    since: str = typer.Option("7d", "--since", help="How far back, for example 7d, 24h, 30m"),
    key: str | None = typer.Option(None, "--key", help="Only this key (by name)"),
) -> None:
    """Requests and tokens per key and model (counted per UTC minute)."""
    period = _period(since, "--since")
    with _store() as store:
        start = datetime.now(UTC) - period
        totals = store.usage(start, key_name=key)
    rows = [
        [
            t.key_name,
            t.model,
            str(t.requests),
            str(t.prompt_tokens),
            str(t.completion_tokens),
            str(t.total_tokens),
        ]
        for t in totals
    ]
    header = ["KEY", "MODEL", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "TOTAL"]
    for line in render_table(rows, header):
        typer.echo(line)
