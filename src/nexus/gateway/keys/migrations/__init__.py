"""Alembic migrations of the key store, run to head whenever a database is opened."""
