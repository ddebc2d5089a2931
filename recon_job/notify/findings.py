"""Finding notices: a stale price, a revised day, shadow usage, a drift trend, each told once.

A drift alert follows a window's groups through Alertmanager's lifecycle (opened, repeat,
resolved); a finding is news once: OpenAI bills another price, revised a settled day, counts a
key the logs never mention, or a model's drift moved and stayed. Each is a
:class:`FindingNotice` about one *subject* (``price:gpt-5:cached input:standard:0.125``,
``restated:2026-11-28:completions:gpt-4o``, ``shadow:api_key:key_abc:monthly:2026-11``,
``trend:completions:gpt-4o:2026-11-14``): its dedupe key is a hash of event and subject, so a
subject is notified once per channel whatever the number of runs that find it again
(:func:`recon_job.delivery.plan_findings`).

The builders here are pure: findings in, notices out, sentences written for people (money as
:mod:`recon_job.notify.figures` writes it, a price with every digit it has). The notice's
``data`` is the finding's exact figures for the webhook (decimal strings, ISO dates), sent under
schema :data:`FINDING_SCHEMA`::

    {
      "schema": "recon-job.finding/v1",
      "event": "price_changed", "group_key": "price:gpt-5:cached input:standard:0.125",
      "subject_key": "price:gpt-5:cached input:standard:0.125", "dedupe_key": "…",
      "run_id": 12, "summary": "<the subject line>", "title": "…", "lines": ["…"],
      "finding": {<the figures: see each builder>}
    }

``group_key`` is ``subject_key`` cut to the history's 100 characters (with a hash of the whole
when it is longer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from recon_job.diagnosis.prices import PER_1M_TOKENS, price_sentence, usd
from recon_job.findings import ChangePoint, GroupRef, PriceFinding, Restatement, ShadowEntry
from recon_job.models import MONEY, AlertEvent, Window
from recon_job.notify import figures
from recon_job.report.formats import count_text, money, pct_text

#: The webhook payload's schema name and version for a finding notice.
FINDING_SCHEMA: Final = "recon-job.finding/v1"
#: The longest group key the history stores (``outbox.group_key``, ``notification_log``).
GROUP_KEY_LENGTH: Final = 100
#: Characters of the SHA-256 hex digest that end a group key cut to fit.
_HASH_CHARS: Final = 16

_SHADOW_KINDS: Final[Mapping[str, str]] = {
    "project": "Project",
    "api_key": "API key",
    "user": "User",
}


@dataclass(frozen=True)
class FindingNotice:
    """One finding to tell once per channel: what it is about, and what to say."""

    #: ``price_changed``, ``restated``, ``shadow_usage`` or ``trend``.
    event: AlertEvent
    #: What the finding is about, stable across runs (``price:gpt-5:cached input:standard:0.125``).
    subject_key: str
    #: One line (the email subject and the Slack header after ``[recon-job]``).
    title: str
    #: Sentences for people, most important first.
    lines: tuple[str, ...]
    #: The finding's exact figures for the webhook (JSON-ready: strings, numbers, lists).
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def group_key(self) -> str:
        """``subject_key``, or its start and a hash of it when longer than 100 characters."""
        return group_key_of(self.subject_key)

    @property
    def dedupe_key(self) -> str:
        """The same for every run that finds this subject again: 32 hex characters."""
        text = json.dumps(["finding", self.event, self.subject_key], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def group_key_of(subject_key: str) -> str:
    """``subject_key`` when it fits the history's group key column; else its first characters,
    ``~`` and 16 hex characters of its SHA-256 (still unique, still readable)."""
    if len(subject_key) <= GROUP_KEY_LENGTH:
        return subject_key
    digest = hashlib.sha256(subject_key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{subject_key[: GROUP_KEY_LENGTH - _HASH_CHARS - 1]}~{digest}"


def _exact(value: Decimal | None) -> str | None:
    """A Decimal as the payload writes it (``0.125``, never ``1.25E-1``); None stays None."""
    return None if value is None else format(value.normalize(MONEY), "f")


def _price_key(value: Decimal) -> str:
    # normalize() alone writes 10 as "1E+1"; "f" keeps it "10".
    return format(value.normalize(MONEY), "f")


# --- price_changed -------------------------------------------------------------------------


def price_notices(findings: Iterable[PriceFinding]) -> tuple[FindingNotice, ...]:
    """One ``price_changed`` notice per model x piece x tier x billed price.

    "OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25".
    A later price for the same piece is a new subject, so it is told too.
    """
    notices: list[FindingNotice] = []
    for f in findings:
        sentence = price_sentence(f)
        lines = [sentence]
        if f.last_day is not None and f.last_day != f.since:
            lines.append(
                f"Billed at that price from {f.since.isoformat()} to {f.last_day.isoformat()} "
                "(as far as the data shows)."
            )
        lines.append(
            f"Costs your side computes for {f.model} {f.piece} are off until the price table "
            "says what OpenAI bills."
        )
        tier = "" if f.tier == "standard" else f" ({f.tier})"
        unit = "/1M" if f.unit == PER_1M_TOKENS else f"/{f.unit}"
        table = "none in your table" if f.table is None else f"{usd(f.table)}{unit} in your table"
        notices.append(
            FindingNotice(
                event="price_changed",
                subject_key=f"price:{f.model}:{f.piece}:{f.tier}:{_price_key(f.billed)}",
                title=f"{f.model} {f.piece}{tier}: {usd(f.billed)}{unit} billed, {table}",
                lines=tuple(lines),
                data={
                    "model": f.model,
                    "piece": f.piece,
                    "tier": f.tier,
                    "billed": _exact(f.billed),
                    "table": _exact(f.table),
                    "unit": f.unit,
                    "since": f.since.isoformat(),
                    "last_day": None if f.last_day is None else f.last_day.isoformat(),
                },
            )
        )
    return tuple(notices)


# --- restated ------------------------------------------------------------------------------


def _group_subject(group: GroupRef) -> str:
    where = f":{group.project_id}" if group.project_id else ""
    return f"{group.day.isoformat()}:{group.family}:{group.model}{where}"


def _quantity(quantity: str, value: Decimal, *, signed: bool = False) -> str:
    if quantity == "cost":
        return figures.signed_money(value) if signed else figures.money(value)
    return count_text(value, signed=signed)


def _revision(changes: Iterable[Restatement]) -> str:
    """A short fingerprint of the revised figures."""
    text = ";".join(f"{r.quantity}={_exact(r.after)}" for r in sorted(changes, key=_by_quantity))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _by_quantity(r: Restatement) -> str:
    return r.quantity


def restated_notices(restatements: Iterable[Restatement]) -> tuple[FindingNotice, ...]:
    """One ``restated`` notice per revised group (day x family x model x project), listing
    every quantity OpenAI changed: "OpenAI revised the cost of 2026-11-28 completions gpt-4o
    from $12.40 to $13.10 (+$0.70)"."""
    by_group: dict[GroupRef, list[Restatement]] = {}
    for r in restatements:
        by_group.setdefault(r.group, []).append(r)
    notices: list[FindingNotice] = []
    for group, changes in by_group.items():
        lines = [
            f"OpenAI revised the {r.quantity} of {group.label} from "
            f"{_quantity(r.quantity, r.before)} to {_quantity(r.quantity, r.after)} "
            f"({_quantity(r.quantity, r.after - r.before, signed=True)}), "
            f"seen {r.seen_at.strftime('%Y-%m-%d %H:%M')} UTC."
            for r in changes
        ]
        lines.append(
            "OpenAI documents billing delays of 24-48 hours: a settled day's figures can still "
            "move, and earlier reports of this day used the old ones."
        )
        notices.append(
            FindingNotice(
                event="restated",
                # The new figures are part of the subject: a later revision of the same day is
                # told again, a rerun seeing the same figures is not.
                subject_key=f"restated:{_group_subject(group)}:{_revision(changes)}",
                title=f"OpenAI revised {group.label}",
                lines=tuple(lines),
                data={
                    "date": group.day.isoformat(),
                    "family": group.family,
                    "model": group.model,
                    "project_id": group.project_id,
                    "changes": [
                        {
                            "quantity": r.quantity,
                            "before": _exact(r.before),
                            "after": _exact(r.after),
                            "difference": _exact(r.after - r.before),
                            "seen_at": r.seen_at.isoformat(),
                            "previous_run_id": r.previous_run_id,
                        }
                        for r in changes
                    ],
                },
            )
        )
    return tuple(notices)


