"""Calls: the call records (``calls``) and each callee's outcome (``call_callees``).

Revision ID: 0011_calls
Revises: 0010_string_rooms
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011_calls"
down_revision: str | None = "0010_string_rooms"
branch_labels: str | None = None
depends_on: str | None = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add ``calls`` and ``call_callees``."""
    op.create_table(
        "calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("media", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ring_until", sa.Double(), nullable=False),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["sdk_app_id"], ["apps.sdk_app_id"], name=op.f("fk_calls_sdk_app_id_apps")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["room_sessions.id"], name=op.f("fk_calls_session_id_room_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index("ix_calls_app_created", "calls", ["sdk_app_id", "created_at"])
    op.create_index("ix_calls_app_caller", "calls", ["sdk_app_id", "caller", "created_at"])
    op.create_index("ix_calls_state_ring", "calls", ["state", "ring_until"])
    op.create_index("ix_calls_session", "calls", ["session_id"])
    op.create_table(
        "call_callees",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("sdk_app_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("responded_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_callees_call_id_calls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_callees")),
    )
    op.create_index("uq_call_callees_user", "call_callees", ["call_id", "user_id"], unique=True)
    op.create_index(
        "ix_call_callees_app_user", "call_callees", ["sdk_app_id", "user_id", "outcome"]
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("call_callees")
    op.drop_table("calls")
