"""One tick of the run loop: catch-up oldest first, one run per period, force, stopping cleanly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from recon_job import job, windows, wiring
from recon_job.config import Settings, load_settings
from recon_job.errors import Interrupted, UsageApiError
from recon_job.job import RunControl
from recon_job.models import Message, Status, Usage, UsageTotals, Window
from recon_job.runtime import DueReport, Plan, Runtime, run_tick
from recon_job.store import HistoryStore, RunStatus
from tests.runtime.stubs import NOW, Stub, clock, sources


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


@pytest.fixture
def settings() -> Settings:
    # These tests watch which windows are fetched: no widening of a daily fetch to re-check
    # earlier days for restatements (tested in tests/test_restatements_e2e.py).
    return load_settings(
        environ={
            "RECON_SCHEDULE__LOOKBACK_DAYS": "3",
            "RECON_SCHEDULE__LOOKBACK_MONTHS": "2",
            "RECON_RECONCILE__RESTATEMENT_DAYS": "0",
        }
    )


def run_due(
    settings: Settings,
    store: HistoryStore,
    srcs: job.Sources,
    *,
    stop: threading.Event | None = None,
    **plan: Any,
) -> DueReport:
    runtime = Runtime(
        settings,
        clock=clock,
        stop=stop or threading.Event(),
        channels={},
        sources=srcs,
        store=store,
    )
    return run_tick(runtime, Plan(**plan), NOW)


def test_it_catches_up_every_due_period_oldest_first_then_has_nothing_due(
    settings: Settings, store: HistoryStore
) -> None:
    official = Stub()
    report = run_due(settings, store, sources(official))
    assert [w.key for w in official.windows] == [
        "daily:2026-03-12",
        "daily:2026-03-13",
        "daily:2026-03-14",
        "monthly:2026-01",
        "monthly:2026-02",
    ]
    assert report.status == "ok"
    assert [str(r.status) for r in report.runs] == ["reconciled"] * 5
    assert all(r.window.key == r.result.window.key for r in report.runs if r.result)
    assert {r.trigger for r in store.list_runs()} == {"due"}

    again = run_due(settings, store, sources(official))
    assert again.runs == ()
    assert again.status == "nothing-due"
    assert len(official.windows) == 5  # completed periods cost no API calls (R33)


def test_only_the_periods_without_a_completed_run_are_run(
    settings: Settings, store: HistoryStore
) -> None:
    run_due(settings, store, sources(), kinds=("daily",))  # three completed days
    failed_day = windows.daily(date(2026, 3, 13))
    run_id = store.start_run(failed_day, started_at=NOW, trigger="cli")
    store.fail_run(run_id, reason="server_error", message="down", finished_at=NOW)
    official = Stub()
    report = run_due(settings, store, sources(official), kinds=("daily",))
    assert official.windows == []  # a failed re-run does not undo the completed one
    assert report.status == "nothing-due"


def test_a_pending_run_does_not_complete_its_period(
    settings: Settings, store: HistoryStore
) -> None:
    day = windows.daily(date(2026, 3, 14))
    early = datetime(2026, 3, 15, 1, 0, tzinfo=UTC)  # before the day settled
    deps = wiring.deps(
        settings, store, RunControl(clock), wiring.Overrides(sources=sources(), channels={})
    )
    outcome = job.run_once(deps, day, early)
    assert str(outcome.status) == "pending"
    official = Stub()
    run_due(settings, store, sources(official), kinds=("daily",))
    assert day in official.windows


def test_a_complete_explicit_window_is_skipped_unless_forced(
    settings: Settings, store: HistoryStore
) -> None:
    day = windows.daily(date(2026, 3, 1))
    first = run_due(settings, store, sources(), only=day, trigger="cli")
    assert [r.window for r in first.runs] == [day]
    official = Stub()
    skipped = run_due(settings, store, sources(official), only=day)
    assert skipped.skipped == (("daily:2026-03-01", "complete"),)
    assert skipped.runs == ()
    assert official.windows == []
    # The stored verdict comes back instead (issue 9 item 2): the same run, the same result.
    assert skipped.from_history == first.runs
    forced = run_due(settings, store, sources(official), only=day, force=True)
    assert [r.window for r in forced.runs] == [day]
    assert len([r for r in store.list_runs() if r.window_key == day.key]) == 2
    with pytest.raises(ValueError, match="only="):
        run_due(settings, store, sources(), force=True)


def test_a_range_is_never_a_period_and_always_runs(settings: Settings, store: HistoryStore) -> None:
    span = windows.date_range(date(2026, 3, 1), date(2026, 3, 2))
    for _ in range(2):
        assert len(run_due(settings, store, sources(), only=span).runs) == 1


def test_a_locked_period_is_skipped_without_a_row_and_a_stale_row_is_abandoned(
    settings: Settings, store: HistoryStore
) -> None:
    day = windows.daily(date(2026, 3, 14))
    stale = store.start_run(day, started_at=NOW, trigger="due", owner="elsewhere:1")
    with store.period_lock(day.key) as held:
        assert held
        locked = run_due(settings, store, sources(), kinds=("daily",))
    assert ("daily:2026-03-14", "locked") in locked.skipped
    assert "daily:2026-03-14" not in {r.window.key for r in locked.runs}
    assert store.get_run(stale).status is RunStatus.RUNNING  # type: ignore[union-attr]

    freed = run_due(settings, store, sources(), kinds=("daily",))
    assert freed.abandoned == (stale,)
    assert [r.window.key for r in freed.runs] == ["daily:2026-03-14"]
    assert store.get_run(stale).status is RunStatus.ABANDONED  # type: ignore[union-attr]


def test_a_stop_mid_run_marks_it_interrupted_and_ends_the_catch_up(
    settings: Settings, store: HistoryStore
) -> None:
    stop = threading.Event()
    official = Stub(on_fetch=stop)  # SIGTERM arrives during the first OpenAI fetch
    report = run_due(settings, store, sources(official), stop=stop)
    assert report.interrupted
    assert report.status == "interrupted"
    assert report.runs == ()
    assert len(official.windows) == 1
    (run,) = store.list_runs()
    assert run.id == report.interrupted_run
    assert run.status is RunStatus.INTERRUPTED
    assert run.error_reason == "interrupted"
    # The period stays due: the next run redoes it.
    assert len(run_due(settings, store, sources()).runs) == 5


def test_run_once_raises_interrupted_and_never_leaves_the_row_running(
    settings: Settings, store: HistoryStore
) -> None:
    stop = threading.Event()
    stop.set()
    deps = wiring.deps(
        settings,
        store,
        RunControl(clock, stop=stop),
        wiring.Overrides(sources=sources(), channels={}),
    )
    with pytest.raises(Interrupted) as caught:
        job.run_once(deps, windows.daily(date(2026, 3, 14)), NOW)
    assert caught.value.permanent is False
    assert caught.value.reason == "interrupted"
    (run,) = store.list_runs()
    assert run.id == caught.value.run_id
    assert run.status is RunStatus.INTERRUPTED
    assert run.finished_at == NOW


def test_a_transient_failure_ends_the_catch_up_and_fails_the_report(
    settings: Settings, store: HistoryStore
) -> None:
    down = UsageApiError("OpenAI is down", permanent=False, reason="server_error")
    official = Stub(error=down)
    report = run_due(settings, store, sources(official))
    assert len(official.windows) == 1  # the other periods would fail alike: left due
    assert report.status == "failed"
    (run,) = store.list_runs()
    assert run.status is RunStatus.FAILED


def test_a_stop_during_the_last_runs_delivery_keeps_the_run_and_interrupts_the_tick(
    settings: Settings, store: HistoryStore
) -> None:
    stop = threading.Event()

    class StoppingChannel:
        """SIGTERM arrives while the run's notification is being sent."""

        def notify(self, message: Message) -> None:
            stop.set()

    drifting, local = Stub(), Stub()
    window = windows.daily(date(2026, 3, 14))
    runtime = Runtime(
        settings,
        clock=clock,
        stop=stop,
        channels={"webhook": StoppingChannel()},
        sources=job.Sources(local=(("logs", Doubling(local)),), official=(drifting,)),
        store=store,
    )
    report = run_tick(runtime, Plan(only=window), NOW)

    assert report.interrupted
    [ran] = report.runs  # committed before the stop: complete, and reported
    assert ran.status is Status.MISMATCH
    assert [r.status for r in store.list_runs()] == [RunStatus.MISMATCH]


