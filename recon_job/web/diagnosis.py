"""A run's diagnosis on the dashboard (issue 12): the cost bridge as a waterfall chart, the
finding sentences, and each drifting group's gaps and clock shift.

Read from the JSON object the run stored in ``runs.diagnosis`` (what ``run --format json``
prints under ``diagnosis``: money and percentages as decimal strings). Only what a page needs is
taken from it, and anything missing or malformed is left out rather than failing the page: an
older or newer writer of the column never breaks the dashboard. Geometry only, no script.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from recon_job.report.formats import signed_money_text

#: The waterfall's size (SVG user units) and margins: left for the amounts on the axis, bottom
#: for the part names.
WIDTH: Final = 720
HEIGHT: Final = 250
LEFT: Final = 70
TOP: Final = 20
BOTTOM: Final = 50


@dataclass(frozen=True)
class Step:
    """One named part of the bridge (USD, local - OpenAI)."""

    name: str
    amount: Decimal
    detail: str


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _steps(bridge: object) -> tuple[Decimal, list[Step]] | None:
    """The bridge's difference and its parts; None when there is no usable bridge."""
    if not isinstance(bridge, Mapping):
        return None
    parts = bridge.get("parts")
    steps = [
        Step(str(p.get("name", "")), amount, str(p.get("detail") or ""))
        for p in (parts if isinstance(parts, list) else [])
        if isinstance(p, Mapping) and (amount := _decimal(p.get("amount"))) is not None
    ]
    difference = _decimal(bridge.get("difference"))
    if difference is None:
        difference = sum((s.amount for s in steps), Decimal(0))
    if not steps:
        return None
    return difference, steps


def waterfall(bridge: object) -> dict[str, Any] | None:
    """The SVG geometry of the bridge: each part a bar floating from the running total before
    it to the one after it (green: the part makes local higher, red: OpenAI higher), then the
    difference itself from zero, the total the parts add up to. None without parts."""
    found = _steps(bridge)
    if found is None:
        return None
    difference, steps = found
    levels = [Decimal(0)]
    for s in steps:
        levels.append(levels[-1] + s.amount)
    low = min([*levels, difference, Decimal(0)])
    high = max([*levels, difference, Decimal(0)])
    span = float(high - low) or 1.0
    plot = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / (len(steps) + 1)

    def y(value: Decimal) -> float:
        return round(TOP + float(high - value) / span * plot, 1)

    bars = []
    for i, s in enumerate(steps):
        a, b = levels[i], levels[i + 1]
        bars.append(_bar(i, slot, y(a), y(b), s.name, s.amount, s.detail, _side(s.amount)))
    bars.append(
        _bar(len(steps), slot, y(Decimal(0)), y(difference), "difference", difference, "", "total")
    )
    connectors = [
        {
            "x1": bars[i]["x"] + bars[i]["w"],
            "x2": bars[i + 1]["x"],
            "y": y(levels[i + 1]),
        }
        for i in range(len(steps))
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "zero": y(Decimal(0)),
        "bars": bars,
        "connectors": connectors,
        # The ends of the scale, unless one is the zero the axis already names.
        "high": signed_money_text(high) if high else None,
        "low": signed_money_text(low) if low else None,
        "high_y": y(high),
        "low_y": y(low),
        "difference": signed_money_text(difference),
        "sums": sum((s.amount for s in steps), Decimal(0)) == difference,
    }


def _side(amount: Decimal) -> str:
    if amount > 0:
        return "up"
    return "down" if amount < 0 else "flat"


