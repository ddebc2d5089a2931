"""How big a notification may get: what each part lists, and where the rest goes.

With thousands of drifting groups (every model renamed, a project split) a message that listed
everything would be megabytes: too big for Slack, for a webhook receiver, for a mail server.
So every part lists the top entries (:class:`Limits`: the groups with the largest |cost
difference| first, the first likely causes …) and says how many it left out, and the payload
keeps the complete lists under :data:`DETAIL`, which is never sent as it is:

* the webhook sends the payload without ``detail`` and says in ``omitted`` how many entries of
  each list were left out; with ``[webhook] full_detail = true`` it sends the complete lists
  instead (:func:`webhook_body`);
* the email attaches every drifting group as a CSV file when its body lists only some of them
  (:func:`groups_csv`);
* Slack shows what fits its documented limits (:mod:`recon_job.notify.slack`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from recon_job.report.formats import sheet_text

#: The payload member holding the complete lists; never sent as it is.
DETAIL: Final = "detail"
#: The payload lists that are cut, and counted in ``omitted`` when they are.
LISTS: Final = ("groups", "likely_causes", "resolved", "unpriced_models")

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How many entries of each list a message shows (the rest are counted, not listed)."""

    #: Drifting groups, largest |cost difference| first.
    groups: int = 10
    #: Likely-cause sentences.
    likely_causes: int = 10
    #: Groups back within tolerance.
    resolved: int = 20
    #: Models without a price.
    unpriced_models: int = 10
    #: Diagnosis sentences (:attr:`recon_job.findings.Diagnosis.summary`), most important first.
    diagnosis: int = 5
    #: Parts of the window's cost bridge, largest |amount| first.
    bridge_parts: int = 3


#: What every message shows at most.
LIMITS: Final = Limits()


def cut(items: Sequence[T], limit: int) -> tuple[list[T], int]:
    """The first ``limit`` of ``items`` and how many were left out."""
    shown = list(items[: max(0, limit)])
    return shown, len(items) - len(shown)


def webhook_body(payload: Mapping[str, Any], *, full_detail: bool = False) -> dict[str, Any]:
    """The JSON document the webhook posts for ``payload``.

    Without ``full_detail``: the payload as it lists things (the top entries, ``omitted``
    counting the others). With it: every list complete and ``omitted`` all zeros.
    ``full_detail`` in the body says which one the receiver got. A payload without ``detail``
    (the relay's ``channel_failing`` notice) is sent as it is.
    """
    body = {key: value for key, value in payload.items() if key != DETAIL}
    detail = payload.get(DETAIL)
    if not isinstance(detail, Mapping):
        return body  # not an alert (the relay's channel_failing notice), or stored before caps
    if full_detail:
        for name in LISTS:
            if name in detail:
                body[name] = list(detail[name])
        body["omitted"] = dict.fromkeys(LISTS, 0)
        if "diagnosis" in detail:
            # Every sentence and bridge part; its own ``omitted`` is all zeros.
            body["diagnosis"] = detail["diagnosis"]
    body["full_detail"] = full_detail
    return body


#: The quantities in the CSV (the deciding ones; ``run --format json`` has the token classes).
CSV_QUANTITIES: Final = ("cost", "tokens", "requests")
#: The CSV's columns: a group's key, then each quantity's local, OpenAI, difference and %.
CSV_COLUMNS: Final = (
    "date",
    "model",
    "project_id",
    "api_key_id",
    "status",
    *(
        f"{name}_{side}"
        for name in CSV_QUANTITIES
        for side in ("local", "openai", "difference", "pct")
    ),
    # Added with families (issue 10): last, so the columns before keep their places.
    "family",
)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _csv_row(group: Mapping[str, Any]) -> list[str]:
    local, openai, difference = group["local"], group["openai"], group["difference"]
    row = [sheet_text(group.get(key)) for key in ("date", "model", "project_id", "api_key_id")]
    row.append(str(group.get("status", "")))
    for name in CSV_QUANTITIES:
        pct = difference.get(f"{name}_pct")
        row += [
            str(local.get(name, "")),
            str(openai.get(name, "")),
            str(difference.get(name, "")),
            "" if pct is None else str(pct),
        ]
    row.append(sheet_text(group.get("family", "completions")))
    return row


def groups_csv(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(file name, CSV text)`` of every drifting group, when the message lists only some.

    Figures are the exact values of ``recon-job run --format json`` (money as decimal strings);
    None when the payload lists every group already (or holds no detail).
    """
    detail = payload.get(DETAIL)
    groups = detail.get("groups") if isinstance(detail, Mapping) else None
    listed = payload.get("groups") or ()
    if not groups or len(groups) <= len(listed):
        return None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(g) for g in groups if isinstance(g, Mapping))
    window = payload.get("window")
    key = str(window.get("key", "")) if isinstance(window, Mapping) else ""
    name = _UNSAFE_NAME.sub("-", f"recon-{key}-groups").strip("-")
    return f"{name}.csv", out.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "CSV_QUANTITIES",
    "DETAIL",
    "LIMITS",
    "LISTS",
    "Limits",
    "cut",
    "groups_csv",
    "webhook_body",
]
