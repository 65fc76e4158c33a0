"""String room ids: a ``room_str`` beside ``room_id`` on sessions, members and the journal.

A room is ``(n, "")`` for the numeric room n or ``(0, s)`` for TRTC's string room s,
so room 123 and room ``"123"`` are different rows; the one-open-session index and
the room check constraint take the new column in.

Revision ID: 0010_string_rooms
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010_string_rooms"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_ROOM_KIND = (
    "(room_id BETWEEN 1 AND 4294967295 AND room_str = '') OR (room_id = 0 AND room_str <> '')"
)


def _room_str() -> sa.Column[str]:
    return sa.Column("room_str", sa.String(length=64), server_default="", nullable=False)


def upgrade() -> None:
    """Add ``room_str`` (``""`` for every existing, numeric, room) and widen the room rules."""
    op.drop_index("uq_room_sessions_open", table_name="room_sessions")
    op.drop_index("ix_room_sessions_app_room", table_name="room_sessions")
    with op.batch_alter_table("room_sessions") as batch:
        batch.add_column(_room_str())
        batch.drop_constraint(op.f("ck_room_sessions_room_id_u32"), type_="check")
        batch.create_check_constraint(op.f("ck_room_sessions_room_kind"), _ROOM_KIND)
    op.create_index(
        "uq_room_sessions_open",
        "room_sessions",
        ["sdk_app_id", "room_id", "room_str"],
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_room_sessions_app_room",
        "room_sessions",
        ["sdk_app_id", "room_id", "room_str", "opened_at"],
    )
    for table in ("members", "journal"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(_room_str())


def downgrade() -> None:
    """Drop string rooms' rows' distinction (string rooms must be gone first) and the column."""
    for table in ("journal", "members"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("room_str")
    op.drop_index("ix_room_sessions_app_room", table_name="room_sessions")
    op.drop_index("uq_room_sessions_open", table_name="room_sessions")
    with op.batch_alter_table("room_sessions") as batch:
        batch.drop_constraint(op.f("ck_room_sessions_room_kind"), type_="check")
        batch.drop_column("room_str")
        batch.create_check_constraint(
            op.f("ck_room_sessions_room_id_u32"), "room_id BETWEEN 1 AND 4294967295"
        )
    op.create_index(
        "uq_room_sessions_open",
        "room_sessions",
        ["sdk_app_id", "room_id"],
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_room_sessions_app_room", "room_sessions", ["sdk_app_id", "room_id", "opened_at"]
    )
