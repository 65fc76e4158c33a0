"""In-call messages, and each session's message counter.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add ``room_sessions.last_msg_seq`` (0 for existing sessions) and create ``messages``."""
    with op.batch_alter_table("room_sessions") as batch:
        batch.add_column(
            sa.Column("last_msg_seq", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "messages",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("client_msg_id", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=False),
        sa.CheckConstraint("kind IN ('text', 'custom')", name=op.f("ck_messages_kind_known")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_messages_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("session_id", "seq", name="uq_messages_session_seq"),
        sa.UniqueConstraint(
            "session_id",
            "sender",
            "client_msg_id",
            name="uq_messages_session_sender_client_id",
        ),
    )


def downgrade() -> None:
    """Drop ``messages`` and the counter."""
    op.drop_table("messages")
    with op.batch_alter_table("room_sessions") as batch:
        batch.drop_column("last_msg_seq")
