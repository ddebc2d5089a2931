"""Add per-request reconciliation columns to token_usage (recon-job reconcile-requests).

A template for teams whose schema is managed by Alembic: copy it into your ``versions/``
directory, fill in the two revision ids marked FILL IN, and run ``alembic upgrade head``.

It adds ``openai_request_id`` (VARCHAR(128)), ``actual_cost_cents`` (NUMERIC(20, 6)),
``reconciliation_status`` (VARCHAR(16)) and the index ``ix_token_usage_openai_request_id``.
Each is added only when missing (checked with the inspector), so the migration is idempotent
and also works on a table that already has ``openai_request_id``, and on MySQL, which has no
``ADD COLUMN IF NOT EXISTS``. Teams without Alembic use the plain SQL files in ``deploy/sql/``.

The downgrade drops the two columns recon-job writes and the index. It keeps
``openai_request_id`` — many apps had it before this migration, and it holds the app's data —
unless ``DROP_REQUEST_ID_ON_DOWNGRADE`` is set to True.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# ---- FILL IN ---------------------------------------------------------------------------------
#: A new, unique revision id (e.g. from `alembic revision -m "token usage reconciliation"`).
revision = "FILL_IN_NEW_REVISION_ID"
#: Your current head revision (`alembic heads`); None only if this is your first migration.
down_revision: str | None = "FILL_IN_YOUR_HEAD_REVISION"
# -----------------------------------------------------------------------------------------------
branch_labels = None
depends_on = None

#: Your table's name, if it is not token_usage.
TABLE = "token_usage"
INDEX = "ix_token_usage_openai_request_id"
DROP_REQUEST_ID_ON_DOWNGRADE = False


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("openai_request_id", sa.String(128), nullable=True),
        sa.Column("actual_cost_cents", sa.Numeric(20, 6), nullable=True),
        sa.Column("reconciliation_status", sa.String(16), nullable=True),
    ]


def _existing() -> tuple[set[str], set[str]]:
    inspector = sa.inspect(op.get_bind())
    columns = {c["name"] for c in inspector.get_columns(TABLE)}
    indexes = {i["name"] for i in inspector.get_indexes(TABLE) if i["name"]}
    return columns, indexes


def upgrade() -> None:
    """Add whatever of the three columns and the index is missing."""
    columns, indexes = _existing()
    for column in _columns():
        if column.name not in columns:
            op.add_column(TABLE, column)
    if INDEX not in indexes:
        op.create_index(INDEX, TABLE, ["openai_request_id"])


def downgrade() -> None:
    """Drop the index and the columns recon-job writes (see the module docstring)."""
    columns, indexes = _existing()
    if INDEX in indexes:
        op.drop_index(INDEX, table_name=TABLE)
    dropped = ["actual_cost_cents", "reconciliation_status"]
    if DROP_REQUEST_ID_ON_DOWNGRADE:
        dropped.append("openai_request_id")
    for name in dropped:
        if name in columns:
            op.drop_column(TABLE, name)
