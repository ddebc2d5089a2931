"""OpenAICostsSource and parse_line_item: line items, exact Decimal amounts, parameters, retries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from recon_job.errors import UsageApiError
from recon_job.http import make_session
from recon_job.models import Usage, UsageKey, Window
from recon_job.sources.openai.base import OpenAIOptions
from recon_job.sources.openai.costs import (
    LineItem,
    OpenAICostsSource,
    parse_amount,
    parse_line_item,
)
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)
from tests.helpers import FIXTURES

PAGES = FIXTURES / "openai"
KEY = "sk-admin-COST.cost.0123456789.abcdefghij.klmnopqrst.uvwxyzLAST8KEY"
BASE = "https://api.openai.test/v1"
URL = f"{BASE}/organization/costs"
AUG1, AUG2 = date(2025, 8, 1), date(2025, 8, 2)
ONE_DAY = Window("daily", AUG1, AUG2)  # 1754006400..1754092800
GPT4O = "gpt-4o-2024-08-06"


def options(**overrides: Any) -> OpenAIOptions:
    values: dict[str, Any] = {"base_url": BASE, "admin_key": KEY}
    values.update(overrides)
    return OpenAIOptions(**values)


def costs_page(*results: dict[str, Any], start: int = 1754006400) -> dict[str, Any]:
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": start,
                "end_time": start + 86400,
                "results": list(results),
            }
        ],
        "has_more": False,
        "next_page": None,
    }


def cost(line_item: str | None, value: Any, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": currency},
        "line_item": line_item,
        "project_id": None,
        "api_key_id": None,
        **extra,
    }


@pytest.fixture(name="session")
def session_fixture() -> Iterator[requests.Session]:
    with make_session(retries=0) as session:
        yield session


def fetch(session: requests.Session, **overrides: Any) -> Any:
    return OpenAICostsSource(options(**overrides), session).fetch(ONE_DAY)


class TestParseLineItem:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("gpt-4o-2024-08-06, input", LineItem(None, GPT4O, None, "input", False)),
            (
                "gpt-5.4-2026-03-05, cached input",
                LineItem(None, "gpt-5.4-2026-03-05", None, "cached input", False),
            ),
            (
                "gpt-5.4-2026-03-05, output",
                LineItem(None, "gpt-5.4-2026-03-05", None, "output", False),
            ),
            (
                "priority | gpt-5.6-sol, output, long context",
                LineItem("priority", "gpt-5.6-sol", None, "output", True),
            ),
            (
                "gpt-audio-mini-2025-12-15 audio, input",
                LineItem(None, "gpt-audio-mini-2025-12-15", "audio", "input", False),
            ),
            ("gpt-4o image, output", LineItem(None, "gpt-4o", "image", "output", False)),
            ("gpt-4o text, cached input", LineItem(None, "gpt-4o", "text", "cached input", False)),
            ("gpt-5, cache writes", LineItem(None, "gpt-5", None, "cache writes", False)),
            ("whisper-1, audio", LineItem(None, "whisper-1", None, "audio", False)),
        ],
    )
    def test_it_splits_observed_line_items(self, text: str, expected: LineItem) -> None:
        assert parse_line_item(text) == expected

    @pytest.mark.parametrize(
        "text", ["web search tool calls", "Vector storage", "Text tokens", "input_tokens", ""]
    )
    def test_it_returns_none_for_line_items_without_a_model(self, text: str) -> None:
        assert parse_line_item(text) is None

    @given(st.text())
    def test_it_never_raises_on_arbitrary_text(self, text: str) -> None:
        parsed = parse_line_item(text)
        assert parsed is None or (parsed.model and "," not in parsed.model)

    @given(
        tier=st.sampled_from([None, "priority", "flex", "batch"]),
        model=st.from_regex(r"[a-z][a-z0-9.\-]{0,30}[a-z0-9]", fullmatch=True),
        modality=st.sampled_from([None, "text", "audio", "image"]),
        piece=st.sampled_from(["input", "output", "cached input", "cache writes"]),
        long_context=st.booleans(),
    )
    def test_it_recovers_every_part_it_is_built_from(
        self, tier: str | None, model: str, modality: str | None, piece: str, long_context: bool
    ) -> None:
        text = (
            (f"{tier} | " if tier else "")
            + model
            + (f" {modality}" if modality else "")
            + f", {piece}"
            + (", long context" if long_context else "")
        )
        assert parse_line_item(text) == LineItem(tier, model, modality, piece, long_context)


class TestParseAmount:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (0.06, Decimal("0.06")),
            ("12.50", Decimal("12.50")),
            ("0.003400000000000000000000000000000000", Decimal("0.0034")),
            (Decimal("0.1332"), Decimal("0.1332")),
            (3, Decimal(3)),
            ("-0.5", Decimal("-0.5")),
        ],
    )
    def test_it_reads_numbers_and_strings_exactly(self, value: Any, expected: Decimal) -> None:
        assert parse_amount({"value": value, "currency": "usd"}) == expected

    def test_it_keeps_all_36_decimals_of_a_string_amount(self) -> None:
        text = "0.123456789012345678901234567890123456"
        assert str(parse_amount({"value": text, "currency": "usd"})) == text

    @pytest.mark.parametrize("amount", [None, {"value": None, "currency": "usd"}, {"value": None}])
    def test_a_null_amount_is_none(self, amount: Any) -> None:
        assert parse_amount(amount) is None

    @pytest.mark.parametrize(
        "amount",
        [
            {"currency": "usd"},
            {"value": True, "currency": "usd"},
            {"value": float("nan"), "currency": "usd"},
            {"value": float("inf"), "currency": "usd"},
            {"value": "NaN", "currency": "usd"},
            {"value": "Infinity", "currency": "usd"},
            {"value": "twelve", "currency": "usd"},
            {"value": [1], "currency": "usd"},
            {"value": 1},
            "0.5",
        ],
    )
    def test_a_missing_or_non_numeric_value_is_a_schema_error(self, amount: Any) -> None:
        with pytest.raises(UsageApiError) as info:
            parse_amount(amount)
        assert (info.value.reason, info.value.permanent) == ("schema", False)

    def test_an_upper_case_currency_is_still_usd(self) -> None:
        assert parse_amount({"value": "1", "currency": "USD"}) == 1

    def test_a_currency_other_than_usd_is_a_permanent_error(self) -> None:
        with pytest.raises(UsageApiError, match="USD only") as info:
            parse_amount({"value": "1", "currency": "eur"})
        assert info.value.permanent is True


class TestRequest:
    @responses.activate
    def test_it_asks_for_180_daily_buckets_grouped_by_line_item(
        self, session: requests.Session
    ) -> None:
        responses.get(URL, json=costs_page())
        fetch(session)
        url = responses.calls[0].request.url
        assert url is not None
        pairs = parse_qsl(urlsplit(url).query)
        query = dict(pairs)
        assert (query["start_time"], query["end_time"]) == ("1754006400", "1754092800")
        assert (query["bucket_width"], query["limit"]) == ("1d", "180")
        assert [v for k, v in pairs if k == "group_by[]"] == ["line_item"]
        assert "group_by%5B%5D=line_item" in url

    @responses.activate
    def test_it_adds_project_and_key_grouping_and_filters(self, session: requests.Session) -> None:
        responses.get(URL, json=costs_page())
        fetch(
            session,
            group_by=("model", "project_id", "api_key_id"),
            project_ids=("proj_abc",),
            api_key_ids=("key_1", "key_2"),
        )
        url = responses.calls[0].request.url
        assert url is not None
        pairs = parse_qsl(urlsplit(url).query)
        assert [v for k, v in pairs if k == "group_by[]"] == [
            "line_item",
            "project_id",
            "api_key_id",
        ]
        assert [v for k, v in pairs if k == "project_ids[]"] == ["proj_abc"]
        assert [v for k, v in pairs if k == "api_key_ids[]"] == ["key_1", "key_2"]


class TestParsing:
    @responses.activate
    def test_reference_payload_b_sums_exactly_per_model_and_keeps_opaque_items(
        self, session: requests.Session
    ) -> None:
        responses.get(URL, body=(PAGES / "costs_line_items.json").read_text())
        totals = fetch(session, group_by=("model", "project_id"))
        assert totals.groups == {
            UsageKey(AUG1, GPT4O, "proj_abc"): Usage(cost=Decimal("0.2468600000000000")),
            UsageKey(AUG1, "web-search", None, family="web_search_calls"): Usage(
                cost=Decimal("0.02")
            ),
        }
        assert totals.info["costs_pages"] == 1
        assert "costs_unparsed_line_items" not in totals.info  # every line item has a family
        assert all(
            (u.input_tokens, u.output_tokens, u.requests) == (0, 0, 0)
            for u in totals.groups.values()
        )

    @responses.activate
    def test_json_numbers_with_many_decimals_are_not_rounded_through_float(
        self, session: requests.Session
    ) -> None:
        body = json.dumps(costs_page(cost(f"{GPT4O}, input", 0)))
        body = body.replace('"value": 0', '"value": 0.123456789012345678901234567890123456')
        responses.get(URL, body=body)
        (usage,) = fetch(session).groups.values()
        assert usage.cost == Decimal("0.123456789012345678901234567890123456")

    @responses.activate
    def test_string_amounts_with_36_decimals_add_up_exactly(
        self, session: requests.Session
    ) -> None:
        responses.get(
            URL,
            json=costs_page(
                cost(f"{GPT4O}, input", "0.003400000000000000000000000000000001"),
                cost(f"{GPT4O}, output", 0.1),
                cost(f"{GPT4O}, cached input", "0.5617712500000000"),
            ),
        )
        totals = fetch(session)
        assert totals.groups == {
            UsageKey(AUG1, GPT4O): Usage(cost=Decimal("0.665171250000000000000000000000000001"))
        }

    @responses.activate
    def test_null_amounts_count_as_zero_and_are_reported(self, session: requests.Session) -> None:
        no_amount = cost(f"{GPT4O}, output", None)
        del no_amount["amount"]
        responses.get(
            URL,
            json=costs_page(
                cost(f"{GPT4O}, input", "1.5"),
                {**cost(f"{GPT4O}, cached input", 0), "amount": None},
                cost(f"{GPT4O}, output", None),
                no_amount,
            ),
        )
        totals = fetch(session)
        assert totals.groups == {UsageKey(AUG1, GPT4O): Usage(cost=Decimal("1.5"))}
        assert totals.info["costs_results_without_amount"] == 3

    @responses.activate
    def test_an_ungrouped_line_item_is_the_whole_day(self, session: requests.Session) -> None:
        responses.get(URL, json=costs_page(cost(None, 0.06)))
        totals = fetch(session)
        assert totals.groups == {UsageKey(AUG1, "(all)"): Usage(cost=Decimal("0.06"))}

    @responses.activate
    def test_priority_and_long_context_lines_belong_to_their_model(
        self, session: requests.Session
    ) -> None:
        responses.get(
            URL,
            json=costs_page(
                cost("priority | gpt-5.6-sol, output, long context", "2"),
                cost("gpt-5.6-sol, input", "1"),
            ),
        )
        assert fetch(session).groups == {UsageKey(AUG1, "gpt-5.6-sol"): Usage(cost=Decimal(3))}

    @responses.activate
    def test_a_foreign_currency_fails_permanently(self, session: requests.Session) -> None:
        responses.get(URL, json=costs_page(cost(f"{GPT4O}, input", 1, currency="eur")))
        with pytest.raises(UsageApiError, match="USD only") as info:
            fetch(session)
        assert (info.value.reason, info.value.permanent) == ("currency", True)

    @responses.activate
    def test_a_nan_amount_is_a_schema_error(self, session: requests.Session) -> None:
        body = json.dumps(costs_page(cost(f"{GPT4O}, input", 0))).replace(
            '"value": 0', '"value": NaN'
        )
        responses.get(URL, body=body)
        with pytest.raises(UsageApiError) as info:
            fetch(session)
        assert info.value.reason == "schema"

    @responses.activate
    def test_buckets_outside_the_window_are_ignored(self, session: requests.Session) -> None:
        responses.get(URL, json=costs_page(cost(f"{GPT4O}, input", 1), start=1754092800))
        totals = fetch(session)
        assert totals.groups == {}
        assert totals.info["costs_buckets_outside_window"] == 1


def fake_options(fake: FakeOpenAI, **overrides: Any) -> OpenAIOptions:
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "admin_key": fake.admin_key,
        "read_timeout": 2.0,
    }
    values.update(overrides)
    return OpenAIOptions(**values)


class TestAgainstTheFakeServer:
    def test_it_sums_line_items_per_day_model_and_project(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        window = Window("range", AUG1, date(2025, 8, 3))
        fake_openai.add_cost(
            AUG1, f"{GPT4O}, input", "0.003400000000000000000000000000000000", project_id="p1"
        )
        fake_openai.add_cost(AUG1, f"{GPT4O}, output", 0.25, project_id="p1")
        fake_openai.add_cost(AUG1, f"{GPT4O}, output", 0.5, project_id="p2")
        fake_openai.add_cost(AUG2, "web search tool calls", "0.02", project_id="p1")
        opts = fake_options(fake_openai, group_by=("model", "project_id"))
        totals = OpenAICostsSource(opts, fast_session).fetch(window)
        assert totals.groups == {
            UsageKey(AUG1, GPT4O, "p1"): Usage(cost=Decimal("0.2534")),
            UsageKey(AUG1, GPT4O, "p2"): Usage(cost=Decimal("0.5")),
            UsageKey(AUG2, "web-search", "p1", family="web_search_calls"): Usage(
                cost=Decimal("0.02")
            ),
        }
        (request,) = fake_openai.requests
        assert request.query["group_by[]"] == ["line_item", "project_id"]
        assert request.param("limit") == "180"

    def test_r01_it_waits_out_a_429_with_retry_after_then_succeeds(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_cost(AUG1, f"{GPT4O}, input", "1.25")
        fake_openai.fail_next(1, 429, headers={"Retry-After": "1"})
        totals = OpenAICostsSource(fake_options(fake_openai), fast_session).fetch(ONE_DAY)
        assert totals.total.cost == Decimal("1.25")
        assert len(fake_openai.requests) == 2
        assert fake_openai.gaps()[0] >= 1.0

    def test_r04_a_retry_after_beyond_the_cap_is_a_fast_transient_error(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.fail_next(3, 429, headers={"Retry-After": "86400"})
        started = time.monotonic()
        with pytest.raises(UsageApiError) as info:
            OpenAICostsSource(fake_options(fake_openai), fast_session).fetch(ONE_DAY)
        assert time.monotonic() - started < 1.0
        assert (info.value.reason, info.value.permanent) == ("rate_limited_too_long", False)
        assert len(fake_openai.requests) == 1

    def test_r12_a_wrong_key_fails_once_and_permanently(
        self, fast_session: requests.Session
    ) -> None:
        with FakeOpenAI(admin_key="sk-admin-other") as fake:
            with pytest.raises(UsageApiError) as info:
                OpenAICostsSource(fake_options(fake, admin_key=KEY), fast_session).fetch(ONE_DAY)
            assert len(fake.requests) == 1
        assert (info.value.reason, info.value.permanent) == ("unauthorized", True)
        for text in (str(info.value), repr(info.value)):
            assert KEY not in text
            assert KEY[-8:] not in text

    @pytest.mark.parametrize("value", ["9e999999", "1e15", "-1e15", 1e300])
    def test_an_amount_beyond_any_real_cost_is_a_clear_permanent_error(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session, value: Any
    ) -> None:
        # Two of 9e999999 summed used to end the run in decimal.Overflow.
        for _ in range(2):
            fake_openai.add_raw_result("costs", AUG1, cost(f"{GPT4O}, input", value))

        with pytest.raises(UsageApiError) as info:
            OpenAICostsSource(fake_options(fake_openai), fast_session).fetch(ONE_DAY)

        assert (info.value.reason, info.value.permanent) == ("schema", True)
        assert "beyond any real cost" in str(info.value)
        assert len(fake_openai.requests) == 1