# --- shadow_usage --------------------------------------------------------------------------


def _share(entry: ShadowEntry) -> Decimal:
    """The larger of the entry's token and cost shares, percent."""
    return max(entry.token_share_pct, entry.cost_share_pct or Decimal(0))


def shadow_notices(
    entries: Iterable[ShadowEntry], window: Window, *, min_share_pct: Decimal | None = None
) -> tuple[FindingNotice, ...]:
    """One ``shadow_usage`` notice per project, API key or user of ``window`` the logs never
    mention, holding at least ``min_share_pct`` of its tokens or cost (None: every entry; the
    setting is ``diagnosis.shadow_alert_pct``).

    "API key key_abc (ci-bot) that your logs never mention used 12.00% of OpenAI's tokens in
    monthly:2026-11: 1,234,567 tokens, 345 requests, $12.34."
    """
    notices: list[FindingNotice] = []
    for e in entries:
        if min_share_pct is not None and _share(e) < min_share_pct:
            continue
        kind = _SHADOW_KINDS.get(e.kind, e.kind)
        named = f"{kind} {e.id}" + (f" ({e.name})" if e.name and e.name != e.id else "")
        cost = "" if e.cost is None else f", {figures.money(e.cost)}"
        shares = f"{e.token_share_pct:.2f}% of OpenAI's tokens"
        if e.cost_share_pct is not None:
            shares += f" and {e.cost_share_pct:.2f}% of its cost"
        lines = (
            f"{named} that your logs never mention used {shares} in {window.key}: "
            f"{count_text(e.tokens)} tokens, {count_text(e.requests)} requests{cost}.",
            "Log its requests too (or check who holds it): until then the reconciliation "
            "cannot match them.",
        )
        notices.append(
            FindingNotice(
                event="shadow_usage",
                subject_key=f"shadow:{e.kind}:{e.id}:{window.key}",
                title=f"{named}: {pct_text(_share(e)).lstrip('+')} of {window.key} "
                "not in your logs",
                lines=lines,
                data={
                    "kind": e.kind,
                    "id": e.id,
                    "name": e.name,
                    "window": window.key,
                    "tokens": e.tokens,
                    "requests": e.requests,
                    "cost": None if e.cost is None else money(e.cost),
                    "token_share_pct": _exact(e.token_share_pct),
                    "cost_share_pct": _exact(e.cost_share_pct),
                },
            )
        )
    return tuple(notices)


