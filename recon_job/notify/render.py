"""Render a notification from Jinja templates: one context, one file per message part.

The templates live in ``recon_job/notify/templates/`` and each renders one part of a
:class:`~recon_job.notify.base.Message`:

=================  ==========================================================================
``subject.txt.j2``  the email subject and Slack header; one line (CR/LF are removed afterwards)
``body.txt.j2``     the plain-text email part
``body.html.j2``    the HTML email part: **autoescaped**, inline styles, tables, no scripts
``slack.txt.j2``    the Slack mrkdwn fallback text (use the ``mrkdwn`` filter on data)
=================  ==========================================================================

A user's ``templates_dir`` is searched first, then the package, so a user overrides any single
file and keeps the others. Every template sees the same context (:func:`build_context`):

* ``event`` (``opened`` … ``test``), ``event_title``, ``group_key``, ``dedupe_key``, ``run_id``
* ``window``: ``kind``, ``key``, ``start``, ``end`` (exclusive), ``first_day``, ``last_day``
* ``status`` (``mismatch``, ``reconciled``, ``pending``, ``failed``), ``threshold_pct``
* ``totals``: ``tokens``, ``requests``, ``cost``, each with ``label``, ``local``, ``openai``,
  ``difference``, ``pct`` (display strings) and ``exceeds``; empty when there is no result
* ``groups``: the top drifting groups (largest |cost difference| first, then |token
  difference|), each with ``day``, ``model``, ``project_id``, ``api_key_id``, ``status`` and
  ``tokens``/``requests``/``cost`` rows like the totals; ``groups_total`` and ``groups_more``
* ``resolved`` (group names), ``unpriced`` (``model``, ``requests``, ``tokens``), ``skipped``
  (``reason``, ``count``), ``skipped_total``, ``pending_days``, ``likely_causes`` (sentences),
  ``error`` (``reason``, ``message``) for ``failed``

Autoescaping: ``select_autoescape()``'s defaults match only ``.html``/``.htm``/``.xml`` and do
**not** escape ``alert.html.j2`` (reliability.md §8, verified), so ``html.j2`` is named
explicitly and everything else (text, subject, Slack) is left raw. Model names and project ids
come from logs and from OpenAI: untrusted data. ``StrictUndefined`` turns a typo in a user
template into an error at render time instead of a silently empty field.

The webhook payload (``Message.payload``) is built from the same data. Its schema,
``recon-job.alert/v1``, only ever gains fields::

    {
      "schema": "recon-job.alert/v1",
      "event": "opened", "group_key": "daily:2026-03-14", "dedupe_key": "…", "run_id": 12,
      "summary": "<the subject line>",
      "window": {"kind", "key", "start", "end", "last_day"},
      "status": "mismatch", "threshold_pct": "5",
      "totals": {"local": {…}, "openai": {…}, "difference": {…}} | null,
      "groups": [{"date", "model", "project_id", "api_key_id", "status",
                  "local": {…}, "openai": {…}, "difference": {…}}, …],
      "groups_total": 3, "resolved": ["…"],
      "unpriced_models": [{"model", "requests", "input_tokens", "cached_tokens",
                           "output_tokens"}],
      "skipped": {"malformed_json": 3}, "pending_days": ["2026-03-14"],
      "likely_causes": ["…"], "error": {"reason", "message"} | null
    }

``local``/``openai``/``difference`` objects are those of ``recon-job run --format json``
(:mod:`recon_job.report`): token counts are integers, money is an exact decimal string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from recon_job import report
from recon_job.errors import ConfigError
from recon_job.models import GroupResult, Metric, ReconResult, Status, Usage, UsageKey, Window
from recon_job.notify.base import AlertEvent, Message

#: The webhook payload's schema name and version.
PAYLOAD_SCHEMA: Final = "recon-job.alert/v1"

SUBJECT_TEMPLATE: Final = "subject.txt.j2"
TEXT_TEMPLATE: Final = "body.txt.j2"
HTML_TEMPLATE: Final = "body.html.j2"
SLACK_TEMPLATE: Final = "slack.txt.j2"
#: Every template file, one per message part.
TEMPLATES: Final = (SUBJECT_TEMPLATE, TEXT_TEMPLATE, HTML_TEMPLATE, SLACK_TEMPLATE)

EVENT_TITLES: Final[Mapping[str, str]] = {
    "opened": "Usage drift detected",
    "updated": "More groups drifting",
    "repeat": "Still drifting",
    "resolved": "Drift resolved",
    "failed": "Reconciliation failed",
    "summary": "Reconciliation summary",
    "channel_failing": "A notification channel is failing",
    "test": "Test alert",
}

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_HUNDRED = Decimal(100)


def one_line(text: str) -> str:
    """``text`` with every line break (CR, LF and Unicode ones) and run of spaces made one space.

    A subject is an email header: a CR/LF in it would start a new header (``Bcc:``); the
    ``email`` package refuses it with ``ValueError`` (reliability.md §8), so it is removed here.
    """
    return _SPACES.sub(" ", _LINE_BREAKS.sub(" ", text)).strip()


def mrkdwn_escape(value: object) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn, so data can't form links or @mentions.

    Slack reads ``<!channel>`` and ``<https://x|text>`` as control sequences; its docs ask for
    exactly these three characters to be escaped in message text.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@functools.lru_cache(maxsize=16)
def _environment(templates_dir: str | None) -> Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(PackageLoader("recon_job.notify", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mrkdwn"] = mrkdwn_escape
    return env


def environment(templates_dir: Path | None = None) -> Environment:
    """The (cached) Jinja environment for ``templates_dir`` (None: the package's templates)."""
    return _environment(None if templates_dir is None else str(templates_dir))


def _render(env: Environment, name: str, context: Mapping[str, Any], where: Path | None) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"template {e.filename or name}, line {e.lineno}: {e.message}") from e
    except jinja2.TemplateError as e:
        origin = f" (looked in {where} and the built-in templates)" if where else ""
        raise ConfigError(f"template {name}{origin}: {e.message or type(e).__name__}") from e


