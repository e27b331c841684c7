"""The key store: keys, usage and the shared rate counters in one SQL database.

Every method is blocking; the request path calls them from worker threads only, through
:class:`~nexus.gateway.keys.auth.Authenticator`, :class:`~nexus.gateway.keys.limits.Limiter`
and :class:`~nexus.gateway.keys.usage.UsageRecorder`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nexus.gateway.keys import db, tokens
from nexus.gateway.keys.errors import KeyExists, KeyNotFound
from nexus.gateway.keys.names import normalise_model
from nexus.gateway.keys.records import KeyInfo, KeyRecord, StoredKey, UsageTotal
from nexus.gateway.keys.tables import GatewayKey, GatewayRate, GatewayUsage

UsageKey = tuple[str, str, datetime]  # key id, model, bucket (start of a UTC minute)
UsageCounts = tuple[int, int, int]  # requests, prompt tokens, completion tokens
RateCounts = tuple[int, int]  # requests, tokens

_KEYS: Table = GatewayKey.__table__  # type: ignore[assignment]
_USAGE: Table = GatewayUsage.__table__  # type: ignore[assignment]
_RATE: Table = GatewayRate.__table__  # type: ignore[assignment]


def utcnow() -> datetime:
    return datetime.now(UTC)


def minute_start(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def _record(row: GatewayKey) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        models=tuple(row.models or ()),
        rpm=row.rpm,
        tpm=row.tpm,
        admin=row.admin,
        expires_at=row.expires_at,
    )


def _info(row: GatewayKey) -> KeyInfo:
    return KeyInfo(_record(row), row.created_at, row.revoked_at, row.last_used_at)


def _upsert_add(
    connection: Connection, table: Table, keys: Mapping[str, Any], adds: Mapping[str, int]
) -> None:
    """Insert a row, or add ``adds`` to the row with the same ``keys``, in one statement."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(**keys, **adds)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in adds},
    )
    connection.execute(statement)


