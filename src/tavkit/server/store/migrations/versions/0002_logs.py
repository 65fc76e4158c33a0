"""Client log lines and call-quality samples, per session and user.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``client_logs`` and ``quality_samples`` with their per-session indexes."""
    op.create_table(
        "client_logs",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("error_module", sa.String(length=8), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_msg", sa.String(length=500), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warn', 'error')",
            name=op.f("ck_client_logs_level_known"),
        ),
        sa.CheckConstraint(
            "(error_module IS NULL) = (error_code IS NULL)",
            name=op.f("ck_client_logs_error_has_code"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_client_logs_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_logs")),
    )
    op.create_index("ix_client_logs_session_at", "client_logs", ["session_id", "at"])
    op.create_index("ix_client_logs_session_user", "client_logs", ["session_id", "user_id", "at"])
    op.create_table(
        "quality_samples",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("peer_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("rtt_ms", sa.Double(), nullable=True),
        sa.Column("jitter_ms", sa.Double(), nullable=True),
        sa.Column("packet_loss", sa.Double(), nullable=True),
        sa.Column("bitrate_in_kbps", sa.Double(), nullable=True),
        sa.Column("bitrate_out_kbps", sa.Double(), nullable=True),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("candidate_type", sa.String(length=8), nullable=True),
        sa.CheckConstraint(
            "packet_loss IS NULL OR (packet_loss >= 0 AND packet_loss <= 1)",
            name=op.f("ck_quality_samples_loss_is_fraction"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_quality_samples_session_id_room_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_samples")),
    )
    op.create_index("ix_quality_samples_session_at", "quality_samples", ["session_id", "at"])
    op.create_index(
        "ix_quality_samples_session_user", "quality_samples", ["session_id", "user_id", "at"]
    )


def downgrade() -> None:
    """Drop both tables (their indexes go with them)."""
    op.drop_table("quality_samples")
    op.drop_table("client_logs")
