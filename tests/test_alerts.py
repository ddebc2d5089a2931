"""The alert lifecycle: Alertmanager's dedup rules (``TestDedupStageNeedsUpdate``), table-driven."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from recon_job import alerts
from recon_job.alerts import (
    FETCH_FAILED,
    TOTAL_DRIFT,
    AlertPolicy,
    AlertSets,
    NotificationState,
    alert_sets,
    decide,
    dedupe_key,
    default_repeat_interval,
    fingerprint,
    next_state,
    plan,
)
from recon_job.models import (
    AlertEvent,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    Status,
    Tolerance,
    Usage,
    UsageKey,
    Window,
)

NOW = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
REPEAT = timedelta(hours=24)
WINDOW = Window("daily", date(2026, 3, 14), date(2026, 3, 15))
GROUP = WINDOW.key

A = fingerprint(UsageKey(date(2026, 3, 14), "gpt-4o"))
B = fingerprint(UsageKey(date(2026, 3, 14), "o3", "proj_1"))
C = fingerprint(UsageKey(date(2026, 3, 14), "gpt-5", "proj_1", "key_1"))


def _state(
    firing: set[str] | frozenset[str] = frozenset(),
    resolved: set[str] | frozenset[str] = frozenset(),
    sent: datetime | None = NOW - timedelta(hours=1),
    event: AlertEvent | None = "opened",
) -> NotificationState:
    return NotificationState(frozenset(firing), frozenset(resolved), sent, event)


@dataclass(frozen=True)
class Case:
    name: str
    state: NotificationState | None
    firing: frozenset[str]
    expected: AlertEvent | None
    resolved: frozenset[str] = frozenset()
    failed: bool = False
    send_resolved: bool = False
    summaries: bool = False
    channel: str = "email"
    settled: bool = True


F = frozenset

CASES = [
    # Alertmanager's TestDedupStageNeedsUpdate cases (reliability.md R17).
    Case("no entry, firing: first notification", None, F({A}), "opened"),
    Case("no entry, only resolved: nothing", None, F(), None, resolved=F({A})),
    Case("no entry, nothing at all: nothing", None, F(), None),
    Case("different firing set: update", _state({A}), F({A, B}), "updated"),
    Case("firing set replaced entirely: update", _state({A}), F({B}), "updated"),
    Case("previous entry had nothing firing: opened again", _state(set()), F({A}), "opened"),
    Case("zero timestamp, same firing: repeat", _state({A}, sent=None), F({A}), "repeat"),
    Case(
        "same firing at repeat - 1 min: nothing",
        _state({A}, sent=NOW - REPEAT + timedelta(minutes=1)),
        F({A}),
        None,
    ),
    Case(
        "same firing at repeat + 1 min: repeat",
        _state({A}, sent=NOW - REPEAT - timedelta(minutes=1)),
        F({A}),
        "repeat",
    ),
    Case("same firing exactly at repeat: repeat", _state({A}, sent=NOW - REPEAT), F({A}), "repeat"),
    Case("firing subset of last firing: nothing", _state({A, B}), F({A}), None, resolved=F({B})),
    Case(
        "new resolved item, send_resolved on: update",
        _state({A, B}),
        F({A}),
        "updated",
        resolved=F({B}),
        send_resolved=True,
    ),
    Case(
        "resolved item already notified, send_resolved on: nothing",
        _state({A}, resolved={B}),
        F({A}),
        None,
        resolved=F({B}),
        send_resolved=True,
    ),
    Case("all resolved, send_resolved off: resolved (recorded)", _state({A}), F(), "resolved"),
    Case(
        "all resolved, send_resolved on: resolved",
        _state({A}),
        F(),
        "resolved",
        resolved=F({A}),
        send_resolved=True,
    ),
    Case(
        "nothing firing now nor last time: nothing",
        _state(set(), resolved={A}, event="resolved"),
        F(),
        None,
        resolved=F({A}),
        send_resolved=True,
    ),
    # Inhibition: a failed fetch fires fetch_failed and mutes drift (R21).
    Case("failed, no entry: failed", None, F({A}), "failed", failed=True),
    Case(
        "failed while drift known: failed, not a drift update",
        _state({A}),
        F(),
        "failed",
        failed=True,
    ),
    Case(
        "failed again within repeat: nothing",
        _state({FETCH_FAILED}, event="failed"),
        F(),
        None,
        failed=True,
    ),
    Case(
        "failed again after repeat: failed",
        _state({FETCH_FAILED}, sent=NOW - REPEAT, event="failed"),
        F(),
        "failed",
        failed=True,
    ),
    Case(
        "failure then success without drift: resolved",
        _state({FETCH_FAILED}, event="failed"),
        F(),
        "resolved",
        resolved=F({FETCH_FAILED}),
    ),
    Case(
        "failure then success with drift: opened",
        _state({FETCH_FAILED}, event="failed"),
        F({A}),
        "opened",
        resolved=F({FETCH_FAILED}),
    ),
    Case(
        "failure with known drift, then success with the same drift: quiet",
        _state({A, FETCH_FAILED}, event="failed"),
        F({A}),
        None,
        resolved=F({FETCH_FAILED}),
    ),
    # Summaries: once per group, only for a settled, reconciled window.
    Case("summaries off, reconciled: nothing", None, F(), None),
    Case("summaries on, reconciled: summary", None, F(), "summary", summaries=True),
    Case("summaries on, unsettled: nothing", None, F(), None, summaries=True, settled=False),
    Case(
        "summaries on, summary already sent: nothing",
        _state(set(), event="summary"),
        F(),
        None,
        summaries=True,
    ),
    Case("summaries on, failed: failed", None, F(), "failed", failed=True, summaries=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_it_decides_like_alertmanager(case: Case) -> None:
    policy = AlertPolicy(
        repeat_interval=REPEAT,
        send_resolved={case.channel: case.send_resolved},
        summaries=case.summaries,
    )

    run = AlertSets(case.firing, case.resolved, failed=case.failed, settled=case.settled)
    event = decide(case.channel, case.state, run, policy, NOW)

    assert event == case.expected


def test_send_resolved_defaults_follow_alertmanager_and_config_overrides_them() -> None:
    policy = AlertPolicy()
    assert not policy.sends_resolved("email")
    assert not policy.sends_resolved("slack")
    assert policy.sends_resolved("webhook")
    assert not policy.sends_resolved("pager")
    override = AlertPolicy(send_resolved={"email": True, "webhook": False})
    assert override.sends_resolved("email")
    assert not override.sends_resolved("webhook")
    assert not override.sends_resolved("slack")


def test_the_repeat_interval_is_a_day_for_daily_windows_and_a_month_otherwise() -> None:
    assert default_repeat_interval("daily") == timedelta(hours=24)
    assert default_repeat_interval("monthly") == timedelta(days=30)


# --- building results --------------------------------------------------------------------------


def _metric(exceeds: bool) -> Metric:
    return Metric(Decimal(110), Decimal(100), Decimal(10), Decimal(10), exceeds)


def _group(key: UsageKey, status: Status) -> GroupResult:
    m = _metric(status is Status.MISMATCH)
    return GroupResult(key, Usage(), Usage(), Comparison(m, m, m, m, m, m), status)


def _result(
    groups: dict[UsageKey, Status],
    *,
    window: Window = WINDOW,
    pending_days: tuple[date, ...] = (),
    status: Status | None = None,
) -> ReconResult:
    built = tuple(_group(k, s) for k, s in groups.items())
    if status is None:
        statuses = {g.status for g in built}
        status = (
            Status.MISMATCH
            if Status.MISMATCH in statuses
            else Status.PENDING
            if pending_days
            else Status.RECONCILED
        )
    m = _metric(status is Status.MISMATCH)
    return ReconResult(
        window=window,
        status=status,
        tolerance=Tolerance(),
        local=Usage(),
        openai=Usage(),
        comparison=Comparison(m, m, m, m, m, m),
        groups=built,
        pending_days=pending_days,
    )


KEY_A = UsageKey(date(2026, 3, 14), "gpt-4o")
KEY_B = UsageKey(date(2026, 3, 14), "o3", "proj_1")


def test_the_firing_set_is_the_mismatching_groups() -> None:
    result = _result({KEY_A: Status.MISMATCH, KEY_B: Status.RECONCILED})
    assert alerts.firing(result) == {A}
    assert fingerprint(KEY_A) == '["2026-03-14","gpt-4o",null,null]'


def test_drift_only_in_the_totals_fires_the_total_alert() -> None:
    result = _result({KEY_A: Status.RECONCILED}, status=Status.MISMATCH)
    assert alerts.firing(result) == {TOTAL_DRIFT}


def test_a_firing_alert_whose_day_is_now_pending_keeps_firing() -> None:
    week = Window("range", date(2026, 3, 8), date(2026, 3, 15))
    result = _result({KEY_A: Status.PENDING}, window=week, pending_days=(date(2026, 3, 14),))
    sets = alert_sets(result, _state({A}))
    assert sets.firing == {A}
    assert sets.resolved == frozenset()
    assert not sets.settled
    event = decide("webhook", _state({A}), sets, AlertPolicy(), NOW)
    assert event is None


def test_a_firing_alert_whose_group_vanished_on_a_settled_day_is_resolved() -> None:
    sets = alert_sets(_result({KEY_B: Status.RECONCILED}), _state({A}))
    assert sets == alerts.AlertSets(frozenset(), frozenset({A}))


def test_the_same_alert_decided_again_has_the_same_dedupe_key() -> None:
    first = dedupe_key(GROUP, "email", "opened", F({A, B}))
    assert first == dedupe_key(GROUP, "email", "opened", F({B, A}))
    assert len(first) == 32
    int(first, 16)
    others = {
        dedupe_key(GROUP, "slack", "opened", F({A, B})),
        dedupe_key(GROUP, "email", "updated", F({A, B})),
        dedupe_key(GROUP, "email", "opened", F({A})),
        dedupe_key("daily:2026-03-15", "email", "opened", F({A, B})),
        dedupe_key(GROUP, "email", "opened", F({A, B}), previous_sent_at=NOW),
    }
    assert first not in others
    assert len(others) == 5


# --- whole lifecycles through plan() ------------------------------------------------------------


class Log:
    """A notification log as the store keeps it: written only when a notification is delivered."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.states: dict[str, NotificationState | None] = dict.fromkeys(channels)
        self.sent: list[tuple[str, AlertEvent, datetime]] = []
        self.keys: set[tuple[str, str]] = set()

    def run(self, result: ReconResult | None, policy: AlertPolicy, now: datetime) -> list[str]:
        events = []
        for n in plan(group_key=GROUP, states=self.states, result=result, policy=policy, now=now):
            assert (n.channel, n.dedupe_key) not in self.keys, "a duplicate dedupe key"
            self.keys.add((n.channel, n.dedupe_key))
            self.states[n.channel] = n.state
            if n.deliver:
                self.sent.append((n.channel, n.event, now))
                events.append(f"{n.channel}:{n.event}")
        return events


