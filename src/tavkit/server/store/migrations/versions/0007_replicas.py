"""State that several replicas share: a connection's first socket and the recording lease.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``members.socket_opened_at`` and the session's recording lease columns."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("socket_opened_at", sa.Double(), nullable=True))
    with op.batch_alter_table("room_sessions") as batch:
        batch.add_column(sa.Column("recorder_replica", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("recorder_lease_until", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("room_sessions") as batch:
        batch.drop_column("recorder_lease_until")
        batch.drop_column("recorder_replica")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("socket_opened_at")
