"""OpenAI usage-dashboard CSV exports as the official side, for teams without an admin key.

The dashboard (platform.openai.com/usage → Export) has two tabs (reference §3):

* **Cost** — dollars per UTC day [× line item × project ...]; :class:`CsvCostSource` stands in for
  the Costs API and returns exactly what :class:`~recon_job.sources.openai_costs.OpenAICostsSource`
  would: cost per day × model recovered from the line item, tokens zero.
* **Activity** — tokens and requests per UTC day × model [× project × API key ...];
  :class:`CsvActivitySource` stands in for the Usage API: raw snapshot names, cost zero.

Files are read by header name, never by position or file name, because columns are added over
time (§3.1, §3.2). They are opened read-only and never modified. A day counts as *covered* when a
file has a row for it, the dashboard's empty-day rows included; a window day that no file covers is
an error, never zero usage. Only whole-UTC-day buckets are accepted: hourly and per-minute exports
are refused rather than aggregated, because a missing hour cannot be told from an hour without
usage, so a day assembled from them could not be trusted to be complete.

Every row is validated, those outside the window too (these are official figures): a bad value
is a :class:`~recon_job.errors.LogSourceError` naming the file, line, column and value, never a
silent skip. Several files per tab may be given (the dashboard exports at most 60 days at a time);
a day found in two files is counted once when both give the same figures for it, and is an error
when they differ, since which one is right (a re-export after late data?) cannot be told here.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Literal, TextIO

import structlog

from recon_job.errors import ConfigError, LogSourceError
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.openai_common import GROUP_BY_KEYS
from recon_job.sources.openai_costs import ALL_LINE_ITEMS, parse_line_item
from recon_job.sources.openai_usage import UNKNOWN_MODEL

log = structlog.get_logger(__name__)

#: Logged once per file read.
EVENT_FILE_READ: Final = "recon.source.csv.file_read"
#: Logged once per successful fetch.
EVENT_FETCHED: Final = "recon.source.csv.fetched"

ExportKind = Literal["cost", "activity", "empty"]

#: The columns every export starts with; an export of a range without usage has only these.
TIME_COLUMNS: Final = ("start_time", "end_time", "start_time_iso", "end_time_iso")
#: Columns a Cost export must have (``line_item`` is optional: an ungrouped export lacks it).
COST_REQUIRED: Final = ("start_time", "end_time", "amount_value", "amount_currency")
#: Columns an Activity export must have (``input_cached_tokens`` is optional).
ACTIVITY_REQUIRED: Final = (
    "start_time",
    "end_time",
    "model",
    "num_model_requests",
    "input_tokens",
    "output_tokens",
)
#: Seconds in the only bucket width accepted.
DAY_SECONDS: Final = 86_400

# Any of these in a header says which tab the file came from, so a file missing a required
# column is still recognised and its missing columns named.
_COST_MARKERS = frozenset({"amount_value", "amount_currency", "line_item", "quantity"})
_ACTIVITY_MARKERS = frozenset(
    {"num_model_requests", "input_tokens", "output_tokens", "input_cached_tokens", "model"}
)
# The undocumented pre-Dec-2024 /v1/usage format (reference §3.2, "Legacy").
_LEGACY_MARKERS = frozenset({"n_requests", "n_context_tokens_total", "n_generated_tokens_total"})
_REQUIRED: Final[Mapping[ExportKind, tuple[str, ...]]] = {
    "cost": COST_REQUIRED,
    "activity": ACTIVITY_REQUIRED,
    "empty": ("start_time", "end_time"),
}
_EXTRA = "\x00extra"
_EPOCH = date(1970, 1, 1)
# Year 9999: a start_time beyond it is garbage, and date arithmetic would overflow.
_MAX_EPOCH = 253_402_214_400
# Token counts above 10**18 or amounts above 10**15 USD are garbage; bounding them also keeps
# Decimal exponents small enough that int() and sums stay cheap and cannot overflow.
_MAX_COUNT_DIGITS = 18
_MAX_AMOUNT_DIGITS = 15
_MAX_AMOUNT_DECIMALS = 60
#: Where each tab's export is made, for messages.
_WHERE: Final[Mapping[str, str]] = {
    "cost": "Usage dashboard → Cost → Export, group by Line item, 1 day",
    "activity": "Usage dashboard → Activity → Export, 1 day",
}
_HOW_TO_EXPORT: Final[Mapping[str, str]] = {
    "cost": f"--openai-from-csv needs the Cost tab export for dollars ({_WHERE['cost']})",
    "activity": (
        "--openai-from-csv needs the Activity tab export for tokens and requests "
        f"({_WHERE['activity']})"
    ),
}
_TAB_NAME: Final[Mapping[str, str]] = {"cost": "a Cost", "activity": "an Activity"}


def _error(message: str, reason: str) -> LogSourceError:
    return LogSourceError(message, permanent=True, reason=reason)


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn I/O, decoding and CSV errors while reading ``path`` into a ``LogSourceError``."""
    try:
        yield
    except OSError as e:
        raise _error(
            f"cannot read the CSV export {path}: {e.strerror or e}", "csv_unreadable"
        ) from e
    except UnicodeDecodeError as e:
        raise _error(
            f"{path.name} is not UTF-8 text (byte {e.start}); pass the CSV file exactly as the "
            "dashboard exported it",
            "csv_unreadable",
        ) from e
    except csv.Error as e:
        raise _error(f"{path.name} is not a readable CSV file: {e}", "csv_unreadable") from e


