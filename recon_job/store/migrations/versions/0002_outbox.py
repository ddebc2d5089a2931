"""Notifications: the transactional outbox, its delivery attempts and the notification log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-16

Self-contained on purpose, like 0001: the column types are spelled out here instead of imported
from the live schema.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[Any]:
    # SQLite only aliases the rowid for INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``outbox``, ``delivery_attempts`` and ``notification_log``."""
    op.create_table(
        "outbox",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("run_id", _id(), nullable=True),
        sa.Column("group_key", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("firing", sa.Text(), nullable=True),
        sa.Column("resolved", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _when(), nullable=False),
        sa.Column("claimed_until", _when(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("sent_at", _when(), nullable=True),
        sa.Column("last_reason", sa.String(100), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_outbox_run_id_runs", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("channel", "dedupe_key", name="uq_outbox_channel_dedupe_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_group_key_channel", "outbox", ["group_key", "channel"])

    op.create_table(
        "delivery_attempts",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("outbox_id", _id(), nullable=False),
        sa.Column("attempted_at", _when(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name="fk_delivery_attempts_outbox_id_outbox",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_attempts_outbox_id", "delivery_attempts", ["outbox_id"])

    op.create_table(
        "notification_log",
        sa.Column("group_key", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("firing", sa.Text(), nullable=False),
        sa.Column("resolved", sa.Text(), nullable=False),
        sa.Column("last_sent_at", _when(), nullable=True),
        sa.Column("last_event", sa.String(32), nullable=True),
        sa.Column("outbox_id", _id(), nullable=True),
        sa.PrimaryKeyConstraint("group_key", "channel", name="pk_notification_log"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("notification_log")
    op.drop_index("ix_delivery_attempts_outbox_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_outbox_group_key_channel", table_name="outbox")
    op.drop_index("ix_outbox_status_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
