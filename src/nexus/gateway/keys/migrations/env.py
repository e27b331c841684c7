"""Alembic environment: migrates the connection ``nexus.gateway.keys.db.migrate`` passes in.

The migration runs in one transaction that first takes a lock (an advisory lock on PostgreSQL,
the write lock on SQLite), so processes starting together migrate one after another and the
later ones find the schema at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATION_LOCK = 0x6E657875  # "nexu": the advisory lock id

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite would not begin before DDL
    context.run_migrations()