def test_three_daily_runs_with_jitter_repeat_only_when_a_day_has_passed() -> None:
    # R18: the same drift on three daily runs, each run ±10 minutes off its schedule.
    log = Log(("email",))
    policy = AlertPolicy(repeat_interval=default_repeat_interval("daily"))
    drift = _result({KEY_A: Status.MISMATCH})
    day1 = NOW
    runs = [
        (day1, ["email:opened"]),
        (day1 + timedelta(hours=1), []),  # a re-run of the same window the same day
        (day1 + timedelta(days=1, minutes=-10), []),  # 23 h 50 min after the send
        (day1 + timedelta(days=1, minutes=10), ["email:repeat"]),
        (day1 + timedelta(days=2, minutes=-10), []),  # 23 h 40 min after the repeat
        (day1 + timedelta(days=2, minutes=10), ["email:repeat"]),
        (day1 + timedelta(days=3, minutes=10), ["email:repeat"]),
    ]
    for when, expected in runs:
        assert log.run(drift, policy, when) == expected, when
    sends = [at for _, _, at in log.sent]
    assert all(b - a >= timedelta(hours=24) for a, b in itertools.pairwise(sends))


def test_a_drift_opens_grows_resolves_and_reopens_per_channel() -> None:
    log = Log(("email", "slack", "webhook"))
    policy = AlertPolicy()
    only_a = _result({KEY_A: Status.MISMATCH, KEY_B: Status.RECONCILED})
    both = _result({KEY_A: Status.MISMATCH, KEY_B: Status.MISMATCH})
    fixed = _result({KEY_A: Status.RECONCILED, KEY_B: Status.RECONCILED})
    t = NOW

    assert log.run(only_a, policy, t) == ["email:opened", "slack:opened", "webhook:opened"]
    assert log.run(only_a, policy, t + timedelta(hours=1)) == []
    assert log.run(both, policy, t + timedelta(hours=2)) == [
        "email:updated",
        "slack:updated",
        "webhook:updated",
    ]
    # Only the webhook sends resolved notices by default; the others' state is cleared anyway.
    assert log.run(fixed, policy, t + timedelta(hours=3)) == ["webhook:resolved"]
    assert all(s is not None and not s.firing for s in log.states.values())
    assert log.run(fixed, policy, t + timedelta(hours=4)) == []
    # A fresh drift after a resolve is a new "opened" with a new dedupe key, on every channel.
    assert log.run(only_a, policy, t + timedelta(hours=5)) == [
        "email:opened",
        "slack:opened",
        "webhook:opened",
    ]


