"""Opening the key store's database: URL checks, engine set-up and migration to head."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from nexus.gateway.keys.errors import DatabaseURLError

ENV_VAR = "NEXUS_GATEWAY_DB"
MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_TRIES = 3

_ALEMBIC = threading.Lock()  # Alembic keeps its running context in module globals

log = logging.getLogger(__name__)


def default_url(home: Path | None = None) -> str:
    """``sqlite:///<home>/.nexus/gateway.db``."""
    return f"sqlite:///{(home or Path.home()) / '.nexus' / 'gateway.db'}"


def parse_url(text: str) -> URL:
    """The SQLAlchemy URL ``text`` names: SQLite or PostgreSQL, where ``postgresql://`` (or
    ``postgres://``) without a driver means psycopg 3. Raises :class:`DatabaseURLError` saying
    why a URL is unusable."""
    try:
        url = make_url(text.strip())
    except ArgumentError as exc:
        raise DatabaseURLError(str(exc)) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f'unsupported database "{url.drivername}" (use sqlite:///<path> or postgresql://...)'
        )
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseURLError(f'database driver "{url.drivername}" not available: {exc}') from None
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise DatabaseURLError("an SQLite database needs a file path")
    return url


def shown_url(text: str) -> str:
    """``text`` with any password replaced by ``***``, for messages."""
    try:
        url = make_url(text.strip())
    except ArgumentError:
        return text
    return url.render_as_string(hide_password=True) if url.password else text


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create(url: URL) -> Engine:
    """An engine for ``url``; an SQLite file's folder is created (mode 0700) when missing."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        folder = Path(url.database).expanduser().parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Run ``alembic upgrade head``. Other processes migrating the same database at the same
    time wait for each other's lock (see ``migrations/env.py``); should one still fail, finding
    the schema at head afterwards counts as done."""
    config = _config()
    head = head_revision()
    for attempt in range(1, _MIGRATE_TRIES + 1):
        try:
            with _ALEMBIC, engine.connect() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            return
        except SQLAlchemyError:
            if current_revision(engine) == head:
                return
            if attempt == _MIGRATE_TRIES:
                raise
            log.info("database migration raced another process; trying again")


def open_engine(url: str) -> Engine:
    """Check ``url``, connect and migrate the schema to head."""
    engine = create(parse_url(url))
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def url_from_env(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """``NEXUS_GATEWAY_DB``, or the default SQLite file."""
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR, "").strip() or default_url(home)
