"""Recordings (one row per recorded file) and per-app settings (the recording policy).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``recordings`` and ``app_settings``."""
    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("stint", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("duration", sa.Double(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("has_video", sa.Boolean(), nullable=False),
        sa.Column("has_audio", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "status IN ('recording', 'complete', 'partial', 'failed')",
            name=op.f("ck_recordings_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_recordings_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("session_id", "user_id", "stint", name="uq_recordings_session_user"),
    )
    op.create_index("ix_recordings_session", "recordings", ["session_id", "started_at"])
    op.create_index("ix_recordings_status", "recordings", ["status"])
    op.create_table(
        "app_settings",
        sa.Column("sdk_app_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recording", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "recording IS NULL OR recording IN ('off', 'auto', 'on-demand')",
            name=op.f("ck_app_settings_recording_known"),
        ),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"],
            ["apps.sdk_app_id"],
            name=op.f("fk_app_settings_sdk_app_id_apps"),
        ),
        sa.PrimaryKeyConstraint("sdk_app_id", name=op.f("pk_app_settings")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("app_settings")
    op.drop_table("recordings")