# --- trend ---------------------------------------------------------------------------------


def trend_notices(points: Iterable[ChangePoint]) -> tuple[FindingNotice, ...]:
    """One ``trend`` notice per change point: "gpt-4o drift moved from +0.20% to -3.80% on
    2026-11-14 and stayed"."""
    notices: list[FindingNotice] = []
    for p in points:
        family = "" if p.family == "completions" else f" {p.family}"
        lines = (
            f"{p.model}{family} drift moved from {pct_text(p.before_pct)} to "
            f"{pct_text(p.after_pct)} on {p.day.isoformat()} and stayed.",
            "A persistent shift under the alert threshold: a logging change, a price or a "
            "model name that moved that day is the usual cause.",
        )
        notices.append(
            FindingNotice(
                event="trend",
                subject_key=f"trend:{p.family}:{p.model}:{p.day.isoformat()}",
                title=f"{p.model}{family} drift moved to {pct_text(p.after_pct)} "
                f"on {p.day.isoformat()}",
                lines=lines,
                data={
                    "family": p.family,
                    "model": p.model,
                    "date": p.day.isoformat(),
                    "before_pct": _exact(p.before_pct),
                    "after_pct": _exact(p.after_pct),
                },
            )
        )
    return tuple(notices)


def finding_context(
    notice: FindingNotice, *, run_id: int | None = None, event_title: str = ""
) -> dict[str, Any]:
    """The context the ``finding/`` templates render: ``event``, ``event_title``, ``title``,
    ``lines``, ``subject_key``, ``group_key``, ``dedupe_key``, ``run_id``."""
    return {
        "event": notice.event,
        "event_title": event_title or notice.event,
        "title": notice.title,
        "lines": list(notice.lines),
        "subject_key": notice.subject_key,
        "group_key": notice.group_key,
        "dedupe_key": notice.dedupe_key,
        "run_id": run_id,
    }


def finding_payload(
    notice: FindingNotice, *, summary: str, run_id: int | None = None
) -> dict[str, Any]:
    """The webhook's JSON document for ``notice`` (schema :data:`FINDING_SCHEMA`)."""
    return {
        "schema": FINDING_SCHEMA,
        "event": notice.event,
        "group_key": notice.group_key,
        "subject_key": notice.subject_key,
        "dedupe_key": notice.dedupe_key,
        "run_id": run_id,
        "summary": summary,
        "title": notice.title,
        "lines": list(notice.lines),
        "finding": dict(notice.data),
    }


__all__ = [
    "FINDING_SCHEMA",
    "GROUP_KEY_LENGTH",
    "FindingNotice",
    "finding_context",
    "finding_payload",
    "group_key_of",
    "price_notices",
    "restated_notices",
    "shadow_notices",
    "trend_notices",
]
