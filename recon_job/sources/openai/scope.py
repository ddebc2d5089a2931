"""OpenAI's usage of a window per project, API key and user: the input of the shadow-usage rule.

:func:`fetch_scope` asks each endpoint once for the whole window in daily buckets, grouped by
every id the endpoint accepts (reference §1.3), and sums the results per id into a
:class:`~recon_job.diagnosis.shadow.Scope`. In this order, one request per endpoint (a window
longer than a page, 31 days of usage or 180 of costs, takes one more per page):

1. ``/organization/usage/completions`` by ``project_id``, ``api_key_id``, ``user_id``;
2. ``/organization/costs`` by ``project_id``, ``api_key_id`` (costs have no user);
3. ``/organization/usage/embeddings`` and ``/organization/usage/moderations`` by the same three,
   when ``openai.families`` has them.

Those are the families that count tokens, so the token shares are of every token OpenAI counted;
the other families (images, audio, searches, stores) count no tokens, and their dollars are in
the costs, which cover every family. The configured ``project_ids`` / ``api_key_ids`` filters
apply, so the scope is the reconciled one. ``max_requests`` bounds the requests (the run's
``diagnosis.max_requests``); an endpoint left without budget is skipped, and said so.

Never raises :class:`~recon_job.errors.UsageApiError`: the diagnosis never fails a run. A
family endpoint that answers 404 is skipped; any other failure stops the fetch, and the
:class:`Scope` says which endpoints are missing and why.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Final

import requests
import structlog

from recon_job.diagnosis.shadow import IdTotals, Scope
from recon_job.errors import UsageApiError
from recon_job.families import COMPLETIONS, SPECS
from recon_job.http import Deadline
from recon_job.models import Window
from recon_job.sources.openai.base import array_params, optional_str, window_params
from recon_job.sources.openai.client import Fetched, OpenAIClient
from recon_job.sources.openai.costs import COSTS_LIMIT, COSTS_PATH, SUM_PRECISION, parse_amount
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.results import parse_result
from recon_job.sources.openai.usage import USAGE_LIMIT, endpoint_name

log = structlog.get_logger(__name__)

#: Logged once per fetched scope.
EVENT_SCOPE_FETCHED: Final = "openai.scope.fetched"
#: Logged when an endpoint of the scope could not be fetched.
EVENT_SCOPE_SKIPPED: Final = "openai.scope.skipped"

#: The usage families fetched, in order: those that count tokens (completions first).
SCOPE_FAMILIES: Final = ("completions", "embeddings", "moderations")
#: The ids grouped by, where the endpoint accepts them.
SCOPE_BY: Final = ("project_id", "api_key_id", "user_id")
#: Name of the costs step in ``Scope.skipped``.
COSTS: Final = "costs"

_KIND_OF: Final = {"project_id": "project", "api_key_id": "api_key", "user_id": "user"}


@dataclass
class _Sums:
    """Running sums of one fetch (mutable; frozen into a Scope at the end)."""

    tokens: dict[str, Counter[str]] = field(
        default_factory=lambda: {kind: Counter() for kind in _KIND_OF.values()}
    )
    requests: dict[str, Counter[str]] = field(
        default_factory=lambda: {kind: Counter() for kind in _KIND_OF.values()}
    )
    cost: dict[str, defaultdict[str, Decimal]] = field(
        default_factory=lambda: {kind: defaultdict(Decimal) for kind in ("project", "api_key")}
    )
    key_projects: dict[str, str] = field(default_factory=dict)
    total_tokens: int = 0
    total_requests: int = 0
    total_cost: Decimal | None = None
    families: list[str] = field(default_factory=list)


def fetch_scope(  # noqa: PLR0913 -- the bounds are keyword-only options
    options: OpenAIOptions,
    session: requests.Session,
    window: Window,
    *,
    deadline: Deadline | None = None,
    max_requests: int | None = None,
    families: Sequence[str] | None = None,
) -> Scope:
    """OpenAI's usage of ``window`` per project, API key and user (module docstring).

    ``families``: the usage families to fetch (default: :data:`SCOPE_FAMILIES` that
    ``options.families`` has), in the order given after completions. ``max_requests``: the
    most HTTP requests to make (None: no bound). ``Scope.requests`` is how many were made; a
    failed fetch counts every page it may have asked for (at most the window's pages).
    """
    wanted = SCOPE_FAMILIES if families is None else tuple(families)
    usage_families = [f for f in wanted if f in options.families and f in SPECS]
    # Completions first, then costs (the dollars), then the rest: the order of usefulness.
    steps = [f for f in usage_families if f == COMPLETIONS]
    steps += [COSTS] + [f for f in usage_families if f != COMPLETIONS]
    sums = _Sums()
    used = 0
    skipped: list[str] = []
    error: str | None = None
    for index, step in enumerate(steps):
        left = None if max_requests is None else max_requests - used
        if left is not None and left <= 0:
            skipped.extend(f"{rest}: budget" for rest in steps[index:])
            break
        limit = COSTS_LIMIT if step == COSTS else USAGE_LIMIT
        pages = math.ceil(window.num_days / limit)
        allowed = options.max_pages if left is None else min(options.max_pages, left)
        client = OpenAIClient(replace(options, max_pages=allowed), session, deadline)
        try:
            fetched = client.fetch(
                endpoint=_endpoint(step), path=_path(step), params=_params(step, options, window)
            )
            if step == COSTS:
                _add_costs(sums, fetched, window)
            else:
                _add_usage(sums, step, fetched, window)
        except UsageApiError as e:
            if e.status == 404 and step not in (COMPLETIONS, COSTS):
                used += 1
                skipped.append(f"{step}: HTTP 404")
                log.warning(EVENT_SCOPE_SKIPPED, endpoint=step, reason="HTTP 404")
                continue
            # Where it failed is not known: count every page it may have asked for.
            used += min(allowed, pages)
            error = str(e)
            skipped.extend(f"{rest}: {e.reason or 'error'}" for rest in steps[index:])
            log.warning(EVENT_SCOPE_SKIPPED, endpoint=step, reason=e.reason, error=error)
            break
        used += fetched.pages
    scope = _scope(sums, used, tuple(skipped), error)
    log.info(
        EVENT_SCOPE_FETCHED,
        window=window.key,
        requests=used,
        projects=len(scope.projects),
        api_keys=len(scope.api_keys),
        users=len(scope.users),
        skipped=len(skipped),
    )
    return scope


def _endpoint(step: str) -> str:
    return "Costs" if step == COSTS else endpoint_name(step)


def _path(step: str) -> str:
    return COSTS_PATH if step == COSTS else SPECS[step].path


def _params(step: str, options: OpenAIOptions, window: Window) -> list[tuple[str, str]]:
    """One step's query: the window in daily buckets, grouped by the ids its endpoint accepts,
    with the configured filters."""
    accepted: tuple[str, ...] = ("project_id", "api_key_id")
    limit = COSTS_LIMIT
    if step != COSTS:
        limit, accepted = USAGE_LIMIT, SPECS[step].group_by
    return [
        *window_params(window, limit=limit),
        *array_params("group_by", [name for name in SCOPE_BY if name in accepted]),
        *array_params("project_ids", options.project_ids),
        *array_params("api_key_ids", options.api_key_ids),
    ]


def _add_usage(sums: _Sums, family: str, fetched: Fetched, window: Window) -> None:
    """Tokens and requests of every result in ``window``, per id and in total.

    Every result is parsed before any is added, so a schema error adds nothing.
    """
    endpoint = endpoint_name(family)
    accepted = SPECS[family].group_by
    rows: list[tuple[int, int, dict[str, str | None]]] = []
    for bucket in fetched.buckets:
        if bucket.day not in window:
            continue
        for result in bucket.results:
            usage, _ = parse_result(family, result, endpoint)
            ids = {
                name: optional_str(result, name, endpoint) if name in accepted else None
                for name in SCOPE_BY
            }
            rows.append((usage.input_tokens + usage.output_tokens, usage.requests, ids))
    for tokens, count, ids in rows:
        sums.total_tokens += tokens
        sums.total_requests += count
        for name, ident in ids.items():
            if ident:
                kind = _KIND_OF[name]
                sums.tokens[kind][ident] += tokens
                sums.requests[kind][ident] += count
        _note_project(sums, ids["api_key_id"], ids["project_id"])
    sums.families.append(family)


def _add_costs(sums: _Sums, fetched: Fetched, window: Window) -> None:
    """USD of every result in ``window``, per project and API key and in total.

    Every result is parsed before any is added, so a schema error adds nothing.
    """
    rows: list[tuple[Decimal, str | None, str | None]] = []
    for bucket in fetched.buckets:
        if bucket.day not in window:
            continue
        for result in bucket.results:
            cost = parse_amount(result.get("amount")) or Decimal(0)
            project = optional_str(result, "project_id", "Costs")
            rows.append((cost, project, optional_str(result, "api_key_id", "Costs")))
    total = Decimal(0)
    # Amounts carry up to 36 decimals (reference §3.3): sum without rounding any away.
    with localcontext(prec=SUM_PRECISION):
        for cost, project, key in rows:
            total += cost
            if project:
                sums.cost["project"][project] += cost
            if key:
                sums.cost["api_key"][key] += cost
            _note_project(sums, key, project)
    sums.total_cost = total


def _note_project(sums: _Sums, key: str | None, project: str | None) -> None:
    if key and project:
        sums.key_projects.setdefault(key, project)


def _scope(sums: _Sums, used: int, skipped: tuple[str, ...], error: str | None) -> Scope:
    costs_known = sums.total_cost is not None

    def totals(kind: str) -> dict[str, IdTotals]:
        ids = set(sums.tokens[kind]) | set(sums.requests[kind])
        money = sums.cost.get(kind)
        if money is not None:
            ids |= set(money)
        return {
            ident: IdTotals(
                tokens=sums.tokens[kind][ident],
                requests=sums.requests[kind][ident],
                cost=money.get(ident, Decimal(0)) if money is not None and costs_known else None,
            )
            for ident in sorted(ids)
        }

    return Scope(
        projects=totals("project"),
        api_keys=totals("api_key"),
        users=totals("user"),
        total_tokens=sums.total_tokens,
        total_requests=sums.total_requests,
        total_cost=sums.total_cost,
        key_projects=dict(sums.key_projects),
        families=tuple(sums.families),
        requests=used,
        skipped=skipped,
        error=error,
    )
