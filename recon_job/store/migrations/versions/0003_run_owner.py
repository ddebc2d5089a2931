"""Run ownership: which process runs a run, so a later run can mark it abandoned.

Revision ID: 0003
Revises: 0002
Create Date: 2026-03-17

Only a nullable column is added: the new run states (``interrupted``, ``abandoned``,
``skipped``) need no schema change because ``runs.status`` has no CHECK constraint. SQLite can
add a column in place, so no table rebuild is needed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``runs.owner`` (``hostname:pid``), NULL for existing rows."""
    op.add_column("runs", sa.Column("owner", sa.String(300), nullable=True))


def downgrade() -> None:
    """Drop ``runs.owner`` (a table rebuild on SQLite)."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
