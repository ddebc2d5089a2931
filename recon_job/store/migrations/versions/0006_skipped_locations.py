"""Where a run's skipped log lines are, so a stored run can be shown in full.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A run reports, per skip reason, the ``file:line`` of the first few local records it skipped
(``skipped_locations``, issue 9 item 30). A stored run is shown again as the same document the
run printed, so they are stored with it: one nullable TEXT column (a JSON object of reason ->
list of ``file:line``). SQLite adds it in place; rows written before keep NULL and show none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``runs.skipped_locations``."""
    op.add_column("runs", sa.Column("skipped_locations", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop it (a table rebuild on SQLite)."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("skipped_locations")
