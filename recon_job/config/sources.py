"""Settings of the local usage sources: ``[logs]`` and the named ``[[sources]]`` entries.

Every rule about a source lives here, so ``recon-job check-config`` refuses what a run would:
the options the sources receive (:class:`~recon_job.sources.ndjson.NdjsonOptions`,
:class:`~recon_job.sources.sql.SqlTableOptions`) carry data validated here and check nothing.
A SQL source's URL is parsed with SQLAlchemy, imported only when a SQL source is configured.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from recon_job.config.load import Problem, rule, rule_errors
from recon_job.models import RECORD_FIELD_NAMES, RECORD_FIELDS

#: Columns a SQL source must map.
REQUIRED_COLUMNS = ("timestamp", "model", "input_tokens", "output_tokens")
#: Columns a SQL source may map; ``total_tokens`` is left out: a table's sums are never checked
#: against it.
OPTIONAL_COLUMNS = tuple(
    name for name in RECORD_FIELD_NAMES if name not in REQUIRED_COLUMNS and name != "total_tokens"
)
#: Canonical names a SQL source's ``columns`` mapping may use.
CANONICAL_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
#: Database backends the SQL source knows how to compute a UTC day on: the names of
#: :data:`recon_job.sources.sql.dialects.DIALECTS` (plus ``mariadb``). Tested: the first five;
#: ClickHouse, BigQuery, Snowflake and Trino are written from their documentation, untested.
BACKENDS = (
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "duckdb",
    "clickhouse",
    "bigquery",
    "snowflake",
    "trino",
)

# Plain identifiers only: every name is quoted by SQLAlchemy anyway, this catches typos and
# pasted SQL in a config file early.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_COMMENT_OR_END = re.compile(r";|--|/\*|\*/")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(value: str, message: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise rule(message) from None
    return value


class LogsSettings(_Section):
    """Where the local usage logs are and how to read them."""

    #: Files, directories or glob patterns (``**`` allowed), ``.gz`` and rotated files included;
    #: ``RECON_LOG_PATHS`` (comma-separated).
    paths: tuple[str, ...] = ("logs/usage_tracking.ndjson*",)
    #: Time zone for timestamps without an offset (IANA name, e.g. ``Europe/Helsinki``).
    timezone: str = "UTC"
    #: Unit of a logged cost field: ``usd`` or ``cents``.
    cost_unit: Literal["usd", "cents"] = "usd"
    #: Processes that scan large plain files in parallel: 0 = one per CPU, 1 = no parallelism.
    workers: int = Field(0, ge=0, le=64)
    #: Count a ``request_id`` logged more than once (a retry logged twice, overlapping files)
    #: once, and report the extra records as ``duplicate_request_id``; false counts every line.
    dedupe: bool = True
    #: Field mapping for other record shapes: canonical name -> dotted path in the record.
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return _check_zone(
            value,
            f"{value!r} is not a known time zone; use an IANA name such as 'UTC' "
            "or 'Europe/Berlin'",
        )

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(p.strip() for p in value if p.strip())
        if not cleaned:
            raise ValueError("needs at least one path or glob of NDJSON usage logs")
        return cleaned

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: dict[str, str]) -> dict[str, str]:
        found: list[Problem] = []
        unknown = sorted(set(value) - RECORD_FIELDS)
        if unknown:
            known = ", ".join(sorted(RECORD_FIELDS))
            found.append(((), f"unknown field name(s) {', '.join(unknown)}; known: {known}", None))
        found.extend(
            ((name,), f"log field {name!r} maps to an empty path {path!r}", path)
            for name, path in value.items()
            if not path or any(not part for part in path.split("."))
        )
        if found:
            raise rule_errors(cls.__name__, found)
        return value


class NdjsonSourceSettings(LogsSettings):
    """One named NDJSON local source in ``[[sources]]`` (same keys as ``[logs]``)."""

    kind: Literal["ndjson"]
    #: Shown in the report's per-source shares (``production``, ``staging`` ...).
    name: str = Field(min_length=1)


def sql_backend(url: str) -> str:
    """The backend a SQL source URL names (``postgresql``, ``sqlite`` ...); ValueError if unusable.

    The messages never repeat the URL: it may hold a password.
    """
    from recon_job.database import parse_url

    try:
        backend = parse_url(url).get_backend_name()
    except ValueError:
        raise ValueError(
            "the SQL source URL is not a SQLAlchemy URL — e.g. "
            "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db, "
            "sqlite:///path/app.db, duckdb:///path/lake.duckdb"
        ) from None
    if backend not in BACKENDS:
        raise ValueError(
            f"the SQL source supports {', '.join(BACKENDS)} databases, not {backend!r}"
        )
    return backend


def _column_problems(name: str, column: str) -> list[Problem]:
    found: list[Problem] = []
    if name not in CANONICAL_COLUMNS:
        choices = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        found.append(((name,), f"unknown SQL source column {name!r} — use one of {choices}", name))
    if not column:
        found.append(((name,), f"SQL source column {name!r} maps to an empty column name", column))
    elif not _IDENTIFIER.fullmatch(column):
        found.append(
            (
                (name,),
                f"SQL source column {name!r} maps to {column!r}, not a plain column name "
                "(letters, digits, _ and $)",
                column,
            )
        )
    return found


class SqlSourceSettings(_Section):
    """One named database table in ``[[sources]]``: the app's own per-request usage rows."""

    kind: Literal["sql"]
    #: Shown in the report's per-source shares.
    name: str = Field(min_length=1)
    #: SQLAlchemy URL of the app's database; in the file only without a password.
    url: SecretStr | None = None
    #: Environment variable holding the URL (or ``<NAME>_FILE``, a file holding it).
    url_env: str | None = None
    #: Table name, optionally ``schema.table``; or else ``relation``.
    table: str | None = Field(None, min_length=1)
    #: DuckDB only, instead of ``table``: one call of a file-reading table function with literal
    #: arguments, e.g. ``read_parquet('lake/*.parquet')`` (see :mod:`recon_job.config.relation`).
    relation: str | None = None
    #: Canonical name -> column: timestamp, model, input_tokens, output_tokens (required);
    #: cached_tokens, cost, request_id, project_id, api_key_id, batch, service_tier, and the
    #: families' (:data:`~recon_job.models.RECORD_FIELD_NAMES` from ``family`` on).
    columns: dict[str, str]
    #: Unit of the cost column: ``usd`` or ``cents``.
    cost_unit: Literal["usd", "cents"] = "usd"
    #: An SQL condition rows must meet, e.g. ``environment = 'production'``. Inserted into the
    #: ``WHERE`` as written (trusted configuration); ``;`` and comments are refused.
    filter: str | None = None
    #: Zone of a timestamp column stored without a time zone.
    timestamp_timezone: str = "UTC"
    #: Count a ``request_id`` (its mapped column) that appears in more than one row of a UTC day
    #: once, and report the extra rows as ``duplicate_request_id``; false counts every row.
    dedupe: bool = True

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            sql_backend(value.get_secret_value())
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            raise rule(
                f"SQL source table {value!r} is not a plain name or schema.table "
                "(letters, digits, _ and $)"
            )
        return value

    @field_validator("relation")
    @classmethod
    def _check_relation(cls, value: str | None) -> str | None:
        if value is not None:
            from recon_job.config.relation import relation_problem

            problem = relation_problem(value)
            if problem is not None:
                raise rule(problem)
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        found = [p for name, column in value.items() for p in _column_problems(name, column)]
        missing = [n for n in REQUIRED_COLUMNS if n not in value]
        if missing:
            found.append(
                (
                    (),
                    f"SQL source columns must map {', '.join(missing)} "
                    f"(required: {', '.join(REQUIRED_COLUMNS)})",
                    None,
                )
            )
        if found:
            raise rule_errors(cls.__name__, found)
        return value

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("SQL source filter is empty — leave it out or write a condition")
        if _COMMENT_OR_END.search(value):
            raise ValueError(
                "SQL source filter may not contain ';' or a comment ('--', '/*') — write one "
                "condition, e.g. environment = 'production'"
            )
        return value

    @field_validator("timestamp_timezone")
    @classmethod
    def _check_timestamp_timezone(cls, value: str) -> str:
        return _check_zone(
            value, f"unknown timestamp_timezone {value!r} — use an IANA name like 'Europe/Helsinki'"
        )

    @model_validator(mode="after")
    def _check_url_and_zone(self) -> SqlSourceSettings:
        found: list[Problem] = []
        if (self.table is None) == (self.relation is None):
            found.append(
                (
                    ("table",),
                    f"{self.name!r} needs exactly one of table (a table name) and relation "
                    "(DuckDB: e.g. read_parquet('lake/*.parquet'))",
                    None,
                )
            )
        if self.url is None:
            hint = f"set {self.url_env}" if self.url_env else "set url_env (or url)"
            found.append((("url",), f"{self.name!r} has no database URL; {hint}", None))
        elif self.relation is not None and sql_backend(self.url.get_secret_value()) != "duckdb":
            found.append(
                (
                    ("relation",),
                    f"{self.name!r}: a relation is read by DuckDB only — use a duckdb:/// URL "
                    "(duckdb:///:memory: to read files only), or a table",
                    None,
                )
            )
        elif self.timestamp_timezone != "UTC" and (
            sql_backend(self.url.get_secret_value()) == "sqlite"
        ):
            found.append(
                (
                    ("timestamp_timezone",),
                    "SQLite timestamps must be UTC (ISO-8601 text or epoch seconds); "
                    f"timestamp_timezone {self.timestamp_timezone!r} is not supported there",
                    None,
                )
            )
        if found:
            raise rule_errors(type(self).__name__, found)
        return self

    def grouping_problems(
        self, group_by: tuple[str, ...], project_ids: tuple[str, ...]
    ) -> list[Problem]:
        """What the ``[openai]`` grouping and project filter need from this table's columns."""
        found: list[Problem] = [
            (("columns",), f"grouping by {name!r} needs a {name!r} column in the mapping", None)
            for name in group_by
            if name not in self.columns
        ]
        if project_ids and "project_id" not in self.columns:
            found.append(
                (("columns",), "project_ids needs a 'project_id' column in the mapping", None)
            )
        return found


SourceSettings = Annotated[NdjsonSourceSettings | SqlSourceSettings, Field(discriminator="kind")]