# --- formatting -------------------------------------------------------------------------


def _count(value: Decimal) -> str:
    return f"{int(value):,}"


def _signed_count(value: Decimal) -> str:
    return f"{int(value):+,}"


def _signed_money(value: Decimal) -> str:
    text = report.money(value)
    return text if text.startswith("-") else f"+{text}"


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}%"


def _metric_row(label: str, metric: Metric, *, money: bool) -> dict[str, Any]:
    if money:
        local, openai = report.money(metric.local), report.money(metric.openai)
        difference = _signed_money(metric.difference)
    else:
        local, openai = _count(metric.local), _count(metric.openai)
        difference = _signed_count(metric.difference)
    return {
        "label": label,
        "local": local,
        "openai": openai,
        "difference": difference,
        "pct": _pct(metric.pct),
        "exceeds": metric.exceeds,
    }


def _metric_rows(comparison: Any) -> dict[str, dict[str, Any]]:
    return {
        "tokens": _metric_row("Tokens", comparison.tokens, money=False),
        "requests": _metric_row("Requests", comparison.requests, money=False),
        "cost": _metric_row("Cost (USD)", comparison.cost, money=True),
    }


def group_name(key: UsageKey) -> str:
    """A group as people read it: ``2026-03-14 gpt-4o [proj_1] [key_1]``."""
    parts = [key.day.isoformat(), key.model]
    parts += [p for p in (key.project_id, key.api_key_id) if p]
    return " ".join(parts)


def top_groups(groups: Sequence[GroupResult]) -> list[GroupResult]:
    """``groups`` by largest |cost difference|, then largest |token difference|, then by key."""
    return sorted(
        groups,
        key=lambda g: (
            -abs(g.comparison.cost.difference),
            -abs(g.comparison.tokens.difference),
            g.key.day,
            g.key.model,
            g.key.project_id or "",
            g.key.api_key_id or "",
        ),
    )


# --- likely causes ----------------------------------------------------------------------


