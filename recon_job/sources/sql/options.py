"""Where an application's usage table is and how its columns map to usage.

The options carry validated data: every rule about them (plain identifiers, the required
columns, a filter without ``;`` or comments, a known zone, a supported backend) is checked on
the settings they are built from (:class:`recon_job.config.SqlSourceSettings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from recon_job.database import display_url


@dataclass(frozen=True)
class SqlTableOptions:
    """Where the app's usage table is and how its columns map to usage (validated by config)."""

    #: SQLAlchemy URL of the app's database. A secret: kept out of ``repr`` and of every message.
    url: str = field(repr=False)
    #: Table name, optionally ``schema.table``; None when ``relation`` is read instead.
    table: str | None
    #: Canonical name -> column name. Required: ``timestamp``, ``model``, ``input_tokens``,
    #: ``output_tokens``; optional: ``cached_tokens``, ``cost``, ``request_id``,
    #: ``project_id``, ``api_key_id``, ``batch``, ``service_tier``, ``family``, ``endpoint``,
    #: ``size``, ``quality``, the token classes and the families' quantities (``images``,
    #: ``characters``, ``seconds``, ``sessions``, ``calls``, ``usage_bytes``).
    columns: Mapping[str, str]
    #: Unit of the ``cost`` column.
    cost_unit: Literal["usd", "cents"] = "usd"
    #: An SQL condition rows must meet (``environment = 'production'``), inserted into the
    #: ``WHERE`` as written: trusted configuration. ``;`` and comments are refused.
    filter: str | None = None
    #: IANA zone of a timestamp column stored without a time zone (PostgreSQL ``timestamp``,
    #: MySQL ``DATETIME``); ignored for absolute columns and epoch seconds.
    timestamp_timezone: str = "UTC"
    #: Group dimensions besides the day: ``model`` plus optionally ``project_id``, ``api_key_id``.
    group_by: tuple[str, ...] = ("model",)
    #: When set, only rows of these projects count (rows with a NULL project id are kept, as
    #: the NDJSON source keeps records without one).
    project_ids: tuple[str, ...] = ()
    #: Count a ``request_id`` found in more than one row of a UTC day once, reporting the extra
    #: rows in ``UsageTotals.duplicates``; False counts every row. Needs a ``request_id`` column.
    dedupe: bool = True
    #: The most distinct groups (day × family × model × project × key) one window may hold
    #: (``reconcile.max_groups``); one more stops reading the result with a LogSourceError.
    max_groups: int = 10_000
    #: Instead of a table (DuckDB only): one validated call of a file-reading table function,
    #: e.g. ``read_parquet('lake/*.parquet')``, read as ``SELECT * FROM <relation>``.
    relation: str | None = None

    @property
    def subject(self) -> str:
        """What is read, for messages: ``table 'token_usage'`` or ``relation read_parquet(...)``."""
        return f"table {self.table!r}" if self.relation is None else f"relation {self.relation}"

    @property
    def name(self) -> str:
        """The table's name, or the relation as written (in duplicate locations)."""
        return self.relation if self.relation is not None else str(self.table)

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return display_url(self.url)
