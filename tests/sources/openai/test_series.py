"""fetch_series over the fake OpenAI server: hourly and minute buckets, paging, grouping, errors,
and the two scenarios end to end (a logging outage to the minute, Berlin times read as UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from recon_job.diagnosis import best_shift, gap_sentence, locate, minute_spans, refine
from recon_job.errors import UsageApiError
from recon_job.findings import GroupRef
from recon_job.models import SeriesPoint, Usage, Window
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.series import (
    HOUR_WIDTH,
    MINUTE_WIDTH,
    as_series,
    fetch_series,
    quantity_series,
    series_requests,
)
from recon_job.sources.openai.usage import OpenAIUsageSource
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

DAY = date(2026, 2, 3)
MIDNIGHT = datetime(2026, 2, 3, tzinfo=UTC)
MODEL = "gpt-4o-2024-08-06"


def options(fake: FakeOpenAI, **overrides: object) -> OpenAIOptions:
    return OpenAIOptions(base_url=fake.base_url, admin_key=fake.admin_key, **overrides)  # type: ignore[arg-type]


def at(hour: int, minute: int = 0) -> datetime:
    return MIDNIGHT + timedelta(hours=hour, minutes=minute)


def test_it_fetches_hourly_buckets_grouped_by_model_and_project_in_one_request(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_usage(DAY, MODEL, input_tokens=10, requests=1, at=at(14, 23))
    fake_openai.add_usage(DAY, MODEL, input_tokens=5, requests=2, at=at(14, 59), project_id="p1")
    fake_openai.add_usage(DAY, MODEL, input_tokens=7, requests=1, at=at(9, 1), project_id="p1")

    fetched = fetch_series(options(fake_openai), fast_session, "completions", at(0), at(24), "1h")

    assert fetched.requests == 1 == len(fake_openai.requests)
    request = fake_openai.requests[0]
    assert (request.param("bucket_width"), request.param("limit")) == ("1h", "24")
    assert request.query["group_by[]"] == ["model", "project_id"]
    assert fetched.points == (
        SeriesPoint(at(9), MODEL, "p1", Usage(input_tokens=7, requests=1)),
        SeriesPoint(at(14), MODEL, None, Usage(input_tokens=10, requests=1)),
        SeriesPoint(at(14), MODEL, "p1", Usage(input_tokens=5, requests=2)),
    )
    assert quantity_series(fetched.points, "requests") == {at(9): 1, at(14): 3}
    assert as_series("completions", fetched.points)[("completions", MODEL, "p1")] == {
        at(9): Usage(input_tokens=7, requests=1),
        at(14): Usage(input_tokens=5, requests=2),
    }


def test_pages_follow_the_width_limits(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_usage(DAY, MODEL, requests=3, at=at(23, 59))
    fake_openai.add_usage(DAY + timedelta(days=1), MODEL, requests=4, at=at(24))
    start, end = at(0), at(48)

    minutes = fetch_series(options(fake_openai), fast_session, "completions", start, end, "1m")
    week = fetch_series(
        options(fake_openai), fast_session, "completions", at(0), at(24 * 8), HOUR_WIDTH
    )

    assert minutes.requests == series_requests(start, end, MINUTE_WIDTH) == 2
    assert week.requests == series_requests(at(0), at(24 * 8), "1h") == 2
    assert [r.param("limit") for r in fake_openai.requests] == ["1440", "1440", "168", "168"]
    assert quantity_series(minutes.points, "requests") == {at(23, 59): 3, at(24): 4}
    assert quantity_series(week.points, "requests") == {at(23): 3, at(24): 4}


def test_a_family_reported_per_project_gets_its_product_name(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_family_usage(
        "code_interpreter_sessions", DAY, None, "p1", at=at(3, 5), num_sessions=2
    )

    fetched = fetch_series(
        options(fake_openai), fast_session, "code_interpreter_sessions", at(0), at(6), "1h"
    )

    assert fake_openai.requests[0].query["group_by[]"] == ["project_id"]
    (point,) = fetched.points
    assert (point.start, point.project_id, point.usage.sessions) == (at(3), "p1", 2)
    assert point.model != "(unknown)"


def test_a_budget_too_small_for_the_pages_fails_before_any_request(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    with pytest.raises(UsageApiError) as caught:
        fetch_series(
            options(fake_openai), fast_session, "completions", at(0), at(48), "1m", max_requests=1
        )

    assert caught.value.reason == "budget"
    assert fake_openai.requests == []


def test_an_api_error_is_a_usage_api_error_never_partial_data(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.fail_next(1, status=400, match=lambda r: r.param("page") is not None)

    with pytest.raises(UsageApiError) as caught:
        fetch_series(options(fake_openai), fast_session, "completions", at(0), at(48), "1m")

    assert caught.value.status == 400
    assert len(fake_openai.requests) == 2


def test_unaligned_or_naive_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="aligned"):
        series_requests(at(0, 30), at(2), "1h")
    with pytest.raises(ValueError, match="aware"):
        series_requests(datetime(2026, 2, 3), at(2), "1h")
    with pytest.raises(ValueError, match="1h or 1m"):
        series_requests(at(0), at(2), timedelta(days=1))


def test_the_fake_refuses_limits_above_each_widths_maximum_and_sub_day_costs(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    base = fake_openai.base_url
    headers = {"Authorization": f"Bearer {fake_openai.admin_key}"}
    common = {"start_time": str(int(at(0).timestamp())), "end_time": str(int(at(24).timestamp()))}

    too_many = fast_session.get(
        f"{base}/organization/usage/completions",
        params={**common, "bucket_width": "1h", "limit": "169"},
        headers=headers,
        timeout=5,
    )
    costs = fast_session.get(
        f"{base}/organization/costs",
        params={**common, "bucket_width": "1h"},
        headers=headers,
        timeout=5,
    )
    default = fast_session.get(
        f"{base}/organization/usage/completions",
        params={**common, "bucket_width": "1m"},
        headers=headers,
        timeout=5,
    )

    assert (too_many.status_code, costs.status_code) == (400, 400)
    assert len(default.json()["data"]) == 60  # 1m: default limit 60


def test_daily_buckets_still_sum_every_row_of_the_day(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_usage(DAY, MODEL, requests=1, at=at(0, 1))
    fake_openai.add_usage(DAY, MODEL, requests=2, at=at(23, 59))
    fake_openai.add_usage(DAY, MODEL, requests=4)

    totals = OpenAIUsageSource(options(fake_openai), fast_session).fetch(
        Window("daily", DAY, DAY + timedelta(days=1))
    )

    assert [u.requests for u in totals.groups.values()] == [7]


def test_a_logging_outage_is_located_to_the_minute_with_an_hourly_then_a_minute_fetch(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    """OpenAI counts 3 requests a minute 12:00-18:00; the logs have none 14:00-15:20."""
    local: dict[datetime, Decimal] = {}
    for minute in range(12 * 60, 18 * 60):
        moment = MIDNIGHT + timedelta(minutes=minute)
        fake_openai.add_usage(DAY, MODEL, input_tokens=30, requests=3, at=moment)
        if not at(14) <= moment < at(15, 20):
            local[moment] = Decimal(3)
    group = GroupRef(DAY, "completions", "gpt-4o")

    def local_in(start: datetime, end: datetime, width: timedelta) -> dict[datetime, Decimal]:
        out: dict[datetime, Decimal] = {}
        for moment, value in local.items():
            if start <= moment < end:
                bucket = start + (moment - start) // width * width
                out[bucket] = out.get(bucket, Decimal(0)) + value
        return out

    opts = options(fake_openai)
    hours = fetch_series(opts, fast_session, "completions", at(0), at(24), "1h")
    (gap,) = locate(
        local_in(at(0), at(24), HOUR_WIDTH),
        quantity_series(hours.points, "requests"),
        width=HOUR_WIDTH,
        quantity="requests",
        resolution="1h",
    )
    (span,) = minute_spans(gap)
    minutes = fetch_series(opts, fast_session, "completions", *span, "1m")
    refined = refine(
        gap, local_in(*span, MINUTE_WIDTH), quantity_series(minutes.points, "requests")
    )

    assert (gap.start, gap.end) == (at(14), at(16))
    assert (refined.start, refined.end, refined.difference) == (at(14), at(15, 20), Decimal(-240))
    assert hours.requests + minutes.requests == 2
    assert gap_sentence(group, refined) == (
        "2026-02-03 completions gpt-4o: your logs are missing 240 requests during "
        "14:00\u201315:20 UTC (100% of the difference): a logging outage?"
    )


def test_berlin_naive_times_read_as_utc_show_as_a_one_hour_shift_in_winter(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    """Every hour of the drifting day ± 1 day, OpenAI's figures and the logs' Berlin wall
    times read as UTC; one hourly fetch of the three days."""
    berlin = ZoneInfo("Europe/Berlin")
    start = MIDNIGHT - timedelta(days=1)
    local: dict[datetime, Decimal] = {}
    for hour in range(72):
        moment = start + timedelta(hours=hour, minutes=17)
        count = 5 + (hour * 7) % 23
        fake_openai.add_usage(moment.date(), MODEL, requests=count, at=moment)
        naive = moment.astimezone(berlin).replace(tzinfo=None, minute=0)
        local[naive.replace(tzinfo=UTC)] = Decimal(count)

    fetched = fetch_series(
        options(fake_openai), fast_session, "completions", start, start + timedelta(days=3), "1h"
    )

    assert fetched.requests == 1
    assert best_shift(local, quantity_series(fetched.points, "requests"), max_hours=14) == 1