@contextmanager
def _open_export(path: Path) -> Iterator[tuple[tuple[str, ...], csv.DictReader[str]]]:
    """The header names and a row reader of ``path``, opened read-only."""
    with _translated(path), path.open(encoding="utf-8-sig", newline="") as handle:
        yield _header_and_reader(handle, path)


def _header_and_reader(handle: TextIO, path: Path) -> tuple[tuple[str, ...], csv.DictReader[str]]:
    first = handle.readline()
    if not first.strip():
        raise _error(
            f"{path.name} is empty: no header line; export it again from the usage dashboard",
            "csv_structure",
        )
    # Some teams keep the exports as TSV (reference §3.1, the 2025-10 "Guardian TSV").
    delimiter = "\t" if "\t" in first and "," not in first else ","
    names = tuple(name.strip() for name in next(csv.reader([first], delimiter=delimiter)))
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise _error(
            f"{path.name}: the header repeats column(s) {', '.join(repeated)}; the file's "
            "structure changed, export it again",
            "csv_structure",
        )
    reader = csv.DictReader(handle, fieldnames=names, delimiter=delimiter, restkey=_EXTRA)
    return names, reader


def _kind_of(names: Collection[str], path: Path) -> ExportKind:
    present = {name for name in names if name}
    if present & _LEGACY_MARKERS:
        raise _error(
            f"{path.name} is a legacy usage export (n_requests, n_context_tokens_total ...), "
            "which recon-job does not read; export the Cost and Activity tabs from today's "
            "usage dashboard",
            "csv_structure",
        )
    cost = bool(present & _COST_MARKERS)
    activity = bool(present & _ACTIVITY_MARKERS)
    if cost and activity:
        raise _error(
            f"{path.name} has both Cost and Activity columns; export each tab to its own file",
            "csv_structure",
        )
    if cost:
        return "cost"
    if activity:
        return "activity"
    if present and present <= set(TIME_COLUMNS):
        return "empty"
    raise _error(
        f"{path.name} is not an OpenAI usage dashboard export (header: "
        f"{_show(','.join(names), 80)}); export the Cost and Activity tabs from "
        "platform.openai.com/usage",
        "csv_structure",
    )


def detect_export_kind(path: str | Path) -> ExportKind:
    """Which dashboard tab ``path`` was exported from, by its header names (not its file name).

    ``cost`` has ``amount_value``; ``activity`` has ``num_model_requests``/``input_tokens``;
    ``empty`` has only the four time columns — a range with no usage, whose Cost and Activity
    exports are byte-identical (reference §3.2), so it may stand for either. Raises
    ``LogSourceError`` when the file cannot be read or is no dashboard export.
    """
    path = Path(path)
    with _open_export(path) as (names, _reader):
        return _kind_of(names, path)