def _bar(  # noqa: PLR0913 -- the facts of one bar
    i: int,
    slot: float,
    y_from: float,
    y_to: float,
    name: str,
    amount: Decimal,
    detail: str,
    side: str,
) -> dict[str, Any]:
    top, bottom = min(y_from, y_to), max(y_from, y_to)
    x = round(LEFT + i * slot + slot * 0.15, 1)
    text = signed_money_text(amount)
    return {
        "x": x,
        "w": round(slot * 0.7, 1),
        "y": top,
        "h": round(max(bottom - top, 1.0), 1),
        "side": side,
        "name": name.replace("_", " "),
        "amount": text,
        # The amount above a bar above zero, below one below it (clear of the names under the
        # plot: BOTTOM leaves room for both).
        "text_y": round(top - 5 if amount >= 0 else bottom + 14, 1),
        "label_x": round(x + slot * 0.35, 1),
        "title": f"{name.replace('_', ' ')}: {text}" + (f" — {detail}" if detail else ""),
        "detail": detail,
    }


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _gap_text(gap: Mapping[str, Any]) -> str | None:
    start, end = _when(gap.get("start")), _when(gap.get("end"))
    difference = _decimal(gap.get("difference"))
    if start is None or end is None or difference is None:
        return None
    quantity = str(gap.get("quantity") or "")
    if quantity == "cost":
        amount = signed_money_text(difference)
    else:
        amount = f"{difference:+,f} {quantity}".replace("+-", "-")
    share = _decimal(gap.get("share_pct"))
    until = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
    where = f"{start.strftime('%Y-%m-%d %H:%M')}–{until} UTC"
    return f"{where}: {amount}" + (f" ({share:.0f}% of the gap)" if share is not None else "")


def _groups(groups: object) -> list[dict[str, Any]]:
    """Each drifting group with something located: its label, clock shift and gaps."""
    shown = []
    for g in groups if isinstance(groups, list) else []:
        if not isinstance(g, Mapping) or not isinstance(g.get("group"), Mapping):
            continue
        ref = g["group"]
        listed = g.get("gaps")
        gaps = [
            text
            for gap in (listed if isinstance(listed, list) else [])
            if isinstance(gap, Mapping) and (text := _gap_text(gap)) is not None
        ]
        shift = g.get("shift_hours")
        shift = shift if isinstance(shift, int) and not isinstance(shift, bool) else None
        if not gaps and shift is None:
            continue
        project = f" [{ref['project_id']}]" if ref.get("project_id") else ""
        shown.append(
            {
                "label": f"{ref.get('day', '')} {ref.get('family', '')} {ref.get('model', '')}"
                + project,
                "shift": None if shift is None else f"{shift:+d} h",
                "gaps": gaps,
            }
        )
    return shown


def view(diagnosis: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the run page and a one-run overview show of a stored diagnosis; None when there is
    nothing to show (no diagnosis, or one that found nothing)."""
    if not isinstance(diagnosis, Mapping):
        return None
    summary = diagnosis.get("summary")
    sentences = [str(s) for s in summary] if isinstance(summary, list) else []
    chart = waterfall(diagnosis.get("bridge"))
    groups = _groups(diagnosis.get("groups"))
    if not (sentences or chart or groups):
        return None
    return {"summary": sentences, "bridge": chart, "groups": groups}


def change_points(diagnoses: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The change points of several stored diagnoses (newest first), each model and day once,
    by day: ``{"family", "model", "label", "day", "before", "after"}`` ready to show."""
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for d in diagnoses:
        points = d.get("change_points")
        for p in points if isinstance(points, list) else []:
            if not isinstance(p, Mapping):
                continue
            before, after = _decimal(p.get("before_pct")), _decimal(p.get("after_pct"))
            family, model, day = (str(p.get(k) or "") for k in ("family", "model", "day"))
            if before is None or after is None or not model or not day:
                continue
            seen.setdefault(
                (family, model, day),
                {
                    "family": family,
                    "model": model,
                    "label": model if family in ("", "completions") else f"{model} ({family})",
                    "day": day,
                    "before": f"{before:+.2f}%",
                    "after": f"{after:+.2f}%",
                },
            )
    return sorted(seen.values(), key=lambda p: (p["day"], p["family"], p["model"]))
