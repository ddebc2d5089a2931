"""What exceeded the tolerance, per run and per group, so a stored run can be shown in full.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

``recon-job run --date D`` of a completed period prints the stored result of its last completed
run (the same document as the run printed). Everything in it is stored already or follows from
the stored figures, except which quantities were judged out of tolerance: that depends on the
rule of the version that judged them (and on the OpenAI cost being attributed to models), so it
is stored as it was decided. Two nullable TEXT columns (a JSON list of metric names); SQLite adds
them in place. Rows written before this revision keep NULL and are judged again when shown.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``runs.exceeds`` and ``run_groups.exceeds``."""
    op.add_column("runs", sa.Column("exceeds", sa.Text(), nullable=True))
    op.add_column("run_groups", sa.Column("exceeds", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop both columns (a table rebuild on SQLite)."""
    for table in ("run_groups", "runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("exceeds")