@dataclass(frozen=True, slots=True)
class _Cell:
    """Where a value came from, for error messages."""

    path: Path
    line: int
    column: str

    def error(self, value: str, problem: str, reason: str = "csv_value") -> LogSourceError:
        return _error(
            f"{self.path.name}, line {self.line}, column {self.column}: {_show(value)} {problem}",
            reason,
        )


def _whole(value: str, cell: _Cell) -> int:
    """A non-negative whole number; the Activity export writes counts as ``31422.0`` (§3.3)."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise cell.error(value, "is not a number") from None
    if not number.is_finite() or number.adjusted() > _MAX_COUNT_DIGITS:
        raise cell.error(value, "is not a plausible count")
    if number != number.to_integral_value():
        raise cell.error(value, "is not a whole number (a fractional count)")
    if number < 0:
        raise cell.error(value, "is negative")
    return int(number)


def _amount(value: str, cell: _Cell) -> Decimal:
    """Exact USD: amounts carry up to 36 decimals (reference §3.3), so never a float."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise cell.error(value, "is not an amount of money") from None
    if not number.is_finite() or number.adjusted() > _MAX_AMOUNT_DIGITS:
        raise cell.error(value, "is not a plausible amount of money")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_AMOUNT_DECIMALS:
        raise cell.error(value, f"has more than {_MAX_AMOUNT_DECIMALS} decimals")
    return number


@dataclass
class _FileRead:
    """What one file contributed: the days it covers and its groups on the window's days."""

    kind: ExportKind
    covered: set[date] = field(default_factory=set)
    groups: defaultdict[date, defaultdict[UsageKey, Usage]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Usage))
    )
    counts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))


