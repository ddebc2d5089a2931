"""OpenAIUsageSource: parameters, pagination, parsing and error translation.

``responses`` tests pin the HTTP seam (exact query, fixture pages); the ``fake_openai`` tests run
the same source over a real socket, where urllib3's retries actually happen (R01–R12).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
import structlog

from recon_job import wiring
from recon_job.config import load_settings
from recon_job.errors import UsageApiError
from recon_job.http import Deadline, make_session
from recon_job.models import Usage, UsageKey, Window
from recon_job.sources.openai.base import OpenAIOptions
from recon_job.sources.openai.usage import OpenAIUsageSource
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)
from tests.helpers import FIXTURES

PAGES = FIXTURES / "openai"
KEY = "sk-admin-TEST.test.0123456789.abcdefghij.klmnopqrst.uvwxyzLAST8KEY"
BASE = "https://api.openai.test/v1"
URL = f"{BASE}/organization/usage/completions"
AUG1, AUG2, AUG3 = date(2025, 8, 1), date(2025, 8, 2), date(2025, 8, 3)
WINDOW = Window("range", AUG1, AUG3)  # 2025-08-01 and 2025-08-02: 1754006400..1754179200


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAGES / name).read_text())
    return data


def options(**overrides: Any) -> OpenAIOptions:
    values: dict[str, Any] = {"base_url": BASE, "admin_key": KEY}
    values.update(overrides)
    return OpenAIOptions(**values)


def page(*buckets: dict[str, Any], next_page: str | None = None) -> dict[str, Any]:
    return {
        "object": "page",
        "data": list(buckets),
        "has_more": next_page is not None,
        "next_page": next_page,
    }


def bucket(day: date, *results: dict[str, Any]) -> dict[str, Any]:
    start = int(Window("daily", day, date.fromordinal(day.toordinal() + 1)).start_at.timestamp())
    return {
        "object": "bucket",
        "start_time": start,
        "end_time": start + 86400,
        "results": list(results),
    }


def result(model: object = "gpt-4o-mini-2024-07-18", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": 100,
        "input_cached_tokens": 10,
        "output_tokens": 50,
        "num_model_requests": 2,
        "model": model,
        "project_id": None,
        "api_key_id": None,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def query_of(call_index: int = 0) -> list[tuple[str, str]]:
    url = responses.calls[call_index].request.url
    assert url is not None
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


@pytest.fixture(name="session")
def session_fixture() -> Iterator[requests.Session]:
    with make_session(retries=0) as session:
        yield session


def assert_no_key(exc: BaseException, key: str = KEY) -> None:
    for text in (str(exc), repr(exc)):
        assert key not in text
        assert key[-8:] not in text


class TestRequest:
    @responses.activate
    def test_it_asks_for_daily_buckets_on_utc_midnights_with_an_exclusive_end(
        self, session: requests.Session
    ) -> None:
        responses.get(URL, json=page())
        OpenAIUsageSource(options(), session).fetch(WINDOW)
        query = dict(query_of())
        assert query["start_time"] == "1754006400"  # 2025-08-01T00:00:00Z
        assert query["end_time"] == "1754179200"  # 2025-08-03T00:00:00Z, exclusive
        assert int(query["start_time"]) % 86400 == 0
        assert query["bucket_width"] == "1d"
        assert query["limit"] == "31"
        assert "page" not in query

    @responses.activate
    def test_it_sends_arrays_in_the_sdk_brackets_form(self, session: requests.Session) -> None:
        responses.get(URL, json=page())
        opts = options(
            group_by=("model", "project_id", "api_key_id"),
            project_ids=("proj_a", "proj_b"),
            api_key_ids=("key_1",),
        )
        OpenAIUsageSource(opts, session).fetch(WINDOW)
        pairs = query_of()
        assert [v for k, v in pairs if k == "group_by[]"] == ["model", "project_id", "api_key_id"]
        assert [v for k, v in pairs if k == "project_ids[]"] == ["proj_a", "proj_b"]
        assert [v for k, v in pairs if k == "api_key_ids[]"] == ["key_1"]
        assert "group_by" not in dict(pairs)
        raw_url = responses.calls[0].request.url
        assert raw_url is not None
        assert "group_by%5B%5D=model" in raw_url

    @responses.activate
    def test_it_sends_the_admin_key_as_a_bearer_token(self, session: requests.Session) -> None:
        responses.get(URL, json=page())
        OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert responses.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"

    def test_the_options_repr_hides_the_admin_key(self) -> None:
        text = repr(options())
        assert KEY not in text
        assert KEY[-8:] not in text


class TestParsing:
    @responses.activate
    def test_it_sums_the_reference_pages_a_and_b_per_day_model_and_project(
        self, session: requests.Session
    ) -> None:
        first = fixture("usage_completions_page1.json")
        responses.get(URL, json=first)
        responses.get(URL, json=fixture("usage_completions_page2.json"))
        source = OpenAIUsageSource(options(group_by=("model", "project_id")), session)
        totals = source.fetch(WINDOW)
        gpt4o = Usage(input_tokens=59200, cached_tokens=5760, output_tokens=10646, requests=10)
        mini = Usage(input_tokens=120000, cached_tokens=0, output_tokens=30000, requests=40)
        assert totals.groups == {
            UsageKey(AUG1, "gpt-4o-2024-08-06", "proj_abc"): gpt4o,
            UsageKey(AUG1, "gpt-4o-mini-2024-07-18", "proj_abc"): mini,
            UsageKey(AUG2, "gpt-4o-2024-08-06", "proj_abc"): gpt4o,
            UsageKey(AUG2, "gpt-4o-mini-2024-07-18", "proj_abc"): mini,
        }
        assert totals.info["usage_pages"] == 2
        assert len(responses.calls) == 2
        assert dict(query_of(1))["page"] == first["next_page"]
        assert all(u.cost == 0 for u in totals.groups.values())

    @responses.activate
    def test_it_sums_every_result_of_a_bucket_not_only_the_first(
        self, session: requests.Session
    ) -> None:
        responses.get(
            URL,
            json=page(
                bucket(
                    AUG1,
                    result(api_key_id="key_1"),
                    result(api_key_id="key_2", input_tokens=10, output_tokens=2),
                    result(model="gpt-5-mini-2025-08-07"),
                )
            ),
        )
        totals = OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert totals.groups[UsageKey(AUG1, "gpt-4o-mini-2024-07-18")] == Usage(
            input_tokens=110, cached_tokens=20, output_tokens=52, requests=4
        )
        assert totals.total.requests == 6

    @responses.activate
    def test_it_keys_by_api_key_when_grouped_by_it(self, session: requests.Session) -> None:
        responses.get(
            URL, json=page(bucket(AUG1, result(api_key_id="key_1"), result(api_key_id="key_2")))
        )
        totals = OpenAIUsageSource(options(group_by=("model", "api_key_id")), session).fetch(WINDOW)
        assert {k.api_key_id for k in totals.groups} == {"key_1", "key_2"}
        assert {k.project_id for k in totals.groups} == {None}

    @responses.activate
    def test_a_null_model_is_reported_as_unknown(self, session: requests.Session) -> None:
        responses.get(URL, json=page(bucket(AUG1, result(model=None))))
        totals = OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert list(totals.groups) == [UsageKey(AUG1, "(unknown)")]

    @responses.activate
    def test_missing_optional_fields_count_as_zero(self, session: requests.Session) -> None:
        launch_era = {
            "object": "organization.usage.completions.result",
            "input_tokens": 7,
            "output_tokens": 3,
            "num_model_requests": 1,
            "model": "gpt-4o-2024-08-06",
        }
        responses.get(URL, json=page(bucket(AUG1, launch_era)))
        totals = OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert totals.groups == {
            UsageKey(AUG1, "gpt-4o-2024-08-06"): Usage(
                input_tokens=7, cached_tokens=0, output_tokens=3, requests=1
            )
        }

    @responses.activate
    def test_it_reads_the_old_specs_result_key(self, session: requests.Session) -> None:
        old = bucket(AUG1, result())
        old["result"] = old.pop("results")
        responses.get(URL, json=page(old))
        totals = OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert totals.total.input_tokens == 100

    @responses.activate
    def test_empty_days_and_buckets_outside_the_window_count_nothing(
        self, session: requests.Session
    ) -> None:
        responses.get(URL, json=page(bucket(AUG1), bucket(AUG2, result()), bucket(AUG3, result())))
        totals = OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert list(totals.groups) == [UsageKey(AUG2, "gpt-4o-mini-2024-07-18")]
        assert totals.info["usage_buckets_outside_window"] == 1

    @pytest.mark.parametrize(
        "broken",
        [
            result(input_tokens=...),
            result(output_tokens=...),
            result(num_model_requests=...),
            result(input_tokens=1.5),
            result(input_tokens="100"),
            result(output_tokens=True),
            result(input_cached_tokens="10"),
            result(input_tokens=-1),
            result(model=42),
        ],
    )
    @responses.activate
    def test_a_missing_required_field_or_a_non_integer_is_a_schema_error(
        self, session: requests.Session, broken: dict[str, Any]
    ) -> None:
        responses.get(URL, json=page(bucket(AUG1, broken)))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert info.value.reason == "schema"
        assert info.value.permanent is False


class TestPagination:
    @responses.activate
    def test_a_repeated_cursor_is_a_pagination_loop(self, session: requests.Session) -> None:
        responses.get(URL, json=page(bucket(AUG1, result()), next_page="page_A"))
        responses.get(URL, json=page(bucket(AUG2, result()), next_page="page_B"))
        responses.get(URL, json=page(next_page="page_A"))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("pagination_loop", False)
        assert len(responses.calls) == 3

    @responses.activate
    def test_has_more_without_a_cursor_is_an_error_not_a_short_answer(
        self, session: requests.Session
    ) -> None:
        responses.get(
            URL,
            json={"object": "page", "data": [bucket(AUG1, result())], "has_more": True},
        )
        with pytest.raises(UsageApiError, match="next_page") as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert info.value.permanent is False

    @responses.activate
    def test_more_pages_than_max_pages_is_a_pagination_loop(
        self, session: requests.Session
    ) -> None:
        for n in range(5):
            responses.get(URL, json=page(next_page=f"page_{n}"))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(max_pages=3), session).fetch(WINDOW)
        assert info.value.reason == "pagination_loop"
        assert len(responses.calls) == 3

    @pytest.mark.parametrize(
        "body",
        [[], {"object": "list", "data": []}, {"object": "page"}, {"data": [], "has_more": "no"}],
    )
    @responses.activate
    def test_json_that_is_not_a_page_is_a_bad_response(
        self, session: requests.Session, body: Any
    ) -> None:
        responses.get(URL, json=body)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("bad_response", False)


class TestErrorsAtTheSeam:
    @pytest.mark.parametrize(("status", "reason"), [(401, "unauthorized"), (403, "forbidden")])
    @responses.activate
    def test_a_refused_key_is_permanent_and_says_which_key_is_needed(
        self, session: requests.Session, status: int, reason: str
    ) -> None:
        echo = f"Incorrect API key provided: {KEY[:10]}****{KEY[-4:]}. Also {KEY} {KEY[-8:]}"
        body = {"error": {"message": echo, "type": "invalid_request_error", "code": "x"}}
        responses.get(URL, json=body, status=status)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        error = info.value
        assert (error.reason, error.permanent, error.status) == (reason, True, status)
        assert "sk-admin-" in str(error)
        assert "api.usage.read" in str(error)
        assert "OPENAI_ADMIN_KEY" in str(error)
        assert_no_key(error)
        assert KEY[-4:] not in str(error)

    @responses.activate
    def test_a_429_without_retry_after_is_a_permanent_quota_error(
        self, session: requests.Session
    ) -> None:
        body = {
            "error": {
                "message": "You exceeded your current quota, please check your plan.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        }
        responses.get(URL, json=body, status=429)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("quota_exhausted", True)
        assert "insufficient_quota" in str(info.value)
        assert "exceeded your current quota" in str(info.value)

    @responses.activate
    def test_another_4xx_is_permanent_with_openais_message(self, session: requests.Session) -> None:
        body = {"error": {"message": "limit must be <= 31", "type": "invalid_request_error"}}
        responses.get(URL, json=body, status=400)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("http_400", True)
        assert "limit must be <= 31" in str(info.value)

    @responses.activate
    def test_a_5xx_is_a_transient_server_error(self, session: requests.Session) -> None:
        responses.get(URL, body="<html>bad gateway</html>", status=502)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent, info.value.status) == (
            "server_error",
            False,
            502,
        )

    @responses.activate
    def test_a_redirect_is_not_followed_with_the_key(self, session: requests.Session) -> None:
        responses.get(URL, status=302, headers={"Location": "https://elsewhere.test/"})
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert info.value.reason == "http_302"
        assert len(responses.calls) == 1

    @responses.activate
    def test_a_connection_error_is_transient(self, session: requests.Session) -> None:
        responses.get(URL, body=requests.ConnectionError("connection reset"))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("connection", False)
        assert isinstance(info.value.__cause__, requests.ConnectionError)

    @responses.activate
    def test_a_timeout_is_transient(self, session: requests.Session) -> None:
        responses.get(URL, body=requests.ReadTimeout("read timed out"))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(options(), session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("timeout", False)


def usage_options(fake: FakeOpenAI, **overrides: Any) -> OpenAIOptions:
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "admin_key": fake.admin_key,
        "read_timeout": 2.0,
        "connect_timeout": 2.0,
    }
    values.update(overrides)
    return OpenAIOptions(**values)


def usage_requests(fake: FakeOpenAI) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/usage/completions")]


class TestAgainstTheFakeServer:
    def test_it_fetches_every_page_and_counts_each_bucket_once(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        window = Window("range", date(2025, 7, 1), date(2025, 8, 10))  # 40 days: 2 pages
        fake_openai.add_usage(date(2025, 7, 1), "gpt-4o", input_tokens=10, requests=1)
        fake_openai.add_usage(date(2025, 7, 1), "gpt-4o", input_tokens=5, requests=1)
        fake_openai.add_usage(date(2025, 8, 9), "gpt-4o", input_tokens=7, output_tokens=1)
        fake_openai.add_usage(date(2025, 8, 10), "gpt-4o", input_tokens=999)  # outside
        totals = OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(window)
        assert totals.groups == {
            UsageKey(date(2025, 7, 1), "gpt-4o"): Usage(input_tokens=15, requests=2),
            UsageKey(date(2025, 8, 9), "gpt-4o"): Usage(input_tokens=7, output_tokens=1),
        }
        assert totals.info["usage_pages"] == 2
        assert totals.info["usage_buckets"] == 40
        first, second = fake_openai.requests
        assert first.headers["Authorization"] == f"Bearer {fake_openai.admin_key}"
        assert first.headers["User-Agent"].startswith("recon-job/")
        assert second.param("page") is not None

    def test_it_filters_and_groups_by_project(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_usage(AUG1, "gpt-4o", input_tokens=1, project_id="proj_a")
        fake_openai.add_usage(AUG1, "gpt-4o", input_tokens=2, project_id="proj_b")
        fake_openai.add_usage(AUG1, "gpt-4o", input_tokens=4, project_id="proj_c")
        opts = usage_options(
            fake_openai, group_by=("model", "project_id"), project_ids=("proj_a", "proj_b")
        )
        totals = OpenAIUsageSource(opts, fast_session).fetch(WINDOW)
        assert totals.groups == {
            UsageKey(AUG1, "gpt-4o", "proj_a"): Usage(input_tokens=1),
            UsageKey(AUG1, "gpt-4o", "proj_b"): Usage(input_tokens=2),
        }
        assert fake_openai.requests[0].query["project_ids[]"] == ["proj_a", "proj_b"]

    def test_r02_a_quota_429_is_asked_once_and_fails_permanently(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        body = {"error": {"type": "insufficient_quota", "message": "You exceeded your quota."}}
        fake_openai.fail_next(3, 429, body=body)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("quota_exhausted", True)
        assert len(fake_openai.requests) == 1

    def test_r03_a_fractional_retry_after_is_waited_for(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_usage(AUG1, "gpt-4o", input_tokens=3)
        fake_openai.fail_next(1, 429, headers={"Retry-After": "1.5"})
        totals = OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert totals.total.input_tokens == 3
        assert len(fake_openai.requests) == 2
        assert fake_openai.gaps()[0] >= 1.5

    def test_r04_a_day_long_retry_after_fails_fast_and_transient(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.fail_next(3, 503, headers={"Retry-After": "86400"})
        started = time.monotonic()
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert time.monotonic() - started < 1.0
        assert (info.value.reason, info.value.permanent) == ("rate_limited_too_long", False)
        assert "86400 s" in str(info.value)
        assert "60 s cap" in str(info.value)
        assert len(fake_openai.requests) == 1

    def test_r05_two_bad_gateways_then_success(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_usage(AUG2, "gpt-4o", output_tokens=9)
        fake_openai.fail_next(2, 502)
        totals = OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert totals.total.output_tokens == 9
        assert len(fake_openai.requests) == 3

    def test_r06_a_server_that_always_fails_is_a_transient_error_after_the_retries(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.fail_next(20, 500)
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent, info.value.status) == (
            "server_error",
            False,
            500,
        )
        assert len(fake_openai.requests) == 3  # retries=2, plus the first

    def test_r07_a_server_that_never_answers_times_out_per_attempt(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.delay_next(5, 30)
        started = time.monotonic()
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai, read_timeout=0.3), fast_session).fetch(
                WINDOW
            )
        assert (info.value.reason, info.value.permanent) == ("timeout", False)
        assert len(fake_openai.requests) == 3
        assert 0.9 <= time.monotonic() - started < 3.0

    @pytest.mark.parametrize(
        ("field", "value"),
        [("input_tokens", 2**63), ("output_tokens", 2**53), ("num_model_requests", 10**30)],
    )
    def test_a_count_beyond_2_53_is_a_clear_permanent_error(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session, field: str, value: int
    ) -> None:
        fake_openai.add_raw_result("usage", AUG1, result(**{field: value}))

        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)

        assert (info.value.reason, info.value.permanent) == ("schema", True)
        assert f"field {field!r} is {value:,}" in str(info.value)
        assert len(usage_requests(fake_openai)) == 1  # not asked again: it cannot change

    def test_the_largest_count_kept_is_2_53_minus_1(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        largest = 2**53 - 1
        fake_openai.add_raw_result("usage", AUG1, result(input_tokens=largest))

        totals = OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)

        assert totals.total.input_tokens == largest

    def test_r09_a_failing_second_page_is_retried_without_duplicating_the_first(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        window = Window("range", date(2025, 7, 1), date(2025, 8, 10))
        fake_openai.add_usage(date(2025, 7, 2), "gpt-4o", input_tokens=100, requests=1)
        fake_openai.add_usage(date(2025, 8, 5), "gpt-4o", input_tokens=20, requests=2)
        fake_openai.fail_next(2, 500, match=lambda r: r.param("page") is not None)
        totals = OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(window)
        assert totals.total == Usage(input_tokens=120, requests=3)
        assert totals.info["usage_pages"] == 2
        assert len(fake_openai.requests) == 4

    def test_r10_a_cursor_cycle_ends_in_a_pagination_loop_error(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.respond_next(10, body=page(bucket(AUG1, result()), next_page="page_SAME"))
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert info.value.reason == "pagination_loop"
        assert len(fake_openai.requests) == 2

    def test_r11_an_html_200_is_a_transient_bad_response_without_a_body_dump(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        html = "<html><head><title>Hotel WiFi login</title></head>" + "x" * 5000 + "SECRETEND"
        fake_openai.respond_next(1, body=html, headers={"Content-Type": "text/html"})
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        message = str(info.value)
        assert (info.value.reason, info.value.permanent) == ("bad_response", False)
        assert "text/html" in message
        assert "<html>" in message
        assert "SECRETEND" not in message
        assert len(message) < 400
        assert len(fake_openai.requests) == 1

    def test_r11_a_truncated_json_body_is_a_bad_response(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.respond_next(
            1,
            body='{"object": "page", "data": [{"obj',
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(UsageApiError) as info:
            OpenAIUsageSource(usage_options(fake_openai), fast_session).fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("bad_response", False)

    def test_r12_a_wrong_key_is_asked_once_and_never_leaks(
        self, fast_session: requests.Session
    ) -> None:
        with (
            FakeOpenAI(admin_key="sk-admin-the-right-one") as fake,
            structlog.testing.capture_logs() as logs,
        ):
            opts = usage_options(fake, admin_key=KEY)
            with pytest.raises(UsageApiError) as info:
                OpenAIUsageSource(opts, fast_session).fetch(WINDOW)
        error = info.value
        assert (error.reason, error.permanent, error.status) == ("unauthorized", True, 401)
        assert len(fake.requests) == 1
        assert_no_key(error)
        assert KEY[-4:] not in str(error)  # OpenAI's echo of the last 4 is scrubbed too
        assert KEY[-8:] not in repr(logs)

    def test_a_slow_server_is_cut_off_at_the_deadline(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.delay_next(5, 30)
        deadline = Deadline(0.5)
        started = time.monotonic()
        with make_session(retries=4, backoff_factor=0.01, deadline=deadline) as session:
            source = OpenAIUsageSource(
                usage_options(fake_openai, read_timeout=10), session, deadline
            )
            with pytest.raises(UsageApiError) as info:
                source.fetch(WINDOW)
        assert (info.value.reason, info.value.permanent) == ("deadline", False)
        assert time.monotonic() - started < 1.5

    @pytest.mark.timeout(30)
    def test_a_silent_server_cannot_stretch_the_deadline_by_a_read_timeout_per_retry(
        self, fake_openai: FakeOpenAI
    ) -> None:
        # Issue 9 item 25, scaled down: deadline 45 s and a 30 s read timeout ended after 62 s.
        # The sources as every run builds them (wiring), so the session has the deadline too.
        settings = load_settings(
            environ={
                "OPENAI_ADMIN_KEY": fake_openai.admin_key,
                "OPENAI_BASE_URL": fake_openai.base_url,
                "RECON_LOG_PATHS": "unused.ndjson",
                "RECON_OPENAI__DEADLINE_SECONDS": "1.5",
                "RECON_OPENAI__READ_TIMEOUT_SECONDS": "1",
                "RECON_OPENAI__MAX_RETRIES": "4",
            }
        )
        usage, *_ = wiring.api_sources(settings)  # completions first, the Costs API last
        fake_openai.delay_next(10, 30)
        started = time.monotonic()

        with pytest.raises(UsageApiError) as info:
            usage.fetch(WINDOW)

        assert time.monotonic() - started < 1.5 + 0.4
        assert (info.value.reason, info.value.permanent) == ("deadline", False)

    def test_a_dripping_server_is_cut_off_at_the_deadline(self, fake_openai: FakeOpenAI) -> None:
        # One byte every 50 ms never trips a 2 s read timeout; only the deadline ends it.
        fake_openai.add_usage(AUG1, "gpt-4o", input_tokens=1)
        fake_openai.delay_next(1, 0, drip=0.05)
        deadline = Deadline(0.6)
        started = time.monotonic()
        with make_session(deadline=deadline) as session:
            source = OpenAIUsageSource(usage_options(fake_openai), session, deadline)
            with pytest.raises(UsageApiError) as info:
                source.fetch(WINDOW)
        assert info.value.reason == "deadline"
        assert time.monotonic() - started < 1.5

    def test_an_expired_deadline_sends_nothing(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        source = OpenAIUsageSource(usage_options(fake_openai), fast_session, Deadline(0))
        with pytest.raises(UsageApiError) as info:
            source.fetch(WINDOW)
        assert info.value.reason == "deadline"
        assert fake_openai.requests == []
