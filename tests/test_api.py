"""The Python API: the five documented functions, end to end on real files and real HTTP."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import recon_job
from recon_job.errors import UsageApiError
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

D = Decimal
D1, D2 = date(2026, 8, 1), date(2026, 8, 2)


def test_the_documented_names_are_importable_from_the_package() -> None:
    for name in (
        "fetch_openai_usage",
        "fetch_openai_costs",
        "parse_openai_costs_response",
        "parse_openai_usage_response",
        "parse_usage_logs",
        "calculate_usage_stats",
        "compare_usage",
    ):
        assert callable(getattr(recon_job, name))
    with pytest.raises(AttributeError):
        recon_job.no_such_function  # type: ignore[attr-defined]  # noqa: B018


def test_fetch_and_parse_openai_usage_sum_every_page_and_result(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_usage(
        D1, "gpt-4o-2024-08-06", input_tokens=100, cached_tokens=40, output_tokens=10, requests=2
    )
    fake_openai.add_usage(
        D1, "gpt-4o-mini-2024-07-18", input_tokens=50, output_tokens=5, requests=1
    )
    fake_openai.add_usage(D2, "gpt-4o", input_tokens=7, output_tokens=3, requests=1)
    response = recon_job.fetch_openai_usage(
        fake_openai.admin_key, "2026-08-01", date(2026, 8, 2), base_url=fake_openai.base_url
    )
    assert response["has_more"] is False
    assert [b["start_time"] for b in response["data"]] == [1785542400, 1785628800]
    assert response["data"][0]["end_time"] == 1785628800
    (request,) = fake_openai.requests
    assert request.param("limit") == "31"
    assert request.param("end_time") == "1785715200"

    stats = recon_job.parse_openai_usage_response(response)
    assert stats["input_tokens"] == 157
    assert stats["cached_tokens"] == 40
    assert stats["total_tokens"] == 175
    assert stats["requests"] == 4
    assert stats["cost"] is None
    assert set(stats["by_model"]) == {"gpt-4o", "gpt-4o-mini"}
    assert stats["by_model"]["gpt-4o"]["requests"] == 3
    assert stats["by_day"]["2026-08-02"]["total_tokens"] == 10


def test_fetch_openai_usage_raises_rather_than_returning_partial_data(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.fail_next(1, 401)
    with pytest.raises(UsageApiError) as info:
        recon_job.fetch_openai_usage(fake_openai.admin_key, D1, D1, base_url=fake_openai.base_url)
    assert info.value.permanent
    assert fake_openai.admin_key not in str(info.value)


def test_fetch_openai_usage_rejects_an_unknown_bucket_width() -> None:
    with pytest.raises(ValueError, match="bucket_width"):
        recon_job.fetch_openai_usage("sk-admin-x", D1, D1, bucket_width="1w")


def write(tmp_path: Path, records: list[object]) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (logs / "usage.ndjson").write_text("\n".join(lines) + "\n", "utf-8")
    return logs


def test_local_logs_become_stats_with_cached_tokens_priced_once(tmp_path: Path) -> None:
    logs = write(
        tmp_path,
        [
            # 1M input of which 900k cached, on gpt-4o: $0.25 + $1.125, not $2.50 + $1.125.
            {
                "timestamp": "2026-08-01T10:00:00Z",
                "model": "gpt-4o-2024-08-06",
                "prompt_tokens": 1_000_000,
                "completion_tokens": 0,
                "cached_tokens": 900_000,
            },
            {
                "timestamp": "2026-08-01T11:00:00Z",
                "model": "gpt-4o-mini",
                "input_tokens": 10,
                "output_tokens": 5,
                "cost_usd": 0.0034,
            },
            {
                "timestamp": "2026-08-02T11:00:00Z",
                "model": "in-house-llm",
                "input_tokens": 10,
                "output_tokens": 5,
            },
            {
                "timestamp": "2026-07-31T23:59:59Z",
                "model": "gpt-4o",
                "input_tokens": 1,
                "output_tokens": 1,
            },
            "{broken",
        ],
    )
    records = recon_job.parse_usage_logs(logs, "2026-08-01", "2026-08-02")
    assert [r.model for r in records] == ["gpt-4o-2024-08-06", "gpt-4o-mini", "in-house-llm"]
    assert records[1].cost == Decimal("0.0034")
    every = recon_job.parse_usage_logs(logs)
    assert len(every) == 4

    stats = recon_job.calculate_usage_stats(records)
    assert stats["requests"] == 3
    assert stats["by_model"]["gpt-4o"]["cost"] == Decimal("1.375")
    assert stats["cost"] == Decimal("1.3784")
    assert stats["unpriced_models"] == ["in-house-llm"]


def test_compare_usage_applies_the_threshold_and_the_floors() -> None:
    openai = {"input_tokens": 100_000, "output_tokens": 0, "requests": 100, "cost": Decimal("10")}
    same = recon_job.compare_usage(dict(openai), openai)
    assert same["reconciled"] is True
    assert same["difference"]["tokens"] == 0
    assert same["difference"]["tokens_pct"] == 0

    low = recon_job.compare_usage(
        {"input_tokens": 94_000, "output_tokens": 0, "requests": 100, "cost": Decimal("9.40")},
        openai,
    )
    assert low["reconciled"] is False
    assert low["exceeds"] == ["tokens", "cost"]
    assert low["difference"]["tokens"] == -6000
    assert low["difference"]["tokens_pct"] == Decimal(-6)
    assert low["difference"]["cost"] == Decimal("-0.60")

    tiny = recon_job.compare_usage(
        {"input_tokens": 90, "requests": 1, "cost": Decimal("0.01")},
        {"input_tokens": 100, "requests": 1, "cost": Decimal("0.02")},
    )
    assert tiny["reconciled"] is True  # 10% and 50% off, but below the token and cost floors

    usage_only = recon_job.compare_usage(
        {"input_tokens": 100_000, "requests": 100, "cost": Decimal("99")},
        {"input_tokens": 100_000, "requests": 100, "cost": None},
    )
    assert usage_only["reconciled"] is True
    assert usage_only["difference"]["cost"] is None


def test_costs_are_fetched_and_compared_so_the_readme_snippet_compares_dollars(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Issue 9 #32: without the Costs API the snippet's difference["cost"] was always None."""
    fake_openai.add_usage(D1, "gpt-4o-2024-08-06", input_tokens=1_000_000, requests=1)
    fake_openai.add_cost(D1, "gpt-4o-2024-08-06, input", "2.5")
    fake_openai.add_cost(D1, "web search tool calls", "0.01")
    usage = recon_job.fetch_openai_usage(
        fake_openai.admin_key, D1, D1, base_url=fake_openai.base_url
    )
    costs = recon_job.fetch_openai_costs(
        fake_openai.admin_key, D1, D1, base_url=fake_openai.base_url
    )
    assert [r.path for r in fake_openai.requests][-1].endswith("/organization/costs")
    assert fake_openai.requests[-1].param("group_by[]") == "line_item"
    assert recon_job.parse_openai_costs_response(costs)["by_model"]["gpt-4o"]["cost"] == D("2.5")

    openai_stats = recon_job.parse_openai_usage_response(usage, costs=costs)
    assert openai_stats["cost"] == D("2.51")
    assert openai_stats["by_model"]["gpt-4o"]["cost"] == D("2.5")
    assert openai_stats["by_model"]["web search tool calls"]["cost"] == D("0.01")
    logs = write(
        tmp_path,
        [
            {
                "timestamp": "2026-08-01T10:00:00Z",
                "model": "gpt-4o",
                "prompt_tokens": 1_000_000,
                "completion_tokens": 0,
            }
        ],
    )
    local_stats = recon_job.calculate_usage_stats(recon_job.parse_usage_logs(logs))
    verdict = recon_job.compare_usage(local_stats, openai_stats)
    assert verdict["difference"]["cost"] == D("-0.01")
    assert verdict["difference"]["cost_pct"] == D("-0.398406")  # 6 decimals, not 60 digits
    assert verdict["reconciled"] is True


def test_the_library_prints_nothing_on_stdout(
    fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    structlog.reset_defaults()
    from recon_job.logconfig import library_defaults

    library_defaults()
    fake_openai.add_usage(D1, "gpt-4o", input_tokens=10, requests=1)
    response = recon_job.fetch_openai_usage(
        fake_openai.admin_key, D1, D1, base_url=fake_openai.base_url
    )
    recon_job.parse_openai_usage_response(response)
    assert capsys.readouterr().out == ""