class _CsvExportSource:
    """What the Cost and Activity readers share: files, checks, coverage, de-duplication."""

    #: The dashboard tab this source reads.
    kind: Literal["cost", "activity"]

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        organization_id: str | None = None,
        group_by: tuple[str, ...] = ("model",),
        project_ids: tuple[str, ...] = (),
    ) -> None:
        problems = []
        if isinstance(paths, str | Path) or not paths:
            problems.append(f"give at least one {self.kind} CSV export as a list of paths")
        unknown = sorted(set(group_by) - GROUP_BY_KEYS)
        if unknown:
            problems.append(f"unknown group_by value(s) {unknown}; use {sorted(GROUP_BY_KEYS)}")
        if problems:
            raise ConfigError(problems)
        #: The export files, read in this order.
        self.paths = tuple(Path(p) for p in paths)
        #: When set, a row of another organization is an error (the wrong org was exported).
        self.organization_id = (organization_id or "").strip() or None
        #: Comparison groups besides the day, as in ``OpenAIOptions.group_by``.
        self.group_by = tuple(group_by)
        #: Only count these projects; empty means the whole organization.
        self.project_ids = frozenset(project_ids)

    def fetch(self, window: Window) -> UsageTotals:
        """Usage of every UTC day in ``window``; raises ``LogSourceError`` if it cannot be had."""
        covered: set[date] = set()
        chosen: dict[date, tuple[Path, Mapping[UsageKey, Usage]]] = {}
        counts: defaultdict[str, int] = defaultdict(int)
        for path in self.paths:
            read = self._read(path, window)
            covered |= read.covered
            for name, count in read.counts.items():
                counts[name] += count
            for day in sorted(read.covered):
                if day not in window:
                    continue
                figures = dict(read.groups.get(day, {}))
                if day not in chosen:
                    chosen[day] = (path, figures)
                    continue
                # Two 60-day exports may overlap: the same figures are counted once, different
                # ones (a re-export after late data arrived, another org) cannot be resolved here.
                first, earlier = chosen[day]
                if earlier != figures:
                    raise _error(
                        f"{day} is in both {first.name} and {path.name} with different "
                        f"figures; pass exports whose date ranges do not overlap, or only the "
                        f"newer one",
                        "csv_overlap",
                    )
                counts["days_in_several_files"] += 1
        missing = [day for day in window.days() if day not in covered]
        if missing:
            raise _error(
                f"the {self.kind} CSV export(s) {', '.join(p.name for p in self.paths)} do not "
                f"cover {_days(missing)}; export a range that covers them (the dashboard exports "
                "up to 60 days per file; pass several files)",
                "csv_not_covered",
            )
        groups: dict[UsageKey, Usage] = {}
        for _path, day_groups in chosen.values():
            groups.update(day_groups)
        info = {f"csv_{self.kind}_{name}": count for name, count in sorted(counts.items())}
        info[f"csv_{self.kind}_files"] = len(self.paths)
        log.info(EVENT_FETCHED, kind=self.kind, window=window.key, groups=len(groups), **info)
        return UsageTotals(groups=groups, info=info)

    def _read(self, path: Path, window: Window) -> _FileRead:
        with _open_export(path) as (names, reader):
            kind = _kind_of(names, path)
            if kind not in (self.kind, "empty"):
                raise _error(
                    f"{path.name} is {_TAB_NAME[kind]} export; {_HOW_TO_EXPORT[self.kind]}",
                    "csv_wrong_kind",
                )
            missing = [name for name in _REQUIRED[kind] if name not in names]
            if missing:
                raise _error(
                    f"{path.name} has no {', '.join(missing)} column(s) (header: "
                    f"{_show(','.join(names), 80)}); the export's structure changed or it was "
                    f"edited — export it again ({_WHERE[self.kind]})",
                    "csv_structure",
                )
            read = _FileRead(kind)
            data_columns = [name for name in names if name and name not in TIME_COLUMNS]
            for row in reader:
                # +1: the header line was read before the DictReader started counting.
                self._row(row, reader.line_num + 1, path, data_columns, window, read)
            if self.project_ids and read.counts["data_rows"] and not read.counts["with_project"]:
                raise _error(
                    f"{path.name} has no project ids, so the project_ids filter cannot be "
                    "applied; export it grouped by project",
                    "csv_not_grouped",
                )
        read.counts.pop("with_project", None)
        log.debug(EVENT_FILE_READ, path=str(path), kind=kind, days=len(read.covered))
        return read

    def _row(
        self,
        row: Mapping[str, str | list[str] | None],
        line: int,
        path: Path,
        data_columns: Sequence[str],
        window: Window,
        read: _FileRead,
    ) -> None:
        extra = row.get(_EXTRA)
        if isinstance(extra, list) and any(value.strip() for value in extra):
            raise _error(
                f"{path.name}, line {line} has more fields than the header; the file's "
                "structure changed or a value has an unquoted comma",
                "csv_structure",
            )

        def text(column: str) -> str:
            # A short row (a spreadsheet dropping trailing blanks) reads as blank cells.
            value = row.get(column)
            return value.strip() if isinstance(value, str) else ""

        read.counts["rows"] += 1
        start_text, end_text = text("start_time"), text("end_time")
        if not start_text or not end_text:
            raise _error(
                f"{path.name}, line {line}: start_time or end_time is blank; export it again",
                "csv_value",
            )
        # The epoch columns are canonical: the ISO ones carry +00:00 on empty rows and no offset
        # on data rows of the same file (reference §3.3).
        start = _whole(start_text, _Cell(path, line, "start_time"))
        end = _whole(end_text, _Cell(path, line, "end_time"))
        if start > _MAX_EPOCH:
            raise _Cell(path, line, "start_time").error(start_text, "is not a plausible time")
        if end - start != DAY_SECONDS or start % DAY_SECONDS:
            raise _error(
                f"{path.name}, line {line}: a bucket of {end - start} seconds starting at "
                f"{start}; recon-job reads 1-day buckets on UTC days only — export again with "
                "Time interval 1 day",
                "csv_interval",
            )
        day = _EPOCH + timedelta(days=start // DAY_SECONDS)
        read.covered.add(day)
        org = text("organization_id")
        if self.organization_id and org and org != self.organization_id:
            raise _error(
                f"{path.name}, line {line} is from organization {_show(org)}, not the "
                f"configured {_show(self.organization_id)}; the wrong organization was exported "
                "(switch organization in the dashboard and export again)",
                "csv_organization",
            )
        if not any(text(column) for column in data_columns):
            # An empty-day row: only the time columns are filled (reference §3.3). The day is
            # covered and had no usage.
            read.counts["empty_rows"] += 1
            return
        parsed = self._parse(text, path, line, read.counts)
        if parsed is None:
            return
        model, usage = parsed
        read.counts["data_rows"] += 1
        project_id = text("project_id") or None
        if project_id is not None:
            read.counts["with_project"] += 1
        if self.project_ids and project_id not in self.project_ids:
            read.counts["rows_other_projects"] += 1
            return
        if day not in window:
            return
        key = UsageKey(
            day=day,
            model=model,
            project_id=project_id if "project_id" in self.group_by else None,
            api_key_id=(text("api_key_id") or None) if "api_key_id" in self.group_by else None,
        )
        day_groups = read.groups[day]
        day_groups[key] = day_groups[key] + usage

    def _parse(
        self, text: Callable[[str], str], path: Path, line: int, counts: defaultdict[str, int]
    ) -> tuple[str, Usage] | None:
        """The model and usage of a non-empty row, or None when it holds no usage."""
        raise NotImplementedError


class CsvCostSource(_CsvExportSource):
    """Billed USD per UTC day × model [× project × API key] from Cost tab exports.

    The substitute for :class:`~recon_job.sources.openai_costs.OpenAICostsSource`: the model is
    recovered from the line item with the same :func:`parse_line_item`; an ungrouped export
    (no or blank ``line_item``) gives the whole day's cost under ``"(all)"``, and a line item that
    does not parse is kept under its verbatim text. Only ``Usage.cost`` is set.
    """

    kind = "cost"

    def _parse(
        self, text: Callable[[str], str], path: Path, line: int, counts: defaultdict[str, int]
    ) -> tuple[str, Usage] | None:
        value = text("amount_value")
        if not value:
            # The API's null amount: nothing billed. Counted, as the Costs source does.
            counts["rows_without_amount"] += 1
            return None
        cost = _amount(value, _Cell(path, line, "amount_value"))
        currency = text("amount_currency")
        if currency.lower() != "usd":
            raise _Cell(path, line, "amount_currency").error(
                currency, "is not usd; recon-job reconciles USD only", "csv_currency"
            )
        line_item = text("line_item")
        if not line_item:
            return ALL_LINE_ITEMS, Usage(cost=cost)
        parsed = parse_line_item(line_item)
        if parsed is None:
            counts["unparsed_line_items"] += 1
            return line_item, Usage(cost=cost)
        return parsed.model, Usage(cost=cost)


class CsvActivitySource(_CsvExportSource):
    """Tokens and requests per UTC day × model [× project × API key] from Activity tab exports.

    The substitute for :class:`~recon_job.sources.openai_usage.OpenAIUsageSource`: models stay
    the dated snapshots the export names; ``Usage.cost`` is zero. Counts arrive as floats
    (``31422.0``) and must be whole.
    """

    kind = "activity"

    def _parse(
        self, text: Callable[[str], str], path: Path, line: int, counts: defaultdict[str, int]
    ) -> tuple[str, Usage] | None:
        def count(column: str, *, required: bool = True) -> int:
            value = text(column)
            if not value:
                if required:
                    raise _Cell(path, line, column).error(value, "is blank in a row with usage")
                # Optional columns (input_cached_tokens) are absent from older data.
                return 0
            return _whole(value, _Cell(path, line, column))

        usage = Usage(
            input_tokens=count("input_tokens"),
            cached_tokens=count("input_cached_tokens", required=False),
            output_tokens=count("output_tokens"),
            requests=count("num_model_requests"),
        )
        # Python's False/True in the raw file, FALSE/TRUE after a spreadsheet (reference §3.3).
        batch = text("batch")
        if batch.lower() not in ("", "true", "false"):
            raise _Cell(path, line, "batch").error(batch, "is not True or False")
        if batch.lower() == "true":
            counts["batch_requests"] += usage.requests
        model = text("model") if "model" in self.group_by else ""
        return model or UNKNOWN_MODEL, usage


def _days(days: Sequence[date]) -> str:
    """``2026-03-01..2026-03-04, 2026-03-09``: sorted days as runs, for messages."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    shown = [a.isoformat() if a == b else f"{a}..{b}" for a, b in runs[:10]]
    return ", ".join(shown) + (f" and {len(runs) - 10} more" if len(runs) > 10 else "")
