"""Clock-shift detection: both sides' hourly series line up at a constant shift (issue 12 item 2).

Logs written in local naive time and read as UTC (or in the wrong zone, or with a DST error)
put every request some whole hours off: the day totals drift on both neighbouring days, and the
hourly series match once one is slid by those hours. Pure: no I/O, no clock.

**Sign convention**: the shift ``s`` is such that *local time = OpenAI time + s*; usage OpenAI
counts in the hour starting ``t`` appears in the local hour starting ``t + s``. Logs written in
Europe/Berlin naive time and read as UTC give ``s = +1`` in winter (CET, UTC+1) and ``+2`` in
summer (CEST); America/New_York naive time read as UTC gives ``-5`` (``-4`` in summer).

**The rule** (:func:`best_shift`): for each ``s`` in ``[-max_hours, max_hours]`` the residual
is ``sum |local[t + s] - openai[t]|`` over the same OpenAI hours ``t`` for every ``s`` (the
span's hours at least ``max_hours`` from both ends, so each shifted partner is inside the
span). The best shift is the ``s`` of least residual (the smallest ``|s|`` on a tie). It is
reported only when it is not 0, the residual at 0 is at least :data:`MIN_RESIDUAL_SHARE` of
OpenAI's volume over those hours (a near-perfect match is no drift), and the residual at the
best shift is at most :data:`MAX_RESIDUAL_RATIO` of the residual at 0 (the shift explains most
of the drift, not a little of it). Series should span the drifting day ± 1 day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from recon_job.findings import GroupRef

#: The best shift's residual must be at most this fraction of the residual without shift.
MAX_RESIDUAL_RATIO: Final = Decimal("0.25")
#: The residual without shift must be at least this fraction of OpenAI's volume to look at all.
MIN_RESIDUAL_SHARE: Final = Decimal("0.01")
HOUR: Final = timedelta(hours=1)
_ZERO: Final = Decimal(0)

#: An example ``logs.timezone`` per shift: a zone whose naive times read as UTC give it.
EXAMPLE_ZONES: Final[Mapping[int, str]] = {
    -8: "America/Los_Angeles",
    -7: "America/Los_Angeles in summer, or America/Denver",
    -6: "America/Chicago",
    -5: "America/New_York",
    -4: "America/New_York in summer",
    -3: "America/Sao_Paulo",
    1: "Europe/Berlin",
    2: "Europe/Berlin in summer, or Europe/Helsinki",
    3: "Europe/Helsinki in summer, or Europe/Moscow",
    4: "Asia/Dubai",
    8: "Asia/Shanghai",
    9: "Asia/Tokyo",
    10: "Australia/Sydney",
    11: "Australia/Sydney in summer",
}


def residuals(
    local_hourly: Mapping[datetime, Decimal],
    openai_hourly: Mapping[datetime, Decimal],
    *,
    max_hours: int,
) -> dict[int, Decimal]:
    """``sum |local[t + s] - openai[t]|`` per shift ``s`` over the common hours (module
    docstring); empty when the span is too short to compare any hour at every shift."""
    if max_hours < 0:
        raise ValueError("max_hours must not be negative")
    starts = set(local_hourly) | set(openai_hourly)
    if not starts:
        return {}
    first = min(starts) + max_hours * HOUR
    last = max(starts) - max_hours * HOUR
    hours: list[datetime] = []
    moment = first
    while moment <= last:
        hours.append(moment)
        moment += HOUR
    if not hours:
        return {}
    return {
        s: sum(
            (
                abs(local_hourly.get(t + s * HOUR, _ZERO) - openai_hourly.get(t, _ZERO))
                for t in hours
            ),
            _ZERO,
        )
        for s in range(-max_hours, max_hours + 1)
    }


def best_shift(
    local_hourly: Mapping[datetime, Decimal],
    openai_hourly: Mapping[datetime, Decimal],
    *,
    max_hours: int,
) -> int | None:
    """The whole hours local times are shifted by (local = OpenAI + shift), or None when no
    shift explains the drift much better than none (module docstring).

    Both series: bucket start (aware UTC, on the hour) -> one quantity (requests are the
    clearest), over the same span; a missing hour counts 0.
    """
    table = residuals(local_hourly, openai_hourly, max_hours=max_hours)
    if not table:
        return None
    unshifted = table[0]
    start = min(set(local_hourly) | set(openai_hourly)) + max_hours * HOUR
    end = max(set(local_hourly) | set(openai_hourly)) - max_hours * HOUR
    volume = sum((abs(v) for t, v in openai_hourly.items() if start <= t <= end), _ZERO)
    if not unshifted or unshifted < volume * MIN_RESIDUAL_SHARE:
        return None
    best = min(table, key=lambda s: (table[s], abs(s), s))
    if best == 0 or table[best] > unshifted * MAX_RESIDUAL_RATIO:
        return None
    return best


def shift_sentence(group: GroupRef, shift: int, timezone: str = "UTC") -> str:
    """``2026-02-03 completions gpt-4o: your log times are +1 h off OpenAI's (times without a
    zone are read as UTC), so usage lands in the wrong hours and days: set logs.timezone to the
    zone the logs are written in, e.g. Europe/Berlin; if your log times carry a zone, the clock
    or zone of the machine writing them is off instead``.

    ``timezone`` is ``logs.timezone`` as configured; the sentence names it, since when it is not
    UTC the shift may also be a DST error or a zone that is off by the shift.
    """
    signed = f"+{shift}" if shift > 0 else f"\u2212{-shift}"
    example = EXAMPLE_ZONES.get(shift)
    setting = "set logs.timezone to the zone the logs are written in"
    if example:
        setting += f", e.g. {example}"
    # logs.timezone reads only times without a zone: with one, the writer's clock is off.
    return (
        f"{group.label}: your log times are {signed} h off OpenAI's (times without a zone are "
        f"read as {timezone}), so usage lands in the wrong hours and days: {setting}; if your "
        "log times carry a zone, the clock or zone of the machine writing them is off instead"
    )
