"""OpenAI usage-dashboard CSV exports as the official side, for teams without an admin key.

The dashboard (platform.openai.com/usage → Export) has two tabs (reference §3):

* **Cost** — dollars per UTC day [× line item × project ...]; :class:`CsvCostSource` stands in for
  the Costs API and returns exactly what :class:`~recon_job.sources.openai.costs.OpenAICostsSource`
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

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from recon_job.errors import ConfigError
from recon_job.families import COMPLETIONS, OTHER, PRODUCT_MODELS, SPECS, family_of_model
from recon_job.models import EPOCH, Usage, UsageKey, UsageTotals, Window
from recon_job.sources.exports.rows import (
    ACTIVITY_REQUIRED_BY_FAMILY,
    DAY_SECONDS,
    EXTRA_FIELD,
    MAX_EPOCH,
    REQUIRED_BY_KIND,
    TIME_COLUMNS,
    Cell,
    ExportKind,
    activity_family,
    amount,
    csv_error,
    kind_of,
    open_export,
    show,
    whole,
)
from recon_job.sources.openai.costs import ALL_LINE_ITEMS
from recon_job.sources.openai.lineitems import NO_RULES, LineItemRules, map_line_item
from recon_job.sources.openai.options import GROUP_BY_KEYS
from recon_job.sources.openai.usage import UNKNOWN_MODEL

log = structlog.get_logger(__name__)

#: Logged once per file read.
EVENT_FILE_READ: Final = "recon.source.csv.file_read"
#: Logged once per successful fetch.
EVENT_FETCHED: Final = "recon.source.csv.fetched"

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


#: One row of an export as the reader gives it: cells by column, extra fields as a list.
_Row = Mapping[str, str | list[str] | None]


@dataclass
class _FileRead:
    """One file being read, and what it contributed: the days it covers, its groups in window."""

    kind: ExportKind
    path: Path
    window: Window
    #: The header's columns that hold figures (all but the time columns).
    data_columns: Sequence[str]
    covered: set[date] = field(default_factory=set)
    groups: defaultdict[date, defaultdict[UsageKey, Usage]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Usage))
    )
    counts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: The family tab of an Activity export (completions for a Cost export).
    family: str = COMPLETIONS
    #: Each row with figures, every cell as written -> its line: the dashboard never writes one
    #: twice, so a repeat is a file pasted into another, and would count twice.
    seen: dict[tuple[str, ...], int] = field(default_factory=dict)


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
                    raise csv_error(
                        f"{day} is in both {first.name} and {path.name} with different "
                        f"figures; pass exports whose date ranges do not overlap, or only the "
                        f"newer one",
                        "csv_overlap",
                    )
                counts["days_in_several_files"] += 1
        missing = [day for day in window.days() if day not in covered]
        if missing:
            raise csv_error(
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
        with open_export(path) as (names, reader):
            kind = kind_of(names, path)
            if kind not in (self.kind, "empty"):
                raise csv_error(
                    f"{path.name} is {_TAB_NAME[kind]} export; {_HOW_TO_EXPORT[self.kind]}",
                    "csv_wrong_kind",
                )
            family = activity_family(names) if kind == "activity" else COMPLETIONS
            required = REQUIRED_BY_KIND[kind]
            if kind == "activity":
                required = (*TIME_COLUMNS[:2], *ACTIVITY_REQUIRED_BY_FAMILY[family])
            missing = [name for name in required if name not in names]
            if missing:
                raise csv_error(
                    f"{path.name} has no {', '.join(missing)} column(s) (header: "
                    f"{show(','.join(names), 80)}); the export's structure changed or it was "
                    f"edited — export it again ({_WHERE[self.kind]})",
                    "csv_structure",
                )
            data_columns = [name for name in names if name and name not in TIME_COLUMNS]
            read = _FileRead(kind, path, window, data_columns, family=family)
            for row in reader:
                # +1: the header line was read before the DictReader started counting.
                self._row(row, reader.line_num + 1, read)
            if self.project_ids and read.counts["data_rows"] and not read.counts["with_project"]:
                raise csv_error(
                    f"{path.name} has no project ids, so the project_ids filter cannot be "
                    "applied; export it grouped by project",
                    "csv_not_grouped",
                )
        read.counts.pop("with_project", None)
        log.debug(EVENT_FILE_READ, path=str(path), kind=kind, days=len(read.covered))
        return read

    def _row(self, row: _Row, line: int, read: _FileRead) -> None:
        path = read.path
        extra = row.get(EXTRA_FIELD)
        if isinstance(extra, list) and any(value.strip() for value in extra):
            raise csv_error(
                f"{path.name}, line {line} has more fields than the header; the file's "
                "structure changed or a value has an unquoted comma",
                "csv_structure",
            )

        def text(column: str) -> str:
            # A short row (a spreadsheet dropping trailing blanks) reads as blank cells.
            value = row.get(column)
            return value.strip() if isinstance(value, str) else ""

        read.counts["rows"] += 1
        day = _bucket_day(text, path, line)
        read.covered.add(day)
        org = text("organization_id")
        if self.organization_id and org and org != self.organization_id:
            raise csv_error(
                f"{path.name}, line {line} is from organization {show(org)}, not the "
                f"configured {show(self.organization_id)}; the wrong organization was exported "
                "(switch organization in the dashboard and export again)",
                "csv_organization",
            )
        if not any(text(column) for column in read.data_columns):
            # An empty-day row: only the time columns are filled (reference §3.3). The day is
            # covered and had no usage.
            read.counts["empty_rows"] += 1
            return
        cells = tuple(text(column) for column in (*TIME_COLUMNS[:2], *read.data_columns))
        first = read.seen.setdefault(cells, line)
        if first != line:
            raise csv_error(
                f"{path.name}, line {line} repeats line {first} cell for cell; the dashboard "
                "never writes a row twice (was one export pasted into another?): export it "
                "again",
                "csv_structure",
            )
        parsed = self._parse(text, Cell(path, line, ""), read.family, read.counts)
        if parsed is not None:
            self._add(read, day, text, parsed)

    def _add(
        self,
        read: _FileRead,
        day: date,
        text: Callable[[str], str],
        parsed: tuple[str, str, Usage],
    ) -> None:
        """Count a row with usage: its project's, unless filtered out; its group's, in window."""
        family, model, usage = parsed
        spec = SPECS.get(family)
        read.counts["data_rows"] += 1
        project_id = text("project_id") or None
        if project_id is not None:
            read.counts["with_project"] += 1
        if self.project_ids and project_id not in self.project_ids:
            read.counts["rows_other_projects"] += 1
            return
        if day not in read.window:
            return
        by_key = "api_key_id" in self.group_by and (spec is None or "api_key_id" in spec.group_by)
        key = UsageKey(
            day=day,
            model=model,
            project_id=project_id if "project_id" in self.group_by else None,
            api_key_id=(text("api_key_id") or None) if by_key else None,
            family=family,
        )
        day_groups = read.groups[day]
        day_groups[key] = day_groups[key] + usage

    def _parse(
        self,
        text: Callable[[str], str],
        where: Cell,
        family: str,
        counts: defaultdict[str, int],
    ) -> tuple[str, str, Usage] | None:
        """The family, model and usage of a non-empty row, or None when it holds no usage.

        ``where`` is the row's file and line (its column left blank); ``family`` the file's
        family tab.
        """
        raise NotImplementedError


class CsvCostSource(_CsvExportSource):
    """Billed USD per UTC day × model [× project × API key] from Cost tab exports.

    The substitute for :class:`~recon_job.sources.openai.costs.OpenAICostsSource`: the model is
    recovered from the line item with the same :func:`parse_line_item`; an ungrouped export
    (no or blank ``line_item``) gives the whole day's cost under ``"(all)"``, and a line item that
    does not parse is kept under its verbatim text. Only ``Usage.cost`` is set.
    """

    kind = "cost"

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        line_items: LineItemRules = NO_RULES,
        **options: Any,
    ) -> None:
        super().__init__(paths, **options)
        #: The user's ``[families.line_items]`` rules, tried before the built-in ones.
        self.rules = line_items

    def _parse(
        self,
        text: Callable[[str], str],
        where: Cell,
        family: str,
        counts: defaultdict[str, int],
    ) -> tuple[str, str, Usage] | None:
        path, line = where.path, where.line
        value = text("amount_value")
        if not value:
            # The API's null amount: nothing billed. Counted, as the Costs source does.
            counts["rows_without_amount"] += 1
            return None
        cost = amount(value, Cell(path, line, "amount_value"))
        currency = text("amount_currency")
        if currency.lower() != "usd":
            raise Cell(path, line, "amount_currency").error(
                currency, "is not usd; recon-job reconciles USD only", "csv_currency"
            )
        line_item = text("line_item")
        if not line_item:
            return COMPLETIONS, ALL_LINE_ITEMS, Usage(cost=cost)
        # The same mapping as the Costs API's line items: family, model, piece.
        found = map_line_item(line_item, self.rules)
        if found.family == OTHER:
            counts["unparsed_line_items"] += 1
        return found.family, found.model, Usage(cost=cost)


class CsvActivitySource(_CsvExportSource):
    """Tokens and requests per UTC day × model [× project × API key] from Activity tab exports.

    The substitute for :class:`~recon_job.sources.openai.usage.OpenAIUsageSource`: models stay
    the dated snapshots the export names; ``Usage.cost`` is zero. Counts arrive as floats
    (``31422.0``) and must be whole.
    """

    kind = "activity"

    def _parse(
        self,
        text: Callable[[str], str],
        where: Cell,
        family: str,
        counts: defaultdict[str, int],
    ) -> tuple[str, str, Usage] | None:
        path, line = where.path, where.line

        def count(column: str, *, required: bool = True) -> int:
            value = text(column)
            if not value:
                if required:
                    raise Cell(path, line, column).error(value, "is blank in a row with usage")
                # Optional columns (input_cached_tokens ...) are absent from older data.
                return 0
            return whole(value, Cell(path, line, column))

        model = text("model") if "model" in self.group_by else ""
        model = model or UNKNOWN_MODEL
        if family == "embeddings" and model != UNKNOWN_MODEL:
            # An export of input tokens alone: embeddings or moderations, by the model's name.
            implied = family_of_model(model)
            family = implied if implied == "moderations" else family
        product = PRODUCT_MODELS.get(family)
        if product is not None:
            model = product
        usage = _family_usage(family, count)
        if family == COMPLETIONS:
            # Python's False/True in the raw file, FALSE/TRUE after a spreadsheet (§3.3).
            batch = text("batch")
            if batch.lower() not in ("", "true", "false"):
                raise Cell(path, line, "batch").error(batch, "is not True or False")
            if batch.lower() == "true":
                counts["batch_requests"] += usage.requests
        return family, model, usage


def _family_usage(family: str, count: Callable[..., int]) -> Usage:
    """The quantities of one Activity row of ``family``, as the Usage API's results carry them."""
    if family == COMPLETIONS:
        return Usage(
            input_tokens=count("input_tokens"),
            cached_tokens=count("input_cached_tokens", required=False),
            output_tokens=count("output_tokens"),
            requests=count("num_model_requests"),
            cache_write_tokens=count("input_cache_write_tokens", required=False),
            output_audio_tokens=count("output_audio_tokens", required=False),
            output_image_tokens=count("output_image_tokens", required=False),
        )
    if family in ("embeddings", "moderations"):
        return Usage(input_tokens=count("input_tokens"), requests=count("num_model_requests"))
    if family == "vector_stores":
        return Usage(usage_bytes=count("usage_bytes"))
    if family == "code_interpreter_sessions":
        return Usage(sessions=count("num_sessions"))
    if family == "file_search_calls":
        return Usage(calls=count("num_requests"))
    if family == "web_search_calls":
        return Usage(calls=count("num_requests"), requests=count("num_model_requests"))
    requests = count("num_model_requests")
    if family == "images":
        return Usage(requests=requests, images=count("images"))
    if family == "audio_speeches":
        return Usage(requests=requests, characters=count("characters"))
    return Usage(requests=requests, seconds=count("seconds"))


def _bucket_day(text: Callable[[str], str], path: Path, line: int) -> date:
    """The UTC day of a row's 1-day bucket; an error for any other bucket."""
    start_text, end_text = text("start_time"), text("end_time")
    if not start_text or not end_text:
        raise csv_error(
            f"{path.name}, line {line}: start_time or end_time is blank; export it again",
            "csv_value",
        )
    # The epoch columns are canonical: the ISO ones carry +00:00 on empty rows and no offset
    # on data rows of the same file (reference §3.3).
    start = whole(start_text, Cell(path, line, "start_time"))
    end = whole(end_text, Cell(path, line, "end_time"))
    if start > MAX_EPOCH:
        raise Cell(path, line, "start_time").error(start_text, "is not a plausible time")
    if end - start != DAY_SECONDS or start % DAY_SECONDS:
        raise csv_error(
            f"{path.name}, line {line}: a bucket of {end - start} seconds starting at "
            f"{start}; recon-job reads 1-day buckets on UTC days only — export again with "
            "Time interval 1 day",
            "csv_interval",
        )
    return EPOCH + timedelta(days=start // DAY_SECONDS)


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
