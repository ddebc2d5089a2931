"""The history tables, as SQLAlchemy Core tables.

These tables describe the schema at the newest migration; the migrations under
``migrations/versions/`` are what actually create it, and every change here needs a new
migration. Two rules keep later migrations painless on SQLite, which can only add columns:

* status columns are free text validated in Python, not CHECK constraints, so new run states
  (``interrupted``, ``abandoned``, ``skipped``) need no table rebuild;
* every constraint has a name (see ``NAMING_CONVENTION``), so Alembic batch mode can find it.

Core, not the ORM: the store reads and writes rows with explicit statements, and a run that
imports no ``sqlalchemy.orm`` and declares no mapped classes starts about 0.1 s sooner.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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

#: Every history table (Alembic compares it with the migrations).
metadata = MetaData(naming_convention=NAMING_CONVENTION)


# One reconciliation run: its window, state, totals and what it skipped.
#
# Totals, differences and counts stay NULL until the run finishes, and stay NULL for a failed
# run: a failed fetch is never recorded as zero usage.
runs = Table(
    "runs",
    metadata,
    # AUTOINCREMENT: never reuse the id of a deleted run (notifications will refer to run ids).
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("window_kind", String(16), nullable=False),
    Column("window_start", Date(), nullable=False),
    # Exclusive, like ``Window.end``.
    Column("window_end", Date(), nullable=False),
    # ``Window.key``: ``daily:2026-03-14``, ``monthly:2026-02``, ``range:A..B``.
    Column("window_key", String(64), nullable=False),
    # A ``RunStatus`` value.
    Column("status", String(16), nullable=False),
    # What started the run (``cli``, ``daemon``, the command line ...).
    Column("trigger", Text(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("error_reason", String(100), nullable=True),
    # Already redacted by the caller.
    Column("error_message", Text(), nullable=True),
    Column("tool_version", String(32), nullable=False),
    # ``hostname:pid`` of the process running it, so a later run can tell it died (0003).
    Column("owner", String(300), nullable=True),
    Column("threshold_pct", ExactDecimal(), nullable=True),
    Column("cost_floor", ExactDecimal(), nullable=True),
    Column("token_floor", BigInteger(), nullable=True),
    Column("request_floor", BigInteger(), nullable=True),
    Column("local_input_tokens", BigInteger(), nullable=True),
    Column("local_cached_tokens", BigInteger(), nullable=True),
    Column("local_output_tokens", BigInteger(), nullable=True),
    Column("local_requests", BigInteger(), nullable=True),
    Column("local_cost", ExactDecimal(), nullable=True),
    Column("openai_input_tokens", BigInteger(), nullable=True),
    Column("openai_cached_tokens", BigInteger(), nullable=True),
    Column("openai_output_tokens", BigInteger(), nullable=True),
    Column("openai_requests", BigInteger(), nullable=True),
    Column("openai_cost", ExactDecimal(), nullable=True),
    Column("diff_tokens", BigInteger(), nullable=True),
    Column("diff_requests", BigInteger(), nullable=True),
    Column("diff_cost", ExactDecimal(), nullable=True),
    Column("tokens_pct", ExactDecimal(), nullable=True),
    Column("requests_pct", ExactDecimal(), nullable=True),
    Column("cost_pct", ExactDecimal(), nullable=True),
    # JSON list of the metrics of the totals judged out of tolerance (0005; NULL before).
    Column("exceeds", Text(), nullable=True),
    Column("group_count", Integer, nullable=True),
    Column("mismatch_count", Integer, nullable=True),
    # JSON list of ISO dates not yet settled.
    Column("pending_days", Text(), nullable=True),
    # JSON object: skipped local records by reason.
    Column("skipped", Text(), nullable=True),
    # JSON object: reason -> ``file:line`` of the first skipped records (0006; NULL before).
    Column("skipped_locations", Text(), nullable=True),
    # JSON object: model -> usage (cost as a decimal string) that could not be priced.
    Column("unpriced", Text(), nullable=True),
    # JSON object: facts about the fetch.
    Column("info", Text(), nullable=True),
    # JSON object: source name -> local usage (cost as a decimal string), several sources only.
    Column("sources", Text(), nullable=True),
    # JSON ``{"local": {quantity: n}, "openai": {...}}``: the totals' quantities beyond the
    # token columns (images, seconds, token classes ...); NULL when none (0007).
    Column("extras", Text(), nullable=True),
    # JSON list of ``{"family", <usage>}``: families billed that the local side has no record
    # of, with OpenAI's usage of each (0007; NULL before).
    Column("untracked", Text(), nullable=True),
    # JSON list of the families whose endpoint OpenAI did not know (0007; NULL before).
    Column("unavailable_families", Text(), nullable=True),
    # JSON object: the run's diagnosis (``recon_job.report.diagnosis_dict``; 0008, NULL before
    # and when nothing was diagnosed).
    Column("diagnosis", Text(), nullable=True),
    Index("ix_runs_window_key_started_at", "window_key", "started_at"),
    sqlite_autoincrement=True,
)

# One day x model [x project x API key] group of a finished run.
run_groups = Table(
    "run_groups",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", _ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date(), nullable=False),
    # As logged or reported, any length (a log line may hold anything).
    Column("model", Text(), nullable=False),
    Column("project_id", Text(), nullable=True),
    Column("api_key_id", Text(), nullable=True),
    # The usage family (``completions`` for every row written before 0007).
    Column("family", Text(), server_default="completions", nullable=False),
    Column("local_input_tokens", BigInteger(), nullable=False),
    Column("local_cached_tokens", BigInteger(), nullable=False),
    Column("local_output_tokens", BigInteger(), nullable=False),
    Column("local_requests", BigInteger(), nullable=False),
    Column("local_cost", ExactDecimal(), nullable=False),
    Column("openai_input_tokens", BigInteger(), nullable=False),
    Column("openai_cached_tokens", BigInteger(), nullable=False),
    Column("openai_output_tokens", BigInteger(), nullable=False),
    Column("openai_requests", BigInteger(), nullable=False),
    Column("openai_cost", ExactDecimal(), nullable=False),
    Column("diff_tokens", BigInteger(), nullable=False),
    Column("diff_requests", BigInteger(), nullable=False),
    Column("diff_cost", ExactDecimal(), nullable=False),
    Column("tokens_pct", ExactDecimal(), nullable=True),
    Column("requests_pct", ExactDecimal(), nullable=True),
    Column("cost_pct", ExactDecimal(), nullable=True),
    # JSON list of the group's metrics judged out of tolerance (0005; NULL before).
    Column("exceeds", Text(), nullable=True),
    # A ``recon_job.models.Status`` value.
    Column("status", String(16), nullable=False),
    # JSON ``{"local": {quantity: n}, "openai": {...}}`` of the family's quantities beyond the
    # token columns (images, seconds, token classes ...); NULL when none (0007).
    Column("extras", Text(), nullable=True),
    Index("ix_run_groups_run_id", "run_id"),
)

# A notification waiting to be sent, or its final state (the transactional outbox, §4.1).
#
# Written in the same transaction as the run it belongs to; the relay claims due rows with a
# lease, sends them and records every attempt. ``(channel, dedupe_key)`` is unique so the same
# alert is never enqueued twice, whatever re-runs or concurrent jobs do.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # The run that enqueued it; None for messages not tied to a run (channel_failing, test).
    Column("run_id", _ID, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    # The alert group (``Window.key``) or ``channel:<name>`` for channel_failing messages.
    Column("group_key", String(100), nullable=False),
    # ``email``, ``slack``, ``webhook``.
    Column("channel", String(32), nullable=False),
    # An ``AlertEvent`` value.
    Column("event", String(32), nullable=False),
    Column("dedupe_key", String(64), nullable=False),
    Column("subject", Text(), nullable=False),
    # JSON object: every part of the rendered ``Message`` (no secrets).
    Column("message", Text(), nullable=False),
    # JSON list: alert fingerprints firing, stored in ``notification_log`` once delivered.
    Column("firing", Text(), nullable=True),
    # JSON list: alert fingerprints resolved, stored in ``notification_log`` once delivered.
    Column("resolved", Text(), nullable=True),
    # pending, sending, sent, partial, failed, dead or suppressed.
    Column("status", String(16), nullable=False),
    # How many times a relay claimed it.
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # End of the current relay's lease while ``sending``.
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    # Machine-readable reason of the last failure (``rate_limited``, ``channel_not_configured``).
    Column("last_reason", String(100), nullable=True),
    # Short readable error of the last failure, redacted by the caller.
    Column("last_error", Text(), nullable=True),
    UniqueConstraint("channel", "dedupe_key", name="uq_outbox_channel_dedupe_key"),
    Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_outbox_group_key_channel", "group_key", "channel"),
    sqlite_autoincrement=True,
)

# One attempt to deliver an outbox row: when, and how it went.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("outbox_id", _ID, ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", UTCDateTime(), nullable=False),
    # sent, partial, transient or permanent.
    Column("outcome", String(16), nullable=False),
    Column("reason", String(100), nullable=True),
    # Redacted by the caller.
    Column("error", Text(), nullable=True),
    Index("ix_delivery_attempts_outbox_id", "outbox_id"),
    sqlite_autoincrement=True,
)

# Alertmanager's nflog: the last notification delivered per (alert group, channel).
notification_log = Table(
    "notification_log",
    metadata,
    Column("group_key", String(100), primary_key=True),
    Column("channel", String(32), primary_key=True),
    # JSON list of alert fingerprints.
    Column("firing", Text(), nullable=False),
    # JSON list of alert fingerprints.
    Column("resolved", Text(), nullable=False),
    Column("last_sent_at", UTCDateTime(), nullable=True),
    Column("last_event", String(32), nullable=True),
    # The outbox row that wrote this entry: an older row delivered late never overwrites it.
    Column("outbox_id", _ID, nullable=True),
)

# Usage API results fetched in hourly or minute buckets for a diagnosis (0008).
#
# Stored so that a rerun, ``recon-job explain`` or the dashboard never asks OpenAI again for
# the same family and interval.
openai_series = Table(
    "openai_series",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("family", String(64), nullable=False),
    # ``1h`` or ``1m``.
    Column("width", String(8), nullable=False),
    Column("start_at", UTCDateTime(), nullable=False),
    # Exclusive.
    Column("end_at", UTCDateTime(), nullable=False),
    # JSON list of ``{"start", "model", "project_id", <usage>}`` (cost as a decimal string).
    Column("payload", Text(), nullable=False),
    Column("fetched_at", UTCDateTime(), nullable=False),
    UniqueConstraint(
        "family", "width", "start_at", "end_at", name="uq_openai_series_family_width_span"
    ),
    sqlite_autoincrement=True,
)

# OpenAI changed a figure of a day an earlier run had completed (0008).
restatements = Table(
    "restatements",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # The run that saw the new figure.
    Column("run_id", _ID, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    # The run the old figure came from.
    Column("previous_run_id", _ID, nullable=True),
    Column("day", Date(), nullable=False),
    Column("family", Text(), nullable=False),
    Column("model", Text(), nullable=False),
    Column("project_id", Text(), nullable=True),
    # ``requests``, ``tokens``, ``cost`` ...
    Column("quantity", String(64), nullable=False),
    Column("before", ExactDecimal(), nullable=False),
    Column("after", ExactDecimal(), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    Index("ix_restatements_day", "day"),
    sqlite_autoincrement=True,
)

# A billed unit price that differs from the price table's, per model x piece x tier (0008).
price_findings = Table(
    "price_findings",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("model", Text(), nullable=False),
    Column("piece", Text(), nullable=False),
    Column("tier", String(16), nullable=False),
    # USD per ``unit``, as billed.
    Column("billed", ExactDecimal(), nullable=False),
    # USD per ``unit`` in the price table when last seen; NULL: no rate there.
    Column("table_price", ExactDecimal(), nullable=True),
    Column("unit", String(32), nullable=False),
    # First UTC day seen billed at ``billed``.
    Column("since", Date(), nullable=False),
    # Last UTC day seen billed at ``billed``.
    Column("last_day", Date(), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    UniqueConstraint(
        "model", "piece", "tier", "billed", name="uq_price_findings_model_piece_tier_billed"
    ),
    sqlite_autoincrement=True,
)

# One opaque entry of a source's cache, kept with the history (0009).
#
# Generic on purpose: the store knows namespaces, keys and bytes, never what a source puts
# there (the NDJSON source: per log file, its aggregates per UTC day; see
# :mod:`recon_job.store.cache`). Keys are short digests, so the primary key fits every dialect.
cache_entries = Table(
    "cache_entries",
    metadata,
    # Who owns the entry (``ndjson``): ``recon-job cache clear`` may drop one namespace.
    Column("namespace", String(32), primary_key=True),
    # The entry's key within its namespace (a hex digest).
    Column("key", String(128), primary_key=True),
    # The entry, in its source's own format.
    Column("value", LargeBinary(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
