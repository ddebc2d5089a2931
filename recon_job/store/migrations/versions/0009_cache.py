"""The sources' cache in the history: one table of opaque entries (issue 13).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

``cache_entries`` holds what a source may take instead of reading again (the NDJSON source:
per log file, its aggregates per UTC day). It starts empty; dropping it loses nothing but time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def UTCDateTime() -> sa.types.TypeEngine[Any]:
    # Self-contained like 0001: the live type is a TypeDecorator over this.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the table ``cache_entries``."""
    op.create_table(
        "cache_entries",
        sa.Column("namespace", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "key", name="pk_cache_entries"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("cache_entries")
