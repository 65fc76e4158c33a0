"""An ``auto`` session's switch to the SFU, kept on its row (``room_sessions.sfu_since``).

Revision ID: 0013_session_sfu_since
Revises: 0012_sfu_rooms
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013_session_sfu_since"
down_revision: str | None = "0012_sfu_rooms"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``room_sessions.sfu_since``."""
    op.add_column("room_sessions", sa.Column("sfu_since", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop ``room_sessions.sfu_since``."""
    with op.batch_alter_table("room_sessions") as batch:
        batch.drop_column("sfu_since")
