"""The history tables, as typed SQLAlchemy ORM classes.

These classes describe the schema at the newest migration; the migrations under
``migrations/versions/`` are what actually create it, and every change here needs a new
migration. Two rules keep later migrations painless on SQLite, which can only add columns:

* status columns are free text validated in Python, not CHECK constraints, so new run states
  (``interrupted``, ``abandoned``, ``skipped``) need no table rebuild;
* every constraint has a name (see ``NAMING_CONVENTION``), so Alembic batch mode can find it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from recon_job.store.types import ExactDecimal, UTCDateTime

#: Constraint names Alembic can refer to later (SQLite batch migrations need them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: SQLite only aliases the rowid for ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit id.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the history tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as is
        int: BigInteger(),
        Decimal: ExactDecimal(),
        datetime: UTCDateTime(),
        date: Date(),
    }


class Run(Base):
    """One reconciliation run: its window, state, totals and what it skipped.

    Totals, differences and counts stay NULL until the run finishes, and stay NULL for a failed
    run: a failed fetch is never recorded as zero usage.
    """

    __tablename__ = "runs"
    # AUTOINCREMENT: never reuse the id of a deleted run (notifications will refer to run ids).
    __table_args__ = (
        Index("ix_runs_window_key_started_at", "window_key", "started_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    window_kind: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[date]
    #: Exclusive, like ``Window.end``.
    window_end: Mapped[date]
    #: ``Window.key``: ``daily:2026-03-14``, ``monthly:2026-02``, ``range:A..B``.
    window_key: Mapped[str] = mapped_column(String(64))
    #: A ``RunStatus`` value.
    status: Mapped[str] = mapped_column(String(16))
    #: What started the run (``cli``, ``daemon``, the command line ...).
    trigger: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error_reason: Mapped[str | None] = mapped_column(String(100))
    #: Already redacted by the caller.
    error_message: Mapped[str | None] = mapped_column(Text)
    tool_version: Mapped[str] = mapped_column(String(32))
    #: ``hostname:pid`` of the process running it, so a later run can tell it died (0003).
    owner: Mapped[str | None] = mapped_column(String(300))

    threshold_pct: Mapped[Decimal | None]
    cost_floor: Mapped[Decimal | None]
    token_floor: Mapped[int | None]
    request_floor: Mapped[int | None]

    local_input_tokens: Mapped[int | None]
    local_cached_tokens: Mapped[int | None]
    local_output_tokens: Mapped[int | None]
    local_requests: Mapped[int | None]
    local_cost: Mapped[Decimal | None]
    openai_input_tokens: Mapped[int | None]
    openai_cached_tokens: Mapped[int | None]
    openai_output_tokens: Mapped[int | None]
    openai_requests: Mapped[int | None]
    openai_cost: Mapped[Decimal | None]
    diff_tokens: Mapped[int | None]
    diff_requests: Mapped[int | None]
    diff_cost: Mapped[Decimal | None]
    tokens_pct: Mapped[Decimal | None]
    requests_pct: Mapped[Decimal | None]
    cost_pct: Mapped[Decimal | None]
    #: JSON list of the metrics of the totals judged out of tolerance (0005; NULL before).
    exceeds: Mapped[str | None] = mapped_column(Text)

    group_count: Mapped[int | None] = mapped_column(Integer)
    mismatch_count: Mapped[int | None] = mapped_column(Integer)
    #: JSON list of ISO dates not yet settled.
    pending_days: Mapped[str | None] = mapped_column(Text)
    #: JSON object: skipped local records by reason.
    skipped: Mapped[str | None] = mapped_column(Text)
    #: JSON object: reason -> ``file:line`` of the first skipped records (0006; NULL before).
    skipped_locations: Mapped[str | None] = mapped_column(Text)
    #: JSON object: model -> usage (cost as a decimal string) that could not be priced.
    unpriced: Mapped[str | None] = mapped_column(Text)
    #: JSON object: facts about the fetch.
    info: Mapped[str | None] = mapped_column(Text)
    #: JSON object: source name -> local usage (cost as a decimal string), several sources only.
    sources: Mapped[str | None] = mapped_column(Text)
    #: JSON ``{"local": {quantity: n}, "openai": {...}}``: the totals' quantities beyond the
    #: token columns (images, seconds, token classes ...); NULL when none (0007).
    extras: Mapped[str | None] = mapped_column(Text)
    #: JSON list of ``{"family", <usage>}``: families billed that the local side has no record
    #: of, with OpenAI's usage of each (0007; NULL before).
    untracked: Mapped[str | None] = mapped_column(Text)
    #: JSON list of the families whose endpoint OpenAI did not know (0007; NULL before).
    unavailable_families: Mapped[str | None] = mapped_column(Text)
    #: JSON object: the run's diagnosis (``recon_job.report.diagnosis_dict``; 0008, NULL before
    #: and when nothing was diagnosed).
    diagnosis: Mapped[str | None] = mapped_column(Text)


class RunGroup(Base):
    """One day x model [x project x API key] group of a finished run."""

    __tablename__ = "run_groups"
    __table_args__ = (Index("ix_run_groups_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(_ID, ForeignKey("runs.id", ondelete="CASCADE"))
    day: Mapped[date]
    #: As logged or reported, any length (a log line may hold anything).
    model: Mapped[str] = mapped_column(Text)
    project_id: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[str | None] = mapped_column(Text)
    #: The usage family (``completions`` for every row written before 0007).
    family: Mapped[str] = mapped_column(Text, server_default="completions")

    local_input_tokens: Mapped[int]
    local_cached_tokens: Mapped[int]
    local_output_tokens: Mapped[int]
    local_requests: Mapped[int]
    local_cost: Mapped[Decimal]
    openai_input_tokens: Mapped[int]
    openai_cached_tokens: Mapped[int]
    openai_output_tokens: Mapped[int]
    openai_requests: Mapped[int]
    openai_cost: Mapped[Decimal]
    diff_tokens: Mapped[int]
    diff_requests: Mapped[int]
    diff_cost: Mapped[Decimal]
    tokens_pct: Mapped[Decimal | None]
    requests_pct: Mapped[Decimal | None]
    cost_pct: Mapped[Decimal | None]
    #: JSON list of the group's metrics judged out of tolerance (0005; NULL before).
    exceeds: Mapped[str | None] = mapped_column(Text)
    #: A ``recon_job.models.Status`` value.
    status: Mapped[str] = mapped_column(String(16))
    #: JSON ``{"local": {quantity: n}, "openai": {...}}`` of the family's quantities beyond the
    #: token columns (images, seconds, token classes ...); NULL when none (0007).
    extras: Mapped[str | None] = mapped_column(Text)


class Outbox(Base):
    """A notification waiting to be sent, or its final state (the transactional outbox, §4.1).

    Written in the same transaction as the run it belongs to; the relay claims due rows with a
    lease, sends them and records every attempt. ``(channel, dedupe_key)`` is unique so the same
    alert is never enqueued twice, whatever re-runs or concurrent jobs do.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("channel", "dedupe_key", name="uq_outbox_channel_dedupe_key"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_group_key_channel", "group_key", "channel"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    #: The run that enqueued it; None for messages not tied to a run (channel_failing, test).
    run_id: Mapped[int | None] = mapped_column(_ID, ForeignKey("runs.id", ondelete="SET NULL"))
    #: The alert group (``Window.key``) or ``channel:<name>`` for channel_failing messages.
    group_key: Mapped[str] = mapped_column(String(100))
    #: ``email``, ``slack``, ``webhook``.
    channel: Mapped[str] = mapped_column(String(32))
    #: An ``AlertEvent`` value.
    event: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    #: JSON object: every part of the rendered ``Message`` (no secrets).
    message: Mapped[str] = mapped_column(Text)
    #: JSON list: alert fingerprints firing, stored in ``notification_log`` once delivered.
    firing: Mapped[str | None] = mapped_column(Text)
    #: JSON list: alert fingerprints resolved, stored in ``notification_log`` once delivered.
    resolved: Mapped[str | None] = mapped_column(Text)
    #: pending, sending, sent, partial, failed, dead or suppressed.
    status: Mapped[str] = mapped_column(String(16))
    #: How many times a relay claimed it.
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    #: End of the current relay's lease while ``sending``.
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: Machine-readable reason of the last failure (``rate_limited``, ``channel_not_configured``).
    last_reason: Mapped[str | None] = mapped_column(String(100))
    #: Short readable error of the last failure, redacted by the caller.
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    """One attempt to deliver an outbox row: when, and how it went."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_delivery_attempts_outbox_id", "outbox_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(_ID, ForeignKey("outbox.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime]
    #: sent, partial, transient or permanent.
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(100))
    #: Redacted by the caller.
    error: Mapped[str | None] = mapped_column(Text)


class NotificationLogEntry(Base):
    """Alertmanager's nflog: the last notification delivered per (alert group, channel)."""

    __tablename__ = "notification_log"

    group_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: JSON list of alert fingerprints.
    firing: Mapped[str] = mapped_column(Text)
    #: JSON list of alert fingerprints.
    resolved: Mapped[str] = mapped_column(Text)
    last_sent_at: Mapped[datetime | None]
    last_event: Mapped[str | None] = mapped_column(String(32))
    #: The outbox row that wrote this entry: an older row delivered late never overwrites it.
    outbox_id: Mapped[int | None] = mapped_column(_ID)


class OpenAISeries(Base):
    """Usage API results fetched in hourly or minute buckets for a diagnosis (0008).

    Stored so that a rerun, ``recon-job explain`` or the dashboard never asks OpenAI again for
    the same family and interval.
    """

    __tablename__ = "openai_series"
    __table_args__ = (
        UniqueConstraint(
            "family", "width", "start_at", "end_at", name="uq_openai_series_family_width_span"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(64))
    #: ``1h`` or ``1m``.
    width: Mapped[str] = mapped_column(String(8))
    start_at: Mapped[datetime]
    #: Exclusive.
    end_at: Mapped[datetime]
    #: JSON list of ``{"start", "model", "project_id", <usage>}`` (cost as a decimal string).
    payload: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime]


class RestatementRow(Base):
    """OpenAI changed a figure of a day an earlier run had completed (0008)."""

    __tablename__ = "restatements"
    __table_args__ = (
        Index("ix_restatements_day", "day"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    #: The run that saw the new figure.
    run_id: Mapped[int | None] = mapped_column(_ID, ForeignKey("runs.id", ondelete="SET NULL"))
    #: The run the old figure came from.
    previous_run_id: Mapped[int | None] = mapped_column(_ID)
    day: Mapped[date]
    family: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    project_id: Mapped[str | None] = mapped_column(Text)
    #: ``requests``, ``tokens``, ``cost`` ...
    quantity: Mapped[str] = mapped_column(String(64))
    before: Mapped[Decimal]
    after: Mapped[Decimal]
    seen_at: Mapped[datetime]


class PriceFindingRow(Base):
    """A billed unit price that differs from the price table's, per model x piece x tier (0008)."""

    __tablename__ = "price_findings"
    __table_args__ = (
        UniqueConstraint(
            "model", "piece", "tier", "billed", name="uq_price_findings_model_piece_tier_billed"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    piece: Mapped[str] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    #: USD per ``unit``, as billed.
    billed: Mapped[Decimal]
    #: USD per ``unit`` in the price table when last seen; NULL: no rate there.
    table_price: Mapped[Decimal | None]
    unit: Mapped[str] = mapped_column(String(32))
    #: First UTC day seen billed at ``billed``.
    since: Mapped[date]
    #: Last UTC day seen billed at ``billed``.
    last_day: Mapped[date]
    first_seen_at: Mapped[datetime]


class CacheEntry(Base):
    """One opaque entry of a source's cache, kept with the history (0009).

    Generic on purpose: the store knows namespaces, keys and bytes, never what a source puts
    there (the NDJSON source: per log file, its aggregates per UTC day; see
    :mod:`recon_job.store.cache`). Keys are short digests, so the primary key fits every dialect.
    """

    __tablename__ = "cache_entries"

    #: Who owns the entry (``ndjson``): ``recon-job cache clear`` may drop one namespace.
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The entry's key within its namespace (a hex digest).
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: The entry, in its source's own format.
    value: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
