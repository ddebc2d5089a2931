"""The history database: every run, its totals and groups, and the notification outbox.

SQLAlchemy 2 on SQLite (default, ``sqlite:///recon_history.db``) or PostgreSQL, with the schema
created and upgraded by the Alembic migrations shipped in ``migrations/``. Only this package
touches the history database; everything else goes through :class:`HistoryStore` (or
:func:`probe_history`, which only looks, read-only).
"""

from __future__ import annotations

from recon_job.store.engine import DEFAULT_URL
from recon_job.store.history import HistoryStore
from recon_job.store.outbox_records import (
    Attempt,
    NotificationRecord,
    OutboxItem,
    OutboxRow,
    OutboxStatus,
    Outcome,
)
from recon_job.store.probe import HistoryProbe, probe_history
from recon_job.store.records import Difference, GroupRecord, RunRecord, RunStatus
from recon_job.store.retention import PRUNED_TABLES, PruneReport, retention_start

__all__ = [
    "DEFAULT_URL",
    "PRUNED_TABLES",
    "Attempt",
    "Difference",
    "GroupRecord",
    "HistoryProbe",
    "HistoryStore",
    "NotificationRecord",
    "OutboxItem",
    "OutboxRow",
    "OutboxStatus",
    "Outcome",
    "PruneReport",
    "RunRecord",
    "RunStatus",
    "probe_history",
    "retention_start",
]
