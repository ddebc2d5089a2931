"""The diagnosis in the run's output: the ``diagnosis`` object of ``--format json`` and the
text report's section (issue 12 item 10).

The JSON object follows the rest of the document: money is an exact decimal string with at
least 6 decimals (:func:`recon_job.report.formats.money`), percentages decimal strings with 6
decimals, other decimals (a gap's difference in tokens or requests) exact strings, days
``YYYY-MM-DD`` and times ISO 8601 in UTC with a ``Z``. :func:`diagnosis_from_dict` reads the
object back (the history stores it in ``runs.diagnosis``): what it gives equals what was
written, percentages as rounded to their 6 decimals. Fields are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from recon_job.findings import (
    Bridge,
    BridgePart,
    ChangePoint,
    Diagnosis,
    Duplicates,
    Gap,
    GroupDiagnosis,
    GroupRef,
    PriceFinding,
    Restatement,
    ShadowEntry,
)
from recon_job.models import MONEY
from recon_job.report.formats import money, pct, signed_money_text

# --- JSON ---------------------------------------------------------------------------------


def diagnosis_dict(d: Diagnosis) -> dict[str, Any]:
    """The ``diagnosis`` object of ``run --format json``: per drifting group and per window."""
    return {
        "summary": list(d.summary),
        "groups": [_group_dict(g) for g in d.groups],
        "bridge": bridge_dict(d.bridge),
        "shadow": [_shadow_dict(s) for s in d.shadow],
        "duplicates": _duplicates_dict(d.duplicates),
        "restatements": [_restatement_dict(r) for r in d.restatements],
        "price_findings": [_price_dict(p) for p in d.price_findings],
        "change_points": [_change_point_dict(c) for c in d.change_points],
        "requests_used": d.requests_used,
    }


def diagnosis_from_dict(data: Mapping[str, Any]) -> Diagnosis:
    """The :class:`Diagnosis` that :func:`diagnosis_dict` wrote; a field it lacks (an object
    written before the field existed) takes the dataclass's default."""
    return Diagnosis(
        groups=tuple(_group_from(g) for g in data.get("groups", ())),
        bridge=bridge_from_dict(data.get("bridge")),
        shadow=tuple(_shadow_from(s) for s in data.get("shadow", ())),
        duplicates=_duplicates_from(data.get("duplicates")),
        restatements=tuple(_restatement_from(r) for r in data.get("restatements", ())),
        price_findings=tuple(_price_from(p) for p in data.get("price_findings", ())),
        change_points=tuple(_change_point_from(c) for c in data.get("change_points", ())),
        requests_used=int(data.get("requests_used", 0)),
        summary=tuple(str(s) for s in data.get("summary", ())),
    )


def bridge_dict(bridge: Bridge | None) -> dict[str, Any] | None:
    """``{"difference", "parts": [{"name", "amount", "detail"}]}``, or None for no bridge."""
    if bridge is None:
        return None
    return {
        "difference": money(bridge.difference),
        "parts": [
            {"name": p.name, "amount": money(p.amount), "detail": p.detail} for p in bridge.parts
        ],
    }


def bridge_from_dict(data: Mapping[str, Any] | None) -> Bridge | None:
    """The :class:`Bridge` :func:`bridge_dict` wrote."""
    if data is None:
        return None
    return Bridge(
        difference=Decimal(data["difference"]),
        parts=tuple(
            BridgePart(p["name"], Decimal(p["amount"]), p.get("detail", ""))
            for p in data.get("parts", ())
        ),
    )


def _group_dict(g: GroupDiagnosis) -> dict[str, Any]:
    return {
        "group": _ref_dict(g.group),
        "gaps": [_gap_dict(gap) for gap in g.gaps],
        "shift_hours": g.shift_hours,
        "bridge": bridge_dict(g.bridge),
        "price_findings": [_price_dict(p) for p in g.price_findings],
        "skipped": g.skipped,
    }


def _group_from(data: Mapping[str, Any]) -> GroupDiagnosis:
    shift = data.get("shift_hours")
    return GroupDiagnosis(
        group=_ref_from(data["group"]),
        gaps=tuple(_gap_from(g) for g in data.get("gaps", ())),
        shift_hours=None if shift is None else int(shift),
        bridge=bridge_from_dict(data.get("bridge")),
        price_findings=tuple(_price_from(p) for p in data.get("price_findings", ())),
        skipped=data.get("skipped"),
    )


def _ref_dict(ref: GroupRef) -> dict[str, Any]:
    return {
        "day": ref.day.isoformat(),
        "family": ref.family,
        "model": ref.model,
        "project_id": ref.project_id,
    }


def _ref_from(data: Mapping[str, Any]) -> GroupRef:
    return GroupRef(
        day=date.fromisoformat(data["day"]),
        family=data["family"],
        model=data["model"],
        project_id=data.get("project_id"),
    )


def _gap_dict(gap: Gap) -> dict[str, Any]:
    return {
        "start": _when(gap.start),
        "end": _when(gap.end),
        "quantity": gap.quantity,
        "difference": money(gap.difference) if gap.quantity == "cost" else _exact(gap.difference),
        "share_pct": pct(gap.share_pct),
        "resolution": gap.resolution,
    }


def _gap_from(data: Mapping[str, Any]) -> Gap:
    return Gap(
        start=_when_from(data["start"]),
        end=_when_from(data["end"]),
        quantity=data["quantity"],
        difference=Decimal(data["difference"]),
        share_pct=Decimal(data["share_pct"]),
        resolution=data.get("resolution", "1h"),
    )


