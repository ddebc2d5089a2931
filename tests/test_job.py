"""``job.run_once``: the orchestration, with stub sources and a real in-memory history store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from recon_job import job, windows, wiring
from recon_job.config import Settings, load_settings
from recon_job.errors import ConfigError, LogSourceError, StoreError, UsageApiError
from recon_job.job import RunControl
from recon_job.models import (
    Message,
    ReconResult,
    RunOutcome,
    Status,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.store import HistoryStore
from tests.databases import postgres_server_or_skip, temporary_postgres_database

DAY = date(2026, 8, 1)
NOW = datetime(2026, 8, 5, 6, 0, tzinfo=UTC)


class Stub:
    """A source that returns fixed totals (or raises), and remembers what it was asked."""

    def __init__(self, totals: UsageTotals | None = None, error: Exception | None = None) -> None:
        self.totals = totals or UsageTotals()
        self.error = error
        self.windows: list[Window] = []

    def fetch(self, window: Window) -> UsageTotals:
        self.windows.append(window)
        if self.error is not None:
            raise self.error
        return self.totals


def totals(*groups: tuple[str, Usage], day: date = DAY, **extra: object) -> UsageTotals:
    return UsageTotals(groups={UsageKey(day, model): usage for model, usage in groups}, **extra)  # type: ignore[arg-type]


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={})


def clock() -> datetime:
    return datetime(2026, 8, 5, 6, 0, 2, tzinfo=UTC)


def run(
    settings: Settings, store: HistoryStore, sources: job.Sources, window: Window | None = None
) -> RunOutcome:
    deps = wiring.deps(settings, store, RunControl(clock), wiring.Overrides(sources=sources))
    return job.run_once(deps, window or windows.daily(DAY), NOW)


def test_usage_and_costs_are_merged_under_normalised_model_names(
    settings: Settings, store: HistoryStore
) -> None:
    usage = Stub(
        totals(("gpt-4o-2024-08-06", Usage(input_tokens=1000, output_tokens=100, requests=2)))
    )
    costs = Stub(
        totals(
            ("gpt-4o-2024-08-06", Usage(cost=Decimal("0.0035"))),
            ("web search tool calls", Usage(cost=Decimal("0.01"))),
        )
    )
    local = Stub(
        totals(
            (
                "gpt-4o",
                Usage(input_tokens=1000, output_tokens=100, requests=2, cost=Decimal("0.0035")),
            )
        )
    )
    outcome = run(settings, store, job.Sources(local=(("logs", local),), official=(usage, costs)))
    assert outcome.result is not None
    groups = {g.key.model: g for g in outcome.result.groups}
    assert set(groups) == {"gpt-4o", "web search tool calls"}
    assert groups["gpt-4o"].openai == Usage(
        input_tokens=1000, output_tokens=100, requests=2, cost=Decimal("0.0035")
    )
    assert groups["gpt-4o"].status is Status.RECONCILED
    assert outcome.result.status is Status.RECONCILED
    assert outcome.finished_at == clock()
    (record,) = store.list_runs()
    assert str(record.status) == "reconciled"
    assert record.finished_at == clock()


def test_a_failed_official_fetch_records_a_failed_run_and_reads_no_logs(
    settings: Settings, store: HistoryStore
) -> None:
    error = UsageApiError("OpenAI Usage API is down", permanent=False, reason="server_error")
    local = Stub(totals(("gpt-4o", Usage(input_tokens=5))))
    outcome = run(
        settings, store, job.Sources(local=(("logs", local),), official=(Stub(error=error),))
    )
    assert outcome.result is None
    assert outcome.error is error
    assert outcome.status is Status.FAILED
    assert local.windows == []
    (record,) = store.list_runs()
    assert str(record.status) == "failed"
    assert record.error_reason == "server_error"
    assert record.local is None
    assert store.run_groups(record.id) == []


def test_unreadable_logs_fail_the_run_too(settings: Settings, store: HistoryStore) -> None:
    error = LogSourceError("log file 'x' does not exist", reason="log_file_missing")
    outcome = run(
        settings, store, job.Sources(local=(("logs", Stub(error=error)),), official=(Stub(),))
    )
    assert outcome.error is error
    assert store.list_runs()[0].error_reason == "log_file_missing"


def test_a_bug_never_leaves_a_run_marked_running(settings: Settings, store: HistoryStore) -> None:
    sources = job.Sources(local=(("logs", Stub()),), official=(Stub(error=KeyError("boom")),))
    with pytest.raises(KeyError):
        run(settings, store, sources)
    (record,) = store.list_runs()
    assert str(record.status) == "failed"
    assert record.error_reason == "KeyError"


def test_unsettled_days_are_pending_not_mismatches(settings: Settings, store: HistoryStore) -> None:
    today = NOW.date()
    official = Stub(totals(("gpt-4o", Usage(input_tokens=100_000, requests=10)), day=today))
    local = Stub(totals(("gpt-4o", Usage(input_tokens=10, requests=1)), day=today))
    outcome = run(
        settings, store, job.Sources((("logs", local),), (official,)), windows.daily(today)
    )
    assert outcome.result is not None
    assert outcome.result.status is Status.PENDING
    assert outcome.result.pending_days == (today,)


def test_skipped_records_and_unpriced_models_reach_the_result(
    settings: Settings, store: HistoryStore
) -> None:
    local = Stub(
        totals(
            ("mystery", Usage(input_tokens=10, requests=1)),
            skipped={"malformed_json": 3},
            unpriced={UnpricedKey("mystery", "standard"): Usage(input_tokens=10, requests=1)},
        )
    )
    outcome = run(settings, store, job.Sources((("logs", local),), (Stub(),)))
    assert outcome.result is not None
    assert outcome.result.skipped == {"malformed_json": 3}
    assert set(outcome.result.unpriced) == {UnpricedKey("mystery", "standard")}
    record = store.list_runs()[0]
    assert record.skipped == {"malformed_json": 3}
    assert set(record.unpriced) == {UnpricedKey("mystery", "standard")}


def test_an_alias_to_an_unknown_model_is_a_config_error_before_anything_runs() -> None:
    settings = load_settings(environ={"RECON_MODELS__ALIASES": '{"bot": "gpt-4o-mnii"}'})
    with pytest.raises(ConfigError, match="did you mean 'gpt-4o-mini'"):
        wiring.price_table(settings, wiring.model_namer(settings))


def test_building_sources_without_an_admin_key_is_a_config_error(settings: Settings) -> None:
    namer = wiring.model_namer(settings)
    with pytest.raises(ConfigError, match="OPENAI_ADMIN_KEY"):
        wiring.sources(settings, namer=namer, pricer=wiring.price_table(settings, namer))


def test_several_local_sources_are_summed_and_their_shares_kept(
    settings: Settings, store: HistoryStore
) -> None:
    prod = Stub(totals(("gpt-4o", Usage(input_tokens=900, requests=9, cost=Decimal("0.9")))))
    staging = Stub(
        totals(("gpt-4o-2024-08-06", Usage(input_tokens=100, requests=1, cost=Decimal("0.1"))))
    )
    official = Stub(totals(("gpt-4o", Usage(input_tokens=1000, requests=10, cost=Decimal(1)))))
    outcome = run(
        settings, store, job.Sources((("production", prod), ("staging", staging)), (official,))
    )
    assert outcome.result is not None
    assert outcome.result.status is Status.RECONCILED
    assert outcome.result.local.requests == 10
    assert outcome.result.local_sources == {
        "production": Usage(input_tokens=900, requests=9, cost=Decimal("0.9")),
        "staging": Usage(input_tokens=100, requests=1, cost=Decimal("0.1")),
    }
    assert store.list_runs()[0].local_sources == outcome.result.local_sources


# --- a result the store refuses (issue 9 item 17) ----------------------------------------------


class Receiver:
    """A channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def notify(self, message: Message) -> None:
        self.sent.append(message)