class Doubling:
    """A local source reporting twice what its stub does: a drift, so a notification."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub

    def fetch(self, window: Window) -> UsageTotals:
        totals = self.stub.fetch(window)
        return UsageTotals(groups={k: u + u for k, u in totals.groups.items()})


class Revising(Stub):
    """A source whose figures of some days OpenAI revised: ``revised`` once set."""

    def __init__(self) -> None:
        super().__init__()
        self.revised: dict[date, Usage] = {}

    def fetch(self, window: Window) -> UsageTotals:
        totals = super().fetch(window)
        return UsageTotals(
            groups={key: self.revised.get(key.day, usage) for key, usage in totals.groups.items()}
        )


class Ticking:
    """A clock that moves on a second at every reading, from ``at``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


def test_a_day_openai_restated_is_evaluated_again_in_the_same_tick_and_then_not_again(
    store: HistoryStore,
) -> None:
    settings = load_settings(
        environ={
            "RECON_SCHEDULE__LOOKBACK_DAYS": "3",
            "RECON_SCHEDULE__LOOKBACK_MONTHS": "1",
            "RECON_RECONCILE__RESTATEMENT_DAYS": "7",
        }
    )
    official = Revising()
    ticking = Ticking(NOW)

    def tick(now: datetime) -> DueReport:
        runtime = Runtime(
            settings,
            clock=ticking,
            stop=threading.Event(),
            channels={},
            sources=sources(official),
            store=store,
        )
        return run_tick(runtime, Plan(), now)

    first = tick(NOW)
    assert [r.window.key for r in first.runs] == [
        "daily:2026-03-12",
        "daily:2026-03-13",
        "daily:2026-03-14",
        "monthly:2026-02",
    ]
    assert all(not r.result.diagnosis.restatements for r in first.runs if r.result)

    # A day later OpenAI bills 2026-03-13 twice over: the 03-15 run's page covers it.
    official.revised[date(2026, 3, 13)] = Usage(input_tokens=20, output_tokens=2, requests=2)
    later = NOW + timedelta(days=1)
    ticking.at = later
    second = tick(later)
    assert [r.window.key for r in second.runs] == ["daily:2026-03-15", "daily:2026-03-13"]
    found, again = (r.result for r in second.runs)
    assert found is not None
    assert again is not None
    assert {r.group.day for r in found.diagnosis.restatements} == {date(2026, 3, 13)}
    # The re-run compares with the revised figures: it finds nothing new (it says why the day
    # changed, recording nothing again) and completes the period.
    assert again.diagnosis.restatements == found.diagnosis.restatements
    assert (again.local.requests, again.openai.requests) == (1, 2)
    assert len(store.restatements_since()) == len(found.diagnosis.restatements)
    assert store.restated_periods(("daily", "monthly"), since=date(2026, 3, 1)) == set()

    third = tick(later)
    assert third.runs == ()
    assert third.status == "nothing-due"