def _price_dict(p: PriceFinding) -> dict[str, Any]:
    return {
        "model": p.model,
        "piece": p.piece,
        "tier": p.tier,
        "billed": money(p.billed),
        "table": None if p.table is None else money(p.table),
        "unit": p.unit,
        "since": p.since.isoformat(),
        "last_day": None if p.last_day is None else p.last_day.isoformat(),
    }


def _price_from(data: Mapping[str, Any]) -> PriceFinding:
    table, last = data.get("table"), data.get("last_day")
    return PriceFinding(
        model=data["model"],
        piece=data["piece"],
        tier=data["tier"],
        billed=Decimal(data["billed"]),
        table=None if table is None else Decimal(table),
        unit=data["unit"],
        since=date.fromisoformat(data["since"]),
        last_day=None if last is None else date.fromisoformat(last),
    )


def _shadow_dict(s: ShadowEntry) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "id": s.id,
        "name": s.name,
        "tokens": s.tokens,
        "requests": s.requests,
        "cost": None if s.cost is None else money(s.cost),
        "token_share_pct": pct(s.token_share_pct),
        "cost_share_pct": pct(s.cost_share_pct),
    }


def _shadow_from(data: Mapping[str, Any]) -> ShadowEntry:
    cost, share = data.get("cost"), data.get("cost_share_pct")
    return ShadowEntry(
        kind=data["kind"],
        id=data["id"],
        name=data.get("name"),
        tokens=int(data["tokens"]),
        requests=int(data["requests"]),
        cost=None if cost is None else Decimal(cost),
        token_share_pct=Decimal(data["token_share_pct"]),
        cost_share_pct=None if share is None else Decimal(share),
    )


def _duplicates_dict(d: Duplicates | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "count": d.count,
        "request_ids": d.request_ids,
        "cost": money(d.cost),
        "locations": list(d.locations),
    }


def _duplicates_from(data: Mapping[str, Any] | None) -> Duplicates | None:
    if data is None:
        return None
    return Duplicates(
        count=int(data["count"]),
        request_ids=int(data["request_ids"]),
        cost=Decimal(data["cost"]),
        locations=tuple(data.get("locations", ())),
    )


def _restatement_dict(r: Restatement) -> dict[str, Any]:
    as_text = money if r.quantity == "cost" else _exact
    return {
        "group": _ref_dict(r.group),
        "quantity": r.quantity,
        "before": as_text(r.before),
        "after": as_text(r.after),
        "seen_at": _when(r.seen_at),
        "previous_run_id": r.previous_run_id,
    }


def _restatement_from(data: Mapping[str, Any]) -> Restatement:
    previous = data.get("previous_run_id")
    return Restatement(
        group=_ref_from(data["group"]),
        quantity=data["quantity"],
        before=Decimal(data["before"]),
        after=Decimal(data["after"]),
        seen_at=_when_from(data["seen_at"]),
        previous_run_id=None if previous is None else int(previous),
    )


def _change_point_dict(c: ChangePoint) -> dict[str, Any]:
    return {
        "family": c.family,
        "model": c.model,
        "day": c.day.isoformat(),
        "before_pct": pct(c.before_pct),
        "after_pct": pct(c.after_pct),
    }


def _change_point_from(data: Mapping[str, Any]) -> ChangePoint:
    return ChangePoint(
        family=data["family"],
        model=data["model"],
        day=date.fromisoformat(data["day"]),
        before_pct=Decimal(data["before_pct"]),
        after_pct=Decimal(data["after_pct"]),
    )


def _when(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (``2026-02-03T14:00:00Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when_from(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _exact(value: Decimal) -> str:
    """Every digit, no exponent (``-312``, ``12.5``)."""
    return format(value.normalize(MONEY) if value else Decimal(0), "f")


# --- text ---------------------------------------------------------------------------------


def diagnosis_lines(d: Diagnosis) -> list[str]:
    """The text report's ``diagnosis`` section: one sentence per finding, then the window's cost
    bridge as a table (part, amount, what it is), money as the rest of the report writes it.
    Nothing when nothing was found."""
    lines: list[str] = []
    if d.summary:
        lines += ["", "diagnosis:", *(f"  - {sentence}" for sentence in d.summary)]
    bridge = d.bridge
    if bridge is not None and bridge.parts:
        rows = [("part", "amount", "")]
        rows += [(p.name, signed_money_text(p.amount), p.detail) for p in bridge.parts]
        rows.append(("difference", signed_money_text(bridge.difference), "local − OpenAI"))
        lines += ["", "cost bridge (local − OpenAI, parts add up to the difference):"]
        lines += [f"  {row}" for row in _aligned(rows)]
    if d.requests_used:
        lines.append(
            f"  ({d.requests_used:,} extra Usage API request{'s' if d.requests_used != 1 else ''}"
            " for the diagnosis)"
        )
    return lines


def _aligned(rows: Sequence[tuple[str, str, str]]) -> list[str]:
    """Name left, amount right, detail left; the last column is not padded."""
    name_width = max(len(r[0]) for r in rows)
    amount_width = max(len(r[1]) for r in rows)
    return [
        f"{name.ljust(name_width)}  {amount.rjust(amount_width)}  {detail}".rstrip()
        for name, amount, detail in rows
    ]
