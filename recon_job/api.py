"""The Python API: functions for notebooks and scripts, thin wrappers over the real modules.

Dates are inclusive UTC days, as ``date`` objects or ``YYYY-MM-DD`` strings. *Stats* are plain
dicts so they print and serialise easily::

    {"input_tokens": int, "cached_tokens": int, "output_tokens": int, "total_tokens": int,
     "requests": int, "cost": Decimal | None,       # None: no cost known (Usage API data)
     "by_model": {model: {same fields}}, "by_day": {"YYYY-MM-DD": {same fields}},
     "unpriced_models": [model, ...]}

Model names in stats are normalised (``gpt-4o-2024-08-06`` -> ``gpt-4o``), so both sides
compare. ``compare_usage`` applies the same rule as the job: a mismatch is over the threshold
*and* over the floor. OpenAI's dollars come from the Costs API (``fetch_openai_costs``), passed
to ``parse_openai_usage_response(usage, costs=...)``.

The library never prints: until the application configures logging (structlog or the standard
``logging`` module), recon-job's log events go to the standard library's loggers, which drop
info and below and send warnings to stderr.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from recon_job import compare, windows
from recon_job.config.prices import load_price_table
from recon_job.http import make_session
from recon_job.logconfig import library_defaults
from recon_job.modelnames import ModelNamer
from recon_job.models import EMPTY, UNATTRIBUTED, Tolerance, Usage, Window
from recon_job.pricing import PriceTable
from recon_job.report.formats import pct_value, usage_counts
from recon_job.sources.ndjson.source import LogRecord, NdjsonOptions, iter_records
from recon_job.sources.openai import OpenAIClient, OpenAIOptions
from recon_job.sources.openai.base import array_params, optional_int, require_int
from recon_job.sources.openai.costs import COSTS_LIMIT, COSTS_PATH, parse_amount, parse_line_item
from recon_job.sources.openai.usage import USAGE_PATH

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Largest page per bucket width (reference §1.2): a month of daily buckets is one request.
_LIMITS = {"1d": 31, "1h": 168, "1m": 1440}
_WIDTH_SECONDS = {"1d": 86400, "1h": 3600, "1m": 60}
_NAMER = ModelNamer()

library_defaults()


def _as_day(value: date | str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        if isinstance(value, date):
            return windows.usable_day(value)
        return windows.parse_day(value)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def _window(start_date: date | str, end_date: date | str) -> Window:
    first, last = _as_day(start_date, "start_date"), _as_day(end_date, "end_date")
    assert first is not None
    assert last is not None
    return windows.date_range(first, last)


# The seed's public signature (api_key, start_date, end_date, bucket_width) plus keyword-only
# filters: callers pass them by name, so an options object would only break their code.
def fetch_openai_usage(  # noqa: PLR0913
    api_key: str,
    start_date: date | str,
    end_date: date | str,
    bucket_width: str = "1d",
    *,
    base_url: str | None = None,
    group_by: Iterable[str] = ("model",),
    project_ids: Iterable[str] = (),
) -> dict[str, Any]:
    """Every page of ``/organization/usage/completions`` from ``start_date`` to ``end_date``.

    Returns one response-shaped dict, ``{"object": "page", "data": [bucket, ...],
    "has_more": False, "next_page": None}``, with the buckets of all pages. ``api_key`` must be
    an admin key. Times are 00:00 UTC aligned (the end is exclusive after ``end_date``).
    Raises ``UsageApiError`` on any failure; never returns partial data.
    """
    if bucket_width not in _LIMITS:
        raise ValueError(f"bucket_width must be one of {sorted(_LIMITS)}, not {bucket_width!r}")
    options = _options(api_key, base_url, group_by, project_ids)
    return _fetch(
        options,
        _window(start_date, end_date),
        endpoint=("Usage", USAGE_PATH),
        width=bucket_width,
        params=array_params("group_by", options.group_by),
    )


def fetch_openai_costs(
    api_key: str,
    start_date: date | str,
    end_date: date | str,
    *,
    base_url: str | None = None,
    project_ids: Iterable[str] = (),
) -> dict[str, Any]:
    """Every page of ``/organization/costs`` (daily, grouped by line item), like
    :func:`fetch_openai_usage`: what OpenAI billed, the source of truth for dollars."""
    options = _options(api_key, base_url, ("model",), project_ids)
    return _fetch(
        options,
        _window(start_date, end_date),
        endpoint=("Costs", COSTS_PATH),
        width="1d",
        params=array_params("group_by", ["line_item"]),
    )


def _options(
    api_key: str, base_url: str | None, group_by: Iterable[str], project_ids: Iterable[str]
) -> OpenAIOptions:
    return OpenAIOptions(
        base_url=(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
        # Secret files end in a newline; the settings strip it for a run, this is the API.
        admin_key=api_key.strip(),
        group_by=tuple(group_by),
        project_ids=tuple(project_ids),
    )


def _fetch(
    options: OpenAIOptions,
    window: Window,
    *,
    endpoint: tuple[str, str],
    width: str,
    params: list[tuple[str, str]],
) -> dict[str, Any]:
    """Every page of one endpoint over ``window`` as one response-shaped dict."""
    name, path = endpoint
    query = [
        ("start_time", str(int(window.start_at.timestamp()))),
        ("end_time", str(int(window.end_at.timestamp()))),
        ("bucket_width", width),
        ("limit", str(COSTS_LIMIT if name == "Costs" else _LIMITS[width])),
        *params,
        *array_params("project_ids", options.project_ids),
    ]
    with make_session() as session:
        fetched = OpenAIClient(options, session).fetch(endpoint=name, path=path, params=query)
    seconds = _WIDTH_SECONDS[width]
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": b.start_time,
                "end_time": b.start_time + seconds,
                "results": [dict(r) for r in b.results],
            }
            for b in fetched.buckets
        ],
        "has_more": False,
        "next_page": None,
    }


def _stats(
    parts: Iterable[tuple[date, str, Usage]], *, costed: bool, unpriced: set[str]
) -> dict[str, Any]:
    total = EMPTY
    by_model: dict[str, Usage] = {}
    by_day: dict[str, Usage] = {}
    for day, model, usage in parts:
        total = total + usage
        by_model[model] = by_model.get(model, EMPTY) + usage
        key = day.isoformat()
        by_day[key] = by_day.get(key, EMPTY) + usage

    def fields(u: Usage) -> dict[str, Any]:
        return {**usage_counts(u, total="total_tokens"), "cost": u.cost if costed else None}

    return {
        **fields(total),
        "by_model": {m: fields(u) for m, u in sorted(by_model.items())},
        "by_day": {d: fields(u) for d, u in sorted(by_day.items())},
        "unpriced_models": sorted(unpriced),
    }


def parse_openai_usage_response(
    response: Mapping[str, Any] | list[Any], *, costs: Mapping[str, Any] | list[Any] | None = None
) -> dict[str, Any]:
    """Stats from a Usage API response (one page, ``fetch_openai_usage``'s result, or a list
    of buckets). Every result of every bucket is summed; cached tokens are inside input tokens.

    The Usage API carries no dollars: ``cost`` is None unless ``costs`` (a Costs API response,
    ``fetch_openai_costs``'s result) is given; then each model's and day's cost is what OpenAI
    billed for it, and the total is every line item's dollars (tool calls and storage included).
    """
    parts: list[tuple[date, str, Usage]] = []
    for day, result in _results(response):
        usage = Usage(
            input_tokens=require_int(result, "input_tokens", "Usage"),
            cached_tokens=optional_int(result, "input_cached_tokens", "Usage"),
            output_tokens=require_int(result, "output_tokens", "Usage"),
            requests=require_int(result, "num_model_requests", "Usage"),
        )
        parts.append((day, _NAMER.normalize(result.get("model") or UNATTRIBUTED), usage))
    if costs is not None:
        parts.extend(_cost_parts(costs))
    return _stats(parts, costed=costs is not None, unpriced=set())


def parse_openai_costs_response(response: Mapping[str, Any] | list[Any]) -> dict[str, Any]:
    """Stats from a Costs API response: dollars per model (from each line item) and per day.

    Token and request counts are 0 (the Costs API has none); a line item that names no model
    (``web search tool calls``) is kept under its own text, and an ungrouped answer under
    ``(all)``.
    """
    return _stats(list(_cost_parts(response)), costed=True, unpriced=set())


def _results(response: Mapping[str, Any] | list[Any]) -> Iterator[tuple[date, Mapping[str, Any]]]:
    buckets = response.get("data", []) if isinstance(response, Mapping) else response
    for bucket in buckets:
        day = datetime.fromtimestamp(int(bucket["start_time"]), tz=UTC).date()
        for result in bucket.get("results", bucket.get("result", [])):
            yield day, result


def _cost_parts(response: Mapping[str, Any] | list[Any]) -> Iterator[tuple[date, str, Usage]]:
    for day, result in _results(response):
        line_item = result.get("line_item")
        parsed = parse_line_item(line_item) if isinstance(line_item, str) else None
        model = UNATTRIBUTED if line_item is None else (parsed.model if parsed else line_item)
        cost = parse_amount(result.get("amount")) or Decimal(0)
        yield day, _NAMER.normalize(model), Usage(cost=cost)


def parse_usage_logs(
    log_dir: str | os.PathLike[str],
    start_date: date | str | None = None,
    end_date: date | str | None = None,
    *,
    timezone: str = "UTC",
) -> list[LogRecord]:
    """Every usable record of the NDJSON logs in ``log_dir`` (a directory, file or glob).

    Records are bucketed by UTC day (naive timestamps read in ``timezone``); with dates given,
    only days from ``start_date`` to ``end_date`` (inclusive). Unusable lines are skipped, as
    the job does; use ``recon-job run`` to see them counted by reason.
    """
    first, last = _as_day(start_date, "start_date"), _as_day(end_date, "end_date")
    window = None
    if first is not None or last is not None:
        window = windows.date_range(first or windows.FIRST_DAY, last or windows.LAST_DAY)
    options = NdjsonOptions(paths=(os.fspath(log_dir),), timezone=timezone)
    return list(iter_records(options, window))


def calculate_usage_stats(
    records: Iterable[LogRecord], *, prices: PriceTable | None = None
) -> dict[str, Any]:
    """Stats of local records: a logged cost is kept, others are priced from the price table
    (cached tokens at the cached rate); models without a price are listed in
    ``unpriced_models`` and left out of ``cost``, never counted as $0.
    """
    table = prices or load_price_table()
    unpriced: set[str] = set()
    parts: list[tuple[date, str, Usage]] = []
    for r in records:
        model = _NAMER.normalize(r.model)
        usage = r.usage
        cost = r.cost if r.cost is not None else table.cost(r.model, r.day, r.tier, usage)
        if cost is None:
            unpriced.add(model)
            cost = Decimal(0)
        parts.append(
            (r.day, model, Usage(r.input_tokens, r.cached_tokens, r.output_tokens, 1, cost))
        )
    return _stats(parts, costed=True, unpriced=unpriced)


def _usage_of(stats: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(stats.get("input_tokens", 0)),
        cached_tokens=int(stats.get("cached_tokens", 0)),
        output_tokens=int(stats.get("output_tokens", 0)),
        requests=int(stats.get("requests", 0)),
        cost=Decimal(str(stats.get("cost") or 0)),
    )


def compare_usage(
    local_stats: Mapping[str, Any],
    openai_stats: Mapping[str, Any],
    *,
    threshold_pct: Decimal | float | str = 5,
    cost_floor: Decimal | str = "0.05",
    token_floor: int = 1000,
) -> dict[str, Any]:
    """Compare two stats dicts: ``{"reconciled": bool, "difference": {...}, "exceeds": [...]}``.

    ``difference`` holds ``tokens``, ``tokens_pct``, ``requests``, ``requests_pct``, ``cost``,
    ``cost_pct`` (local - OpenAI; pct relative to OpenAI, None when OpenAI's figure is 0).
    Cost is compared only when both sides have one (the Usage API has none).
    """
    tolerance = Tolerance(
        threshold_pct=Decimal(str(threshold_pct)),
        cost_floor=Decimal(str(cost_floor)),
        token_floor=token_floor,
    )
    local, official = _usage_of(local_stats), _usage_of(openai_stats)
    c = compare.compare_usage(local, official, tolerance)
    has_cost = local_stats.get("cost") is not None and openai_stats.get("cost") is not None
    exceeds = [n for n in ("tokens", "requests") if getattr(c, n).exceeds]
    if has_cost and c.cost.exceeds:
        exceeds.append("cost")
    return {
        "reconciled": not exceeds,
        "threshold_pct": tolerance.threshold_pct,
        "exceeds": exceeds,
        "difference": {
            "tokens": int(c.tokens.difference),
            "tokens_pct": pct_value(c.tokens.pct),
            "input_tokens": int(c.input_tokens.difference),
            "cached_tokens": int(c.cached_tokens.difference),
            "output_tokens": int(c.output_tokens.difference),
            "requests": int(c.requests.difference),
            "requests_pct": pct_value(c.requests.pct),
            "cost": c.cost.difference if has_cost else None,
            "cost_pct": pct_value(c.cost.pct) if has_cost else None,
        },
    }
