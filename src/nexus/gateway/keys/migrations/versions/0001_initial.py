"""The key store's tables: keys, usage per minute, and the shared per-minute rate counters.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_keys"),
        sa.UniqueConstraint("name", name="uq_gateway_keys_name"),
    )
    op.create_table(
        "gateway_usage",
        sa.Column("key_id", sa.String(12), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "model", "bucket", name="pk_gateway_usage"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["gateway_keys.id"], name="fk_gateway_usage_key_id_gateway_keys"
        ),
    )
    op.create_index("ix_gateway_usage_bucket", "gateway_usage", ["bucket"])
    op.create_table(
        "gateway_rate",
        sa.Column("key_id", sa.String(12), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "minute", name="pk_gateway_rate"),
    )
    op.create_index("ix_gateway_rate_minute", "gateway_rate", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_gateway_rate_minute", table_name="gateway_rate")
    op.drop_table("gateway_rate")
    op.drop_index("ix_gateway_usage_bucket", table_name="gateway_usage")
    op.drop_table("gateway_usage")
    op.drop_table("gateway_keys")
