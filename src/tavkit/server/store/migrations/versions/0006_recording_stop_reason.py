"""Why each recording file ended (a member left, a quota, the disk floor, a crash...).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``recordings.stop_reason``; rows from before it have none (NULL)."""
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("stop_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Drop ``recordings.stop_reason``."""
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("stop_reason")
