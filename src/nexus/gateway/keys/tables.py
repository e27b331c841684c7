"""The key store's tables (SQLAlchemy 2 declarative). The schema itself is made by the Alembic
migrations in ``migrations/versions``; these classes must match them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC (the same on SQLite and PostgreSQL), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class GatewayKey(Base):
    """One API key. ``id`` is the public key id inside the key; the secret is never stored."""

    __tablename__ = "gateway_keys"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    salt: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64))
    models: Mapped[list[str]] = mapped_column(JSON)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GatewayUsage(Base):
    """Requests and tokens of one key on one model in one UTC minute (``bucket``)."""

    __tablename__ = "gateway_usage"

    key_id: Mapped[str] = mapped_column(String(12), ForeignKey("gateway_keys.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)


class GatewayRate(Base):
    """Requests and tokens of one key in one UTC minute, summed over all gateway replicas."""

    __tablename__ = "gateway_rate"

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
