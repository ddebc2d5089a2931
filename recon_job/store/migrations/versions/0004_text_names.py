"""Model names, project ids and API key ids of any length.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``run_groups.model``, ``project_id`` and ``api_key_id`` were ``VARCHAR(200)``: one log line with
a 201-character model name made PostgreSQL refuse the whole result ("value too long for type
character varying(200)") and every later run of that period failed the same way. A name is
whatever a log can hold, so they become ``TEXT`` (SQLite never enforced the length; the table is
rebuilt there by ``batch_alter_table`` only when its definition changes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = ("model", "project_id", "api_key_id")


def upgrade() -> None:
    """Widen the three name columns of ``run_groups`` to TEXT."""
    with op.batch_alter_table("run_groups") as batch:
        for name in _COLUMNS:
            batch.alter_column(
                name, type_=sa.Text(), existing_type=sa.String(200), existing_nullable=name != "model"
            )


def downgrade() -> None:
    """Back to VARCHAR(200) (fails if a longer name is stored, as it should)."""
    with op.batch_alter_table("run_groups") as batch:
        for name in _COLUMNS:
            batch.alter_column(
                name, type_=sa.String(200), existing_type=sa.Text(), existing_nullable=name != "model"
            )
