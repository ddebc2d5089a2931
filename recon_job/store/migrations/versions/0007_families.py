"""Usage families in the history: each group's family and quantities, each run's untracked and
unavailable families, so a stored run is shown again as the run printed it (issue 10).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Groups are keyed by family since issue 10 (``text-embedding-3-small`` is an embeddings group,
``gpt-4o`` a completions one and, for web search, a web-search one too). ``run_groups.family``
is TEXT NOT NULL with the server default ``completions``: every row written before was one,
and SQLite adds such a column in place. The quantities other than input/cached/output tokens,
requests and cost (images, characters, seconds, the token classes ...) are a nullable TEXT
column ``extras`` on both tables: JSON ``{"local": {name: n}, "openai": {name: n}}`` of those
either side has, NULL when none. ``runs.untracked`` (JSON list of ``{"family", <usage>}``) and
``runs.unavailable_families`` (JSON list) are nullable TEXT; rows written before keep NULL and
show none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_RUN_COLUMNS = ("extras", "untracked", "unavailable_families")


def upgrade() -> None:
    """Add ``run_groups.family``/``extras`` and the three ``runs`` columns."""
    op.add_column(
        "run_groups",
        sa.Column("family", sa.Text(), nullable=False, server_default="completions"),
    )
    op.add_column("run_groups", sa.Column("extras", sa.Text(), nullable=True))
    for name in _RUN_COLUMNS:
        op.add_column("runs", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop them (a table rebuild on SQLite)."""
    with op.batch_alter_table("run_groups") as batch:
        batch.drop_column("extras")
        batch.drop_column("family")
    with op.batch_alter_table("runs") as batch:
        for name in reversed(_RUN_COLUMNS):
            batch.drop_column(name)
