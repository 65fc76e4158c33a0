"""Webhook endpoints (one per app, with its delivery position) and dead letters.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add ``webhook_endpoints`` and ``webhook_dead``."""
    op.create_table(
        "webhook_endpoints",
        sa.Column("sdk_app_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.Double(), nullable=True),
        sa.Column("next_attempt_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"], ["apps.sdk_app_id"], name=op.f("fk_webhook_endpoints_sdk_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("sdk_app_id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_dead",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("app_seq", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("died_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"], ["apps.sdk_app_id"], name=op.f("fk_webhook_dead_sdk_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_dead")),
    )
    op.create_index("ix_webhook_dead_app_seq", "webhook_dead", ["sdk_app_id", "app_seq"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("webhook_dead")
    op.drop_table("webhook_endpoints")