def _names(models: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(models[:limit])
    return shown if len(models) <= limit else f"{shown} and {len(models) - limit} more"


def _by_model(groups: Sequence[GroupResult]) -> dict[str, tuple[Usage, Usage]]:
    out: dict[str, tuple[Usage, Usage]] = {}
    for g in groups:
        local, openai = out.get(g.key.model, (Usage(), Usage()))
        out[g.key.model] = (local + g.local, openai + g.openai)
    return out


def likely_causes(result: ReconResult) -> list[str]:
    """Short sentences explaining a drift, derived from the data alone (pure).

    Users want the gap explained, not just measured (peers-and-user-complaints.md row 9 and
    (d)2: coverage gap, token-class gap, price gap, unpriced model, late data). Each rule looks
    at groups whose figure is out of tolerance, so a one-request wobble explains nothing; the
    totals count as well, since many small drifts can add up.
    """
    causes: list[str] = []
    settled = [g for g in result.groups if g.status is not Status.PENDING]
    c = result.comparison

    missing = sum(
        -int(g.comparison.requests.difference)
        for g in settled
        if g.comparison.requests.exceeds and g.comparison.requests.difference < 0
    )
    extra = sum(
        int(g.comparison.requests.difference)
        for g in settled
        if g.comparison.requests.exceeds and g.comparison.requests.difference > 0
    )
    # The totals catch many small drifts adding up, but they include unsettled days.
    totals_settled = not result.pending_days
    if not missing and not extra and totals_settled and c.requests.exceeds:
        missing = max(0, -int(c.requests.difference))
        extra = max(0, int(c.requests.difference))
    if missing:
        causes.append(
            f"{missing:,} requests OpenAI counted are not in your logs — retries, timeouts "
            "or traffic that bypasses the logger."
        )
    if extra:
        causes.append(
            f"{extra:,} more requests in your logs than OpenAI counted — duplicated log "
            "lines, requests that never reached OpenAI, or logs from outside the window."
        )

    repriced = sorted(
        {
            g.key.model
            for g in settled
            if g.comparison.cost.exceeds
            and not g.comparison.tokens.exceeds
            and g.local.total_tokens
            and g.openai.total_tokens
        }
    )
    if repriced:
        causes.append(
            f"Tokens match but cost differs for {_names(repriced)} — the price table may be "
            "out of date, or a batch/flex/priority tier is priced at the standard rate."
        )

    for model, (local, openai) in sorted(_by_model(settled).items()):
        local_seen = local.requests or local.total_tokens
        openai_seen = openai.requests or openai.total_tokens
        if openai_seen and not local_seen:
            causes.append(
                f"Model {model} appears only at OpenAI (unlogged traffic, a new model, or a "
                "name the alias map does not cover)."
            )
        elif local_seen and not openai_seen:
            causes.append(
                f"Model {model} appears only in your logs (a name the alias map does not "
                "cover, another organization or project, or traffic OpenAI never billed)."
            )

    if result.unpriced:
        models = sorted(result.unpriced)
        causes.append(
            f"No price for {_names(models)}: its cost is not counted on your side — add a "
            "price to your pricing file."
        )

    if (totals_settled and c.cached_tokens.exceeds) or any(
        g.comparison.cached_tokens.exceeds for g in settled
    ):
        causes.append(
            f"Cached input tokens differ ({_count(c.cached_tokens.local)} in your logs vs "
            f"{_count(c.cached_tokens.openai)} at OpenAI) — check that the logger records "
            "cached tokens and that they are priced at the cached rate."
        )

    skipped = {r: n for r, n in result.skipped.items() if not r.startswith("openai.") and n}
    if skipped:
        total = sum(skipped.values())
        detail = ", ".join(f"{r} {n:,}" for r, n in sorted(skipped.items()))
        causes.append(
            f"{total:,} log lines were skipped ({detail}) — their usage is missing from your side."
        )

    if result.pending_days:
        days = ", ".join(d.isoformat() for d in result.pending_days)
        causes.append(
            f"Not settled yet: {days} — OpenAI's figures for these days may still change."
        )
    return causes


# --- context and payload ----------------------------------------------------------------


def build_context(
    *,
    event: AlertEvent,
    group_key: str,
    dedupe_key: str,
    window: Window,
    result: ReconResult | None,
    error: tuple[str, str] | None = None,
    firing: Sequence[GroupResult] = (),
    resolved: Sequence[str] = (),
    run_id: int | None = None,
    max_groups: int = 10,
) -> dict[str, Any]:
    """The one context every template renders from; ``context["data"]`` feeds the payload."""
    drifting = top_groups(firing if firing else (result.mismatches if result else ()))
    shown = drifting[: max(0, max_groups)]
    window_ctx = {
        "kind": window.kind,
        "key": window.key,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "first_day": window.start.isoformat(),
        "last_day": window.last_day.isoformat(),
    }
    status = str(result.status) if result is not None else str(Status.FAILED)
    skipped = dict(sorted(result.skipped.items())) if result is not None else {}
    context: dict[str, Any] = {
        "event": event,
        "event_title": EVENT_TITLES.get(event, event),
        "group_key": group_key,
        "dedupe_key": dedupe_key,
        "run_id": run_id,
        "window": window_ctx,
        "status": status,
        "threshold_pct": str(result.tolerance.threshold_pct) if result is not None else None,
        "totals": _metric_rows(result.comparison) if result is not None else {},
        "groups": [
            {
                "name": group_name(g.key),
                "day": g.key.day.isoformat(),
                "model": g.key.model,
                "project_id": g.key.project_id,
                "api_key_id": g.key.api_key_id,
                "status": str(g.status),
                **_metric_rows(g.comparison),
            }
            for g in shown
        ],
        "groups_total": len(drifting),
        "groups_more": len(drifting) - len(shown),
        "resolved": list(resolved),
        "unpriced": [
            {"model": m, "requests": f"{u.requests:,}", "tokens": f"{u.total_tokens:,}"}
            for m, u in sorted(result.unpriced.items())
        ]
        if result is not None
        else [],
        "skipped": [{"reason": r, "count": f"{n:,}"} for r, n in skipped.items()],
        "skipped_total": sum(skipped.values()),
        "pending_days": [d.isoformat() for d in result.pending_days] if result else [],
        "likely_causes": likely_causes(result) if result is not None else [],
        "error": {"reason": error[0], "message": error[1]} if error is not None else None,
    }
    context["data"] = {
        "window": report.window_dict(window),
        "totals": None
        if result is None
        else {
            "local": report.totals(result.local),
            "openai": report.totals(result.openai),
            "difference": report.difference(result.comparison),
        },
        "groups": [report.group_dict(g) for g in shown],
        "unpriced_models": report.unpriced_list(result.unpriced) if result is not None else [],
        "skipped": skipped,
    }
    return context


def build_payload(context: Mapping[str, Any], *, summary: str) -> dict[str, Any]:
    """The generic webhook's JSON body (schema ``recon-job.alert/v1``) from a context."""
    data = context["data"]
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": context["event"],
        "group_key": context["group_key"],
        "dedupe_key": context["dedupe_key"],
        "run_id": context["run_id"],
        "summary": summary,
        "window": data["window"],
        "status": context["status"],
        "threshold_pct": context["threshold_pct"],
        "totals": data["totals"],
        "groups": data["groups"],
        "groups_total": context["groups_total"],
        "resolved": list(context["resolved"]),
        "unpriced_models": data["unpriced_models"],
        "skipped": data["skipped"],
        "pending_days": list(context["pending_days"]),
        "likely_causes": list(context["likely_causes"]),
        "error": context["error"],
    }