class KeyStore:
    """Keys, usage and rate counters in the database at one SQLAlchemy URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> KeyStore:
        """Open ``url`` (``postgresql://`` means psycopg 3) and migrate it to the newest schema.

        Raises :class:`~nexus.gateway.keys.errors.DatabaseURLError` for a URL that cannot work.
        """
        return cls(db.open_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    # Keys

    def create_key(
        self,
        name: str,
        *,
        models: Sequence[str] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        admin: bool = False,
        expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> tuple[str, KeyInfo]:
        """Create a key; returns the raw key (the only time it exists) and the stored row."""
        created = now or utcnow()
        wanted = tuple(dict.fromkeys(normalise_model(m) for m in models if m.strip()))
        with self.engine.begin() as connection:
            taken = connection.execute(select(_KEYS.c.id).where(_KEYS.c.name == name)).first()
            if taken is not None:
                raise KeyExists(name)
        for _ in range(5):  # a 48-bit key id collides only by extreme chance
            new = tokens.generate()
            row = {
                "id": new.key_id,
                "name": name,
                "salt": new.salt,
                "hash": new.hash,
                "models": list(wanted),
                "rpm": rpm,
                "tpm": tpm,
                "admin": admin,
                "created_at": created,
                "expires_at": expires_at,
                "revoked_at": None,
                "last_used_at": None,
            }
            try:
                with self.engine.begin() as connection:
                    connection.execute(_KEYS.insert().values(**row))
            except IntegrityError:
                with self.engine.connect() as connection:
                    by_name = select(_KEYS.c.id).where(_KEYS.c.name == name)
                    if connection.execute(by_name).first() is not None:
                        raise KeyExists(name) from None
                continue
            record = KeyRecord(new.key_id, name, wanted, rpm, tpm, admin, expires_at)
            return new.raw, KeyInfo(record, created, None, None)
        raise RuntimeError("could not allocate a key id")

    def _rows(self, *where: Any) -> list[GatewayKey]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(GatewayKey).where(*where).order_by(GatewayKey.name)
            return list(session.scalars(query))

    def list_keys(self) -> list[KeyInfo]:
        """All keys, revoked ones included, by name."""
        return [_info(row) for row in self._rows()]

    def get_key(self, name: str) -> KeyInfo:
        rows = self._rows(GatewayKey.name == name)
        if not rows:
            raise KeyNotFound(name)
        return _info(rows[0])

    def revoke(self, name: str, *, now: datetime | None = None) -> KeyInfo:
        """Mark a key revoked; its row stays for the usage history. Revoking twice keeps the
        first time."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_KEYS)
                .where(_KEYS.c.name == name, _KEYS.c.revoked_at.is_(None))
                .values(revoked_at=now or utcnow())
            )
            if result.rowcount == 0:
                found = connection.execute(select(_KEYS.c.id).where(_KEYS.c.name == name)).first()
                if found is None:
                    raise KeyNotFound(name)
        return self.get_key(name)

    def load_keys(self) -> list[StoredKey]:
        """Every key with its salt and hash, for the authenticator's snapshot."""
        return [StoredKey(_record(row), row.salt, row.hash, row.revoked_at) for row in self._rows()]

    # Usage

    def add_usage(
        self, rows: Mapping[UsageKey, UsageCounts], last_used: Mapping[str, datetime]
    ) -> None:
        """Add usage rows (upsert-add) and move ``last_used_at`` forward, in one transaction."""
        with self.engine.begin() as connection:
            for (key_id, model, bucket), (requests, prompt, completion) in rows.items():
                _upsert_add(
                    connection,
                    _USAGE,
                    {"key_id": key_id, "model": model, "bucket": bucket},
                    {
                        "requests": requests,
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                    },
                )
            for key_id, when in last_used.items():
                connection.execute(
                    update(_KEYS)
                    .where(
                        _KEYS.c.id == key_id,
                        (_KEYS.c.last_used_at.is_(None)) | (_KEYS.c.last_used_at < when),
                    )
                    .values(last_used_at=when)
                )

    def usage(self, since: datetime, *, key_name: str | None = None) -> list[UsageTotal]:
        """Usage per key and model in the minutes that start at or after ``since``."""
        query = (
            select(
                _KEYS.c.name,
                _USAGE.c.model,
                func.sum(_USAGE.c.requests),
                func.sum(_USAGE.c.prompt_tokens),
                func.sum(_USAGE.c.completion_tokens),
            )
            .join(_KEYS, _KEYS.c.id == _USAGE.c.key_id)
            .where(_USAGE.c.bucket >= minute_start(since))
            .group_by(_KEYS.c.name, _USAGE.c.model)
            .order_by(_KEYS.c.name, _USAGE.c.model)
        )
        with self.engine.connect() as connection:
            if key_name is not None:
                found = connection.execute(
                    select(_KEYS.c.id).where(_KEYS.c.name == key_name)
                ).first()
                if found is None:
                    raise KeyNotFound(key_name)
                query = query.where(_KEYS.c.name == key_name)
            return [
                UsageTotal(name, model, int(req or 0), int(prompt or 0), int(completion or 0))
                for name, model, req, prompt, completion in connection.execute(query)
            ]

    # Rate counters shared by gateway replicas

    def sync_rates(
        self, deltas: Iterable[tuple[str, int, int, int]], minute: int
    ) -> dict[str, RateCounts]:
        """Add this replica's ``(key_id, minute, requests, tokens)`` deltas and return every
        key's totals for ``minute`` (minutes since the epoch), in one transaction. Rows of
        minutes long past are removed on the way."""
        with self.engine.begin() as connection:
            for key_id, at, requests, tokens_used in deltas:
                _upsert_add(
                    connection,
                    _RATE,
                    {"key_id": key_id, "minute": at},
                    {"requests": requests, "tokens": tokens_used},
                )
            if minute % 5 == 0:
                connection.execute(delete(_RATE).where(_RATE.c.minute < minute - 5))
            rows = connection.execute(
                select(_RATE.c.key_id, _RATE.c.requests, _RATE.c.tokens).where(
                    _RATE.c.minute == minute
                )
            )
            return {key_id: (int(req), int(tok)) for key_id, req, tok in rows}
