"""Per-request reconciliation's database table: reading its rows, and the write-back.

:class:`RequestTable` is the only code that touches a team's database for
``reconcile-requests``. Reading streams the rows through a server-side cursor
(``stream_results``/``yield_per``), so a table of millions of rows never sits in memory at once.
Writing is a batched ``UPDATE ... WHERE <request id column> = :id`` sent with Core
``executemany``, **one transaction per batch**: a batch that fails is rolled back entirely while
the batches before it stay committed. Batches are independent on purpose — a write-back of a
month of requests must not hold locks on the app's hot table for minutes — and safe to re-run,
because every update sets absolute values (the write-back is idempotent).

Database errors are translated here: an unreachable server is a transient
:class:`~recon_job.errors.LogSourceError` (``database_unreachable``), everything else a
permanent one. Messages show URLs with the password hidden and never quote it. What the rows
mean (estimated costs) is :mod:`recon_job.per_request.local`'s business.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import exc
from sqlalchemy.engine import URL, Engine

from recon_job.database import display_url, first_line, is_transient, parse_url
from recon_job.errors import LogSourceError

log = structlog.get_logger(__name__)

EV_BATCH_WRITTEN = "recon.requests.batch_written"
EV_BATCH_FAILED = "recon.requests.batch_failed"

#: Columns the write-back sets; the migrations in ``deploy/`` add them.
ACTUAL_COLUMN = "actual_cost_cents"
STATUS_COLUMN = "reconciliation_status"
WRITEBACK_COLUMNS = (ACTUAL_COLUMN, STATUS_COLUMN)
#: Where the migrations live in the repository, per dialect, as named in error messages.
MIGRATIONS = {
    "postgresql": "deploy/sql/token_usage_reconciliation.postgresql.sql",
    "mysql": "deploy/sql/token_usage_reconciliation.mysql.sql",
    "mariadb": "deploy/sql/token_usage_reconciliation.mysql.sql",
}
ALEMBIC_TEMPLATE = "deploy/alembic/add_token_usage_reconciliation.py"

#: Canonical names a row may carry, besides ``request_id`` (always selected).
ROW_FIELDS = (
    "timestamp",
    "model",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "cost",
    "batch",
    "service_tier",
)

#: One update: (request id, actual cost in cents or None, reconciliation status).
Update = tuple[str, Decimal | None, str]


@dataclass(frozen=True, slots=True)
class _Batch:
    """One batch of a write-back, as its error message names it."""

    #: 1 for the first batch.
    number: int
    #: How many batches the write-back has.
    of: int
    #: Index of the batch's first update among all updates (0-based).
    start: int
    #: How many updates the batch holds.
    size: int


class RequestTable:
    """One configured table of per-request usage rows (a ``kind = "sql"`` source)."""

    def __init__(
        self,
        url: str,
        table: str,
        columns: Mapping[str, str],
        *,
        filter: str | None = None,
        name: str = "",
    ) -> None:
        """``columns`` maps canonical names to column names and must include ``request_id``."""
        self.name = name or table
        self.url = _parse_url(url, self.name)
        self.display_url = display_url(self.url)
        self.schema, _, self.table_name = table.rpartition(".")
        self.columns = dict(columns)
        self.request_column = self.columns["request_id"]
        self.filter = filter
        self._engine: Engine | None = None

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """The backend name: ``postgresql``, ``mysql``, ``mariadb``, ``sqlite`` ..."""
        return self.url.get_backend_name()

    def engine(self) -> Engine:
        """The engine, created on first use; does not connect."""
        if self._engine is None:
            kwargs: dict[str, Any] = {}
            if self.dialect in ("postgresql", "mysql", "mariadb"):
                # A server that drops packets would otherwise hang for the OS TCP timeout.
                kwargs["connect_args"] = {"connect_timeout": 10}
            try:
                self._engine = sa.create_engine(self.url, **kwargs)
            except (exc.ArgumentError, ImportError) as e:
                raise LogSourceError(
                    f"source {self.name!r}: cannot use database {self.display_url}: "
                    f"{self._clean(e)}; install the driver (recon-job[postgres] or "
                    "recon-job[mysql]) or fix the URL",
                    permanent=True,
                    reason="bad_database_url",
                ) from e
        return self._engine

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _clean(self, error: BaseException) -> str:
        """The first line of a driver message, with the password cut out should it appear."""
        return first_line(error, self.url)

    def _error(self, error: exc.SQLAlchemyError, doing: str) -> LogSourceError:
        if is_transient(error):
            return LogSourceError(
                f"source {self.name!r}: database {self.display_url} is unreachable while "
                f"{doing} ({self._clean(error)}); check that it is running and reachable, "
                "then run again",
                permanent=False,
                reason="database_unreachable",
            )
        return LogSourceError(
            f"source {self.name!r}: database error while {doing} on table "
            f"{self._qualified} ({self._clean(error)})",
            permanent=True,
            reason="database_error",
        )

    @property
    def _qualified(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    def _table(self, *names: str) -> sa.TableClause:
        # Lightweight constructs: SQLAlchemy quotes the configured names, no reflection needed.
        return sa.table(self.table_name, *(sa.column(n) for n in names), schema=self.schema or None)

    # -- checks ----------------------------------------------------------------------------------

    def existing_columns(self) -> set[str]:
        """The table's column names; a permanent error when the table does not exist."""
        try:
            with self.engine().connect() as conn:
                found = sa.inspect(conn).get_columns(self.table_name, schema=self.schema or None)
        except exc.NoSuchTableError as e:
            raise LogSourceError(
                f"source {self.name!r}: table {self._qualified} does not exist in "
                f"{self.display_url}; fix `table` in the source's config",
                permanent=True,
                reason="no_such_table",
            ) from e
        except exc.SQLAlchemyError as e:
            raise self._error(e, "reading the table's columns") from e
        return {str(c["name"]) for c in found}

    def check_mapped_columns(self, existing: set[str]) -> None:
        """A permanent error naming every mapped column the table lacks."""
        missing = sorted(
            f"{name} -> {column!r}"
            for name, column in self.columns.items()
            if column not in existing and (name == "request_id" or name in ROW_FIELDS)
        )
        if missing:
            raise LogSourceError(
                f"source {self.name!r}: table {self._qualified} has no column(s) "
                f"{', '.join(missing)}; it has {', '.join(sorted(existing))}. Fix the "
                "source's `columns` mapping or run the migration (openai_request_id) in "
                f"{self.migration_hint()}",
                permanent=True,
                reason="missing_columns",
            )

    def migration_hint(self) -> str:
        """Which migration file adds the write-back columns on this dialect."""
        plain = MIGRATIONS.get(self.dialect)
        if plain is not None:
            return f"{plain} (or the Alembic template {ALEMBIC_TEMPLATE})"
        return (
            f"the Alembic template {ALEMBIC_TEMPLATE} (or ALTER TABLE {self._qualified} ADD "
            f"COLUMN {ACTUAL_COLUMN} NUMERIC(20, 6); ALTER TABLE {self._qualified} ADD COLUMN "
            f"{STATUS_COLUMN} VARCHAR(16))"
        )

    def require_writeback_columns(self, existing: set[str]) -> None:
        """A permanent error pointing at the migration when a write-back column is missing."""
        missing = [c for c in WRITEBACK_COLUMNS if c not in existing]
        if missing:
            raise LogSourceError(
                f"source {self.name!r}: table {self._qualified} has no column(s) "
                f"{', '.join(missing)} to write actual costs back to; add them with "
                f"{self.migration_hint()}, then run with --apply again",
                permanent=True,
                reason="missing_writeback_columns",
            )

    # -- reading ---------------------------------------------------------------------------------

    def rows(self, *, yield_per: int = 5000) -> Iterator[sa.Row[Any]]:
        """Every row with a request id, its mapped fields labelled by their canonical names.

        Streams through a server-side cursor; the connection stays open until the iterator is
        exhausted or closed. Rows carry ``request_id`` plus whichever of :data:`ROW_FIELDS` the
        source maps.
        """
        names = [n for n in ROW_FIELDS if n in self.columns]
        table = self._table(self.request_column, *(self.columns[n] for n in names))
        request_id = table.c[self.request_column]
        query = sa.select(
            request_id.label("request_id"), *(table.c[self.columns[n]].label(n) for n in names)
        ).where(request_id.is_not(None))
        if self.filter:
            query = query.where(sa.text(self.filter))
        try:
            with self.engine().connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=yield_per).execute(
                    query
                )
                yield from result
        except exc.SQLAlchemyError as e:
            raise self._error(e, "reading rows") from e

    # -- writing ---------------------------------------------------------------------------------

    def write(
        self,
        updates: Iterable[Update],
        *,
        batch_size: int = 1000,
        progress: Callable[[int, int], None] | None = None,
        total: int | None = None,
    ) -> int:
        """Send ``updates`` in batches, one transaction each; return how many rows were sent.

        ``updates`` is read one batch at a time; ``total`` says how many there are when it is
        not a sequence (else it is made one), for the batch numbers messages and progress give.

        The count is of updates sent, not of rows the server reports changed (MariaDB counts
        only rows whose values changed), so a repeated run reports the same number. A failing
        batch is rolled back and raises a LogSourceError naming it; earlier batches stay.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        table = self._table(self.request_column, ACTUAL_COLUMN, STATUS_COLUMN)
        condition = table.c[self.request_column] == sa.bindparam("b_id", type_=sa.String())
        if self.filter:
            # Never touch rows outside the configured source, even with the same request id.
            condition = sa.and_(condition, sa.text(self.filter))
        statement = (
            sa.update(table)
            .where(condition)
            .values(
                {
                    ACTUAL_COLUMN: sa.bindparam("b_cents", type_=sa.Numeric(20, 6)),
                    STATUS_COLUMN: sa.bindparam("b_status", type_=sa.String(16)),
                }
            )
        )
        if total is None:
            updates = updates if isinstance(updates, Sequence) else list(updates)
            total = len(updates)
        batches = (total + batch_size - 1) // batch_size
        done = 0
        pending = iter(updates)
        for number in itertools.count(1):
            chunk = list(itertools.islice(pending, batch_size))
            if not chunk:
                break
            start = done  # every earlier batch was sent whole, or this one is not reached
            params = [{"b_id": i, "b_cents": c, "b_status": s} for i, c, s in chunk]
            try:
                with self.engine().begin() as conn:
                    conn.execute(statement, params)
            except exc.SQLAlchemyError as e:
                log.warning(EV_BATCH_FAILED, source=self.name, batch=number, batches=batches)
                batch = _Batch(number, batches, start, len(chunk))
                raise self._batch_error(e, batch, done) from e
            done += len(chunk)
            log.debug(EV_BATCH_WRITTEN, source=self.name, batch=number, rows=len(chunk))
            if progress is not None:
                progress(done, total)
        return done

    def _batch_error(self, error: exc.SQLAlchemyError, batch: _Batch, done: int) -> LogSourceError:
        number, batches = batch.number, batch.of
        cause = self._error(error, f"writing batch {number} of {batches}")
        if number == 1:
            kept = "nothing was written"
        else:
            kept = (
                f"the {done} updates of batches 1–{number - 1} stay committed "
                "(each batch is its own transaction)"
            )
        first, last = batch.start + 1, batch.start + batch.size
        return LogSourceError(
            f"{cause.message}. Batch {number} of {batches} (updates {first}–{last}) "
            f"was rolled back entirely; {kept}. Fix the cause and run again: the write-back is "
            "idempotent, so a re-run rewrites the same values",
            permanent=cause.permanent,
            reason=cause.reason if not cause.permanent else "writeback_failed",
        )


def _parse_url(url: str, name: str) -> URL:
    try:
        return parse_url(url)
    except ValueError as e:
        raise LogSourceError(
            f"source {name!r}: cannot parse its database URL; expected e.g. "
            "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db or "
            "sqlite:///path.db",
            permanent=True,
            reason="bad_database_url",
        ) from e
