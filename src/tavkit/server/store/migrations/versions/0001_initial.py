"""Apps, room sessions, memberships and the session event log.

Revision ID: 0001
Revises:
Create Date: 2024-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the four tables and the indexes that hold the room rules."""
    op.create_table(
        "apps",
        sa.Column("sdk_app_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sdk_app_id", name=op.f("pk_apps")),
    )
    op.create_table(
        "room_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.Double(), nullable=False),
        sa.Column("empty_since", sa.Double(), nullable=True),
        sa.Column("closed_at", sa.Double(), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "room_id BETWEEN 1 AND 4294967295", name=op.f("ck_room_sessions_room_id_u32")
        ),
        sa.CheckConstraint(
            "(closed_at IS NULL) = (close_reason IS NULL)",
            name=op.f("ck_room_sessions_closed_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"],
            ["apps.sdk_app_id"],
            name=op.f("fk_room_sessions_sdk_app_id_apps"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_sessions")),
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
    op.create_table(
        "members",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("joined_at", sa.Double(), nullable=False),
        sa.Column("last_heartbeat", sa.Double(), nullable=False),
        sa.Column("left_at", sa.Double(), nullable=True),
        sa.Column("leave_reason", sa.String(length=16), nullable=True),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("camera", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "(left_at IS NULL) = (leave_reason IS NULL)", name=op.f("ck_members_left_has_reason")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_members_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("connection_id", name=op.f("uq_members_connection_id")),
    )
    op.create_index(
        "uq_members_live_user",
        "members",
        ["sdk_app_id", "user_id"],
        unique=True,
        sqlite_where=sa.text("left_at IS NULL"),
        postgresql_where=sa.text("left_at IS NULL"),
    )
    op.create_index("ix_members_session", "members", ["session_id", "joined_at"])
    op.create_index("ix_members_app_user", "members", ["sdk_app_id", "user_id", "id"])
    op.create_index(
        "ix_members_live_heartbeat",
        "members",
        ["last_heartbeat"],
        sqlite_where=sa.text("left_at IS NULL"),
        postgresql_where=sa.text("left_at IS NULL"),
    )
    op.create_table(
        "session_events",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_session_events_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_events")),
    )
    op.create_index("ix_session_events_session", "session_events", ["session_id", "id"])


def downgrade() -> None:
    """Drop everything this revision created."""
    op.drop_table("session_events")
    op.drop_table("members")
    op.drop_table("room_sessions")
    op.drop_table("apps")
