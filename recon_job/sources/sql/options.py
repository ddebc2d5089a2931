"""Where an application's usage table is and how its columns map to usage."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recon_job.database import display_url, parse_url
from recon_job.errors import ConfigError
from recon_job.models import RECORD_FIELD_NAMES

REQUIRED_COLUMNS = ("timestamp", "model", "input_tokens", "output_tokens")
#: ``total_tokens`` is left out: a table's sums are never checked against it.
OPTIONAL_COLUMNS = tuple(
    name for name in RECORD_FIELD_NAMES if name not in REQUIRED_COLUMNS and name != "total_tokens"
)
#: Canonical names a ``SqlTableOptions.columns`` mapping may use.
CANONICAL_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
GROUP_COLUMNS = ("model", "project_id", "api_key_id")
#: Database backends this source knows how to compute a UTC day on.
BACKENDS = ("postgresql", "mysql", "mariadb", "sqlite")

# Plain identifiers only: every name is quoted by SQLAlchemy anyway, this catches typos and
# pasted SQL in a config file early.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_COMMENT_OR_END = re.compile(r";|--|/\*|\*/")


@dataclass(frozen=True)
class SqlTableOptions:
    """Where the app's usage table is and how its columns map to usage."""

    #: SQLAlchemy URL of the app's database. A secret: kept out of ``repr`` and of every message.
    url: str = field(repr=False)
    #: Table name, optionally ``schema.table``.
    table: str
    #: Canonical name -> column name. Required: ``timestamp``, ``model``, ``input_tokens``,
    #: ``output_tokens``; optional: ``cached_tokens``, ``cost``, ``request_id``,
    #: ``project_id``, ``api_key_id``, ``batch``, ``service_tier``.
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

    def __post_init__(self) -> None:
        problems: list[str] = []
        backend = self._check_url(problems)
        parts = self.table.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            problems.append(
                f"SQL source table {self.table!r} is not a plain name or schema.table "
                "(letters, digits, _ and $)"
            )
        for name, column in self.columns.items():
            if name not in CANONICAL_COLUMNS:
                problems.append(
                    f"unknown SQL source column {name!r} — use one of "
                    f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
                )
            if not column:
                problems.append(f"SQL source column {name!r} maps to an empty column name")
            elif not _IDENTIFIER.fullmatch(column):
                problems.append(
                    f"SQL source column {name!r} maps to {column!r}, not a plain column name "
                    "(letters, digits, _ and $)"
                )
        missing = [n for n in REQUIRED_COLUMNS if n not in self.columns]
        if missing:
            problems.append(
                f"SQL source columns must map {', '.join(missing)} "
                f"(required: {', '.join(REQUIRED_COLUMNS)})"
            )
        if self.cost_unit not in ("usd", "cents"):
            problems.append(
                f"SQL source cost unit must be 'usd' or 'cents', not {self.cost_unit!r}"
            )
        if self.filter is not None:
            if not self.filter.strip():
                problems.append("SQL source filter is empty — leave it out or write a condition")
            elif _COMMENT_OR_END.search(self.filter):
                problems.append(
                    "SQL source filter may not contain ';' or a comment ('--', '/*') — write one "
                    "condition, e.g. environment = 'production'"
                )
        try:
            ZoneInfo(self.timestamp_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"unknown timestamp_timezone {self.timestamp_timezone!r} — use an IANA name "
                "like 'Europe/Helsinki'"
            )
        else:
            if backend == "sqlite" and self.timestamp_timezone != "UTC":
                problems.append(
                    "SQLite timestamps must be UTC (ISO-8601 text or epoch seconds); "
                    f"timestamp_timezone {self.timestamp_timezone!r} is not supported there"
                )
        for name in self.group_by:
            if name not in GROUP_COLUMNS:
                problems.append(
                    f"cannot group the SQL source by {name!r} — use {', '.join(GROUP_COLUMNS)}"
                )
            elif name not in self.columns:
                problems.append(f"grouping by {name!r} needs a {name!r} column in the mapping")
        if "model" not in self.group_by:
            problems.append("the SQL source's group_by must include 'model'")
        if self.project_ids and "project_id" not in self.columns:
            problems.append("project_ids needs a 'project_id' column in the mapping")
        if any(not p for p in self.project_ids):
            problems.append("project_ids may not contain an empty id")
        if problems:
            raise ConfigError(problems)

    def _check_url(self, problems: list[str]) -> str | None:
        try:
            url = parse_url(self.url)
        except ValueError:
            # The parser's message repeats the URL, password and all: don't pass it on.
            problems.append(
                "the SQL source URL is not a SQLAlchemy URL — e.g. "
                "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db, "
                "sqlite:///path/app.db"
            )
            return None
        backend = url.get_backend_name()
        if backend not in BACKENDS:
            problems.append(
                f"the SQL source supports {', '.join(BACKENDS)} databases, not {backend!r}"
            )
            return None
        return backend

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return display_url(self.url)
