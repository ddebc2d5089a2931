"""Diagnosis in the history: each run's findings, the hourly series fetched to locate gaps,
OpenAI's restatements of completed days and the billed prices that differ from the table's
(issue 12).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

``runs.diagnosis`` is nullable TEXT (JSON); rows written before keep NULL and show no diagnosis.
The three new tables start empty.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ExactDecimal() -> sa.types.TypeEngine[Any]:  # noqa: N802 -- reads like the live type
    # Self-contained like 0001: exact decimals as unconstrained NUMERIC or a decimal string.
    return sa.Text().with_variant(postgresql.NUMERIC(), "postgresql")


def UTCDateTime() -> sa.types.TypeEngine[Any]:  # noqa: N802 -- reads like the live type
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add ``runs.diagnosis`` and the tables ``openai_series``, ``restatements``,
    ``price_findings``."""
    op.add_column("runs", sa.Column("diagnosis", sa.Text(), nullable=True))
    op.create_table(
        "openai_series",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("width", sa.String(8), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "family", "width", "start_at", "end_at", name="uq_openai_series_family_width_span"
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "restatements",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            _ID,
            sa.ForeignKey("runs.id", ondelete="SET NULL", name="fk_restatements_run_id_runs"),
            nullable=True,
        ),
        sa.Column("previous_run_id", _ID, nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("family", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=True),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("before", ExactDecimal(), nullable=False),
        sa.Column("after", ExactDecimal(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_restatements_day", "restatements", ["day"])
    op.create_table(
        "price_findings",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("piece", sa.Text(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("billed", ExactDecimal(), nullable=False),
        sa.Column("table_price", ExactDecimal(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "model", "piece", "tier", "billed", name="uq_price_findings_model_piece_tier_billed"
        ),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop them (a table rebuild on SQLite for the column)."""
    op.drop_table("price_findings")
    op.drop_index("ix_restatements_day", table_name="restatements")
    op.drop_table("restatements")
    op.drop_table("openai_series")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("diagnosis")
