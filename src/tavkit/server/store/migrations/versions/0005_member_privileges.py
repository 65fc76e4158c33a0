"""Each membership's privileges (the privateMapKey's map), so the room can tell who publishes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``members.privileges``; existing rows had every privilege (255)."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(
            sa.Column("privileges", sa.BigInteger(), server_default="255", nullable=False)
        )


def downgrade() -> None:
    """Drop ``members.privileges``."""
    with op.batch_alter_table("members") as batch:
        batch.drop_column("privileges")