def run_with_channel(
    settings: Settings, store: HistoryStore, sources: job.Sources
) -> tuple[RunOutcome, Receiver]:
    receiver = Receiver()
    overrides = wiring.Overrides(sources=sources, channels={"webhook": receiver})
    deps = wiring.deps(settings, store, RunControl(clock), overrides)
    return job.run_once(deps, windows.daily(DAY), NOW), receiver


class RefusingStore(HistoryStore):
    """A history database that refuses every result (as PostgreSQL refused a 201-char name)."""

    def finish_run(self, run_id: int, result: ReconResult, **options: Any) -> None:
        raise StoreError(
            "cannot finish run: value too long for type character varying(200)",
            permanent=True,
            reason="store_error",
        )


def test_a_result_the_store_refuses_fails_the_run_and_says_so_through_the_channels(
    settings: Settings,
) -> None:
    same = totals(("gpt-4o", Usage(input_tokens=10, requests=1)))
    with RefusingStore("sqlite://") as store:
        outcome, receiver = run_with_channel(
            settings, store, job.Sources((("logs", Stub(same)),), (Stub(same),))
        )
        (record,) = store.list_runs()
    assert outcome.status is Status.FAILED
    assert isinstance(outcome.error, StoreError)
    assert (str(record.status), record.error_reason) == ("failed", "store_error")
    [message] = receiver.sent
    assert message.event == "failed"
    assert "value too long" in message.text
    assert outcome.alerts == ({"channel": "webhook", "event": "failed", "status": "sent"},)


@pytest.fixture
def postgres_store() -> Iterator[HistoryStore]:
    for url in temporary_postgres_database(postgres_server_or_skip()):
        with HistoryStore(url) as store:
            yield store


@pytest.mark.postgres
def test_a_model_name_postgresql_cannot_store_fails_the_run_loudly(
    settings: Settings, postgres_store: HistoryStore
) -> None:
    # A NUL is what PostgreSQL still refuses in a text column; the sources refuse it at parse
    # time, but whatever the store refuses must be told, not fail every later run silently.
    odd = totals(("gpt-4o\x00", Usage(input_tokens=10, requests=1)))
    outcome, receiver = run_with_channel(
        settings, postgres_store, job.Sources((("logs", Stub(odd)),), (Stub(),))
    )
    assert isinstance(outcome.error, StoreError)
    (record,) = postgres_store.list_runs()
    assert str(record.status) == "failed"
    assert [m.event for m in receiver.sent] == ["failed"]


@pytest.mark.parametrize(
    ("local_cost", "openai_cost", "logged"),
    [
        ("0.0047307", "0.0034", "39.138235"),  # was 39.13823529411764705882352941176470588…
        ("0.036", "1E-36", "3.600000E+36"),  # issue 9 item 8: a tiny OpenAI cost
    ],
)
def test_the_run_finished_line_carries_percentages_rounded_like_the_report(
    settings: Settings, store: HistoryStore, local_cost: str, openai_cost: str, logged: str
) -> None:
    local = Stub(totals(("gpt-4o", Usage(input_tokens=10, requests=1, cost=Decimal(local_cost)))))
    official = Stub(
        totals(("gpt-4o", Usage(input_tokens=10, requests=1, cost=Decimal(openai_cost))))
    )

    with capture_logs() as logs:
        run(settings, store, job.Sources((("logs", local),), (official,)))

    [finished] = [e for e in logs if e["event"] == job.EV_RUN_FINISHED]
    assert finished["cost_pct"] == logged
    assert finished["tokens_pct"] == "0.000000"
