"""Initial history schema: runs and their per-group rows.

Revision ID: 0001
Revises:
Create Date: 2026-03-15

Self-contained on purpose: it spells out the column types instead of importing the live schema,
so later changes to ``schema.py`` cannot change what this revision creates.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[Any]:
    # SQLite only aliases the rowid for INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _money() -> sa.types.TypeEngine[Any]:
    # Exact decimals: unconstrained NUMERIC on PostgreSQL, a canonical decimal string elsewhere.
    return sa.Text().with_variant(postgresql.NUMERIC(), "postgresql")


def _when() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def _usage_columns(nullable: bool) -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = []
    for side in ("local", "openai"):
        for name in ("input_tokens", "cached_tokens", "output_tokens", "requests"):
            columns.append(sa.Column(f"{side}_{name}", sa.BigInteger(), nullable=nullable))
        columns.append(sa.Column(f"{side}_cost", _money(), nullable=nullable))
    columns += [
        sa.Column("diff_tokens", sa.BigInteger(), nullable=nullable),
        sa.Column("diff_requests", sa.BigInteger(), nullable=nullable),
        sa.Column("diff_cost", _money(), nullable=nullable),
        sa.Column("tokens_pct", _money(), nullable=True),
        sa.Column("requests_pct", _money(), nullable=True),
        sa.Column("cost_pct", _money(), nullable=True),
    ]
    return columns


def upgrade() -> None:
    """Create ``runs`` and ``run_groups``."""
    op.create_table(
        "runs",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("window_kind", sa.String(16), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("window_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("finished_at", _when(), nullable=True),
        sa.Column("error_reason", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("threshold_pct", _money(), nullable=True),
        sa.Column("cost_floor", _money(), nullable=True),
        sa.Column("token_floor", sa.BigInteger(), nullable=True),
        sa.Column("request_floor", sa.BigInteger(), nullable=True),
        *_usage_columns(nullable=True),
        sa.Column("group_count", sa.Integer(), nullable=True),
        sa.Column("mismatch_count", sa.Integer(), nullable=True),
        sa.Column("pending_days", sa.Text(), nullable=True),
        sa.Column("skipped", sa.Text(), nullable=True),
        sa.Column("unpriced", sa.Text(), nullable=True),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("sources", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_window_key_started_at", "runs", ["window_key", "started_at"])

    op.create_table(
        "run_groups",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("run_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("project_id", sa.String(200), nullable=True),
        sa.Column("api_key_id", sa.String(200), nullable=True),
        *_usage_columns(nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_groups"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_groups_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_run_groups_run_id", "run_groups", ["run_id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_run_groups_run_id", table_name="run_groups")
    op.drop_table("run_groups")
    op.drop_index("ix_runs_window_key_started_at", table_name="runs")
    op.drop_table("runs")