def render_message(
    *,
    event: AlertEvent,
    group_key: str,
    dedupe_key: str,
    window: Window,
    result: ReconResult | None,
    error: tuple[str, str] | None = None,
    firing: Sequence[GroupResult] = (),
    resolved: Sequence[str] = (),
    run_id: int | None = None,
    templates_dir: Path | None = None,
    max_groups: int = 10,
) -> Message:
    """Render every part of one notification.

    ``result`` is None when the run failed; then ``error`` is ``(reason, message)``.
    ``firing`` are the groups to report as drifting (default: the result's mismatches);
    ``resolved`` names the groups back within tolerance. At most ``max_groups`` groups are
    listed. Raises :class:`~recon_job.errors.ConfigError` when a template is broken (a syntax
    error, an undefined variable), naming the template.
    """
    context = build_context(
        event=event,
        group_key=group_key,
        dedupe_key=dedupe_key,
        window=window,
        result=result,
        error=error,
        firing=firing,
        resolved=resolved,
        run_id=run_id,
        max_groups=max_groups,
    )
    env = environment(templates_dir)
    subject = one_line(_render(env, SUBJECT_TEMPLATE, context, templates_dir))
    return Message(
        dedupe_key=dedupe_key,
        event=event,
        group_key=group_key,
        subject=subject,
        text=_render(env, TEXT_TEMPLATE, context, templates_dir),
        html=_render(env, HTML_TEMPLATE, context, templates_dir),
        slack_text=_render(env, SLACK_TEMPLATE, context, templates_dir).strip(),
        payload=build_payload(context, summary=subject),
    )


