"""SFU placement: which Janus holds each session's VideoRoom room (``sfu_rooms``).

Revision ID: 0012_sfu_rooms
Revises: 0011_calls
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sfu_rooms"
down_revision: str | None = "0011_calls"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``sfu_rooms``."""
    op.create_table(
        "sfu_rooms",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("janus_url", sa.String(length=255), nullable=False),
        sa.Column("placed_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_sfu_rooms_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sfu_rooms")),
    )
    op.create_index("ix_sfu_rooms_janus", "sfu_rooms", ["janus_url"])


def downgrade() -> None:
    """Drop ``sfu_rooms``."""
    op.drop_table("sfu_rooms")
