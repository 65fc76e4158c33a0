"""The journal: every webhook event, appended in the transaction of its change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add ``apps.last_event_seq`` (0: no event yet), ``apps.journal_messages``, ``journal``."""
    with op.batch_alter_table("apps") as batch:
        batch.add_column(
            sa.Column("last_event_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("journal_messages", sa.Boolean(), server_default="0", nullable=False)
        )
    op.create_table(
        "journal",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("app_seq", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("session_seq", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"], ["apps.sdk_app_id"], name=op.f("fk_journal_sdk_app_id_apps")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["room_sessions.id"], name=op.f("fk_journal_session_id_room_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
    )
    op.create_index("uq_journal_app_seq", "journal", ["sdk_app_id", "app_seq"], unique=True)
    op.create_index("uq_journal_session_seq", "journal", ["session_id", "session_seq"], unique=True)
    op.create_index("ix_journal_app_at", "journal", ["sdk_app_id", "at"])


def downgrade() -> None:
    """Drop ``journal`` and the counter."""
    op.drop_table("journal")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("journal_messages")
        batch.drop_column("last_event_seq")