def test_a_failed_fetch_inhibits_drift_and_success_resolves_it() -> None:
    log = Log(("email", "webhook"))
    policy = AlertPolicy()
    drift = _result({KEY_A: Status.MISMATCH})
    t = NOW
    assert log.run(None, policy, t) == ["email:failed", "webhook:failed"]
    assert log.run(None, policy, t + timedelta(hours=1)) == []
    # Success with drift: the drift is news (the receivers never heard of it).
    assert log.run(drift, policy, t + timedelta(hours=2)) == ["email:opened", "webhook:opened"]
    # Failing while the drift is known: only "failed"; recovering with the same drift: the
    # webhook hears fetch_failed resolved (an update, drift remains), email stays quiet.
    assert log.run(None, policy, t + timedelta(hours=3)) == ["email:failed", "webhook:failed"]
    assert log.run(drift, policy, t + timedelta(hours=4)) == ["webhook:updated"]
    state = log.states["email"]
    assert state is not None
    assert state.firing == {A, FETCH_FAILED}
    assert log.run(_result({KEY_A: Status.RECONCILED}), policy, t + timedelta(hours=5)) == [
        "webhook:resolved"
    ]


def test_a_suppressed_resolved_keeps_the_last_send_time_and_clears_firing() -> None:
    (n,) = plan(
        group_key=GROUP,
        states={"email": _state({A}, sent=NOW - timedelta(hours=3))},
        result=_result({KEY_A: Status.RECONCILED}),
        policy=AlertPolicy(),
        now=NOW,
    )
    assert (n.event, n.deliver) == ("resolved", False)
    assert n.state == NotificationState(
        frozenset(), frozenset({A}), NOW - timedelta(hours=3), "resolved"
    )


def test_next_state_records_what_was_sent() -> None:
    state = next_state(_state({A}), "failed", AlertSets(F({B}), F(), failed=True), NOW)
    assert state == NotificationState(frozenset({A, FETCH_FAILED}), frozenset(), NOW, "failed")


def test_summaries_are_sent_once_for_a_reconciled_window() -> None:
    log = Log(("email",))
    policy = AlertPolicy(summaries=True)
    fine = _result({KEY_A: Status.RECONCILED})
    assert log.run(fine, policy, NOW) == ["email:summary"]
    assert log.run(fine, policy, NOW + timedelta(days=2)) == []
    assert Log(("email",)).run(fine, AlertPolicy(), NOW) == []