def sample_result() -> ReconResult:
    """A realistic drifting day: missing requests, a stale price, an unlogged and an unpriced
    model, skipped log lines."""
    # compare is pure (no I/O); using it keeps the sample consistent with real results.
    from recon_job.compare import reconcile
    from recon_job.models import Tolerance, UsageTotals

    day = date(2026, 3, 14)
    window = Window("daily", day, date(2026, 3, 15))
    local = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o", "proj_app"): Usage(
                4_100_000, 1_200_000, 820_000, 3_900, Decimal("17.450000")
            ),
            UsageKey(day, "gpt-4o-mini", "proj_app"): Usage(
                9_000_000, 0, 2_000_000, 12_000, Decimal("1.800000")
            ),
        },
        skipped={"malformed_json": 3, "missing_usage": 12},
        unpriced={"ft:gpt-4o-mini:acme": Usage(50_000, 0, 10_000, 40)},
    )
    official = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o", "proj_app"): Usage(
                4_600_000, 1_200_000, 910_000, 4_400, Decimal("19.820000")
            ),
            UsageKey(day, "gpt-4o-mini", "proj_app"): Usage(
                9_000_000, 0, 2_000_000, 12_000, Decimal("2.550000")
            ),
            UsageKey(day, "o3-mini", "proj_batch"): Usage(
                300_000, 0, 150_000, 220, Decimal("0.990000")
            ),
        }
    )
    return reconcile(local, official, window=window, tolerance=Tolerance())


def sample_message(dedupe_key: str = "test", *, templates_dir: Path | None = None) -> Message:
    """A sample drift alert for ``recon-job alerts test``, rendered with the real templates."""
    result = sample_result()
    return render_message(
        event="test",
        group_key=result.window.key,
        dedupe_key=dedupe_key,
        window=result.window,
        result=result,
        templates_dir=templates_dir,
    )


def check_templates(templates_dir: Path | None) -> list[str]:
    """Problems rendering the sample message with ``templates_dir`` (empty: all fine).

    Meant for config load / ``check-config``: a broken user template is found before an alert
    needs it.
    """
    if templates_dir is not None and not templates_dir.is_dir():
        return [f"templates directory {templates_dir} does not exist"]
    try:
        sample_message(templates_dir=templates_dir)
        render_message(
            event="failed",
            group_key="daily:2026-03-14",
            dedupe_key="check",
            window=Window("daily", date(2026, 3, 14), date(2026, 3, 15)),
            result=None,
            error=("sample", "a sample failure"),
            templates_dir=templates_dir,
        )
    except ConfigError as e:
        return list(e.problems)
    return []


__all__ = [
    "HTML_TEMPLATE",
    "PAYLOAD_SCHEMA",
    "SLACK_TEMPLATE",
    "SUBJECT_TEMPLATE",
    "TEMPLATES",
    "TEXT_TEMPLATE",
    "build_context",
    "build_payload",
    "check_templates",
    "environment",
    "group_name",
    "likely_causes",
    "mrkdwn_escape",
    "one_line",
    "render_message",
    "sample_message",
    "sample_result",
    "top_groups",
]
