"""Tests of the usage-dashboard CSV sources: real exports, every header generation, bad files."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_job.errors import ConfigError, LogSourceError
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.exports import CsvActivitySource, CsvCostSource, detect_export_kind
from tests.helpers import FIXTURES

CSV = FIXTURES / "csv"
D = Decimal

REAL_COST = CSV / "cost_2026-08-01_2026-08-31.csv"
REAL_ACTIVITY = CSV / "completions_usage_2026-08-01_2026-08-31.csv"
EMPTY_COST = CSV / "cost_2025-01-01_2025-01-03.csv"
EMPTY_ACTIVITY = CSV / "completions_usage_2025-01-01_2025-01-03.csv"
AUGUST = Window("monthly", date(2026, 8, 1), date(2026, 9, 1))


def days(first: date, last: date) -> Window:
    """The range window from ``first`` to ``last``, both inclusive."""
    return Window("range", first, date.fromordinal(last.toordinal() + 1))


def one_day(day: date) -> Window:
    return days(day, day)


def cost(*names: str, window: Window, **options: Any) -> UsageTotals:
    return CsvCostSource([CSV / name for name in names], **options).fetch(window)


def activity(*names: str, window: Window, **options: Any) -> UsageTotals:
    return CsvActivitySource([CSV / name for name in names], **options).fetch(window)


def costs_by_model(totals: UsageTotals) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, usage in totals.groups.items():
        out[key.model] = out.get(key.model, D(0)) + usage.cost
    return out


# --- the two real exports (reference/samples/README.md) ----------------------------------------


def test_the_real_cost_export_gives_its_one_org_wide_amount() -> None:
    totals = CsvCostSource([REAL_COST]).fetch(AUGUST)

    assert totals.groups == {UsageKey(date(2026, 8, 31), "(all)"): Usage(cost=D("0.0034"))}
    (usage,) = totals.groups.values()
    assert usage.cost == D("0.003400000000000000000000000000000000")
    assert usage.total_tokens == 0
    assert usage.requests == 0
    assert totals.info["csv_cost_empty_rows"] == 30


def test_the_real_activity_export_gives_its_one_model_day() -> None:
    totals = CsvActivitySource([REAL_ACTIVITY]).fetch(AUGUST)

    assert totals.groups == {
        UsageKey(date(2026, 8, 31), "gpt-4o-mini-2024-07-18"): Usage(
            input_tokens=31_422, cached_tokens=0, output_tokens=29, requests=4
        )
    }
    (usage,) = totals.groups.values()
    assert usage.cost == 0
    assert isinstance(usage.input_tokens, int)


@pytest.mark.parametrize("source", [CsvCostSource, CsvActivitySource])
def test_every_other_day_of_the_real_exports_is_no_usage_not_an_error(source: type) -> None:
    path = REAL_COST if source is CsvCostSource else REAL_ACTIVITY

    totals = source([path]).fetch(days(date(2026, 8, 1), date(2026, 8, 30)))

    assert totals.groups == {}


def test_the_real_exports_keep_project_and_api_key_when_grouped_by_them() -> None:
    totals = CsvActivitySource(
        [REAL_ACTIVITY], group_by=("model", "project_id", "api_key_id")
    ).fetch(AUGUST)

    assert list(totals.groups) == [
        UsageKey(date(2026, 8, 31), "gpt-4o-mini-2024-07-18", "proj_", "key_")
    ]


# --- telling the tabs apart ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cost_2026-08-01_2026-08-31.csv", "cost"),
        ("cost_2025-10_ungrouped.csv", "cost"),
        ("cost_2025-10_ungrouped.tsv", "cost"),
        ("cost_line_items_pelanor.csv", "cost"),
        ("cost_2026-08_line_items.csv", "cost"),
        ("cost_2026-09_api_source.csv", "cost"),
        ("bad_missing_column.csv", "cost"),
        ("completions_usage_2026-08-01_2026-08-31.csv", "activity"),
        ("completions_usage_2025-09.csv", "activity"),
        ("completions_usage_spreadsheet.csv", "activity"),
        ("cost_2025-01-01_2025-01-03.csv", "empty"),
        ("completions_usage_2025-01-01_2025-01-03.csv", "empty"),
    ],
)
def test_it_tells_the_export_kind_by_header_names(name: str, kind: str) -> None:
    assert detect_export_kind(CSV / name) == kind
    assert detect_export_kind(str(CSV / name)) == kind


def test_the_kind_comes_from_the_header_not_the_file_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "cost_2026-08-01_2026-08-31.csv"
    misnamed.write_bytes(REAL_ACTIVITY.read_bytes())

    assert detect_export_kind(misnamed) == "activity"


def test_an_empty_export_is_the_same_bytes_for_both_tabs_and_serves_either() -> None:
    assert hashlib.sha256(EMPTY_COST.read_bytes()).digest() == (
        hashlib.sha256(EMPTY_ACTIVITY.read_bytes()).digest()
    )
    window = days(date(2025, 1, 1), date(2025, 1, 3))

    assert CsvCostSource([EMPTY_ACTIVITY]).fetch(window).groups == {}
    assert CsvActivitySource([EMPTY_COST]).fetch(window).groups == {}


def test_an_empty_export_covers_its_days_next_to_a_full_one() -> None:
    both = (
        "cost_2025-01-01_2025-01-03.csv",
        "cost_2026-08-01_2026-08-31.csv",
    )
    totals = cost(*both, window=one_day(date(2026, 8, 31)))

    assert costs_by_model(totals) == {"(all)": D("0.0034")}


def test_a_cost_source_refuses_an_activity_export_and_says_which_tab_to_export() -> None:
    with pytest.raises(LogSourceError) as caught:
        CsvCostSource([REAL_ACTIVITY]).fetch(AUGUST)

    message = str(caught.value)
    assert message.startswith(f"{REAL_ACTIVITY.name} is an Activity export; ")
    assert "Cost tab export for dollars (Usage dashboard → Cost → Export" in message
    assert "group by Line item, 1 day" in message
    assert caught.value.permanent


def test_an_activity_source_refuses_a_cost_export_and_says_which_tab_to_export() -> None:
    with pytest.raises(LogSourceError, match=r"is a Cost export; .*Activity tab export"):
        CsvActivitySource([REAL_COST]).fetch(AUGUST)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty: no header line"),
        ("\n\n", "is empty: no header line"),
        ("date,cost\n2026-01-01,3\n", "is not an OpenAI usage dashboard export"),
        (
            "organization_id,n_requests,operation,n_context_tokens_total,n_generated_tokens_total,"
            "usage_type,model,timestamp,user\n",
            "legacy usage export",
        ),
        ("start_time,end_time,amount_value,input_tokens\n", "both Cost and Activity columns"),
        ("start_time,end_time,amount_value,amount_value\n", "repeats column"),
        # A spreadsheet's re-save where the decimal mark is a comma.
        ("start_time;end_time;amount_value;amount_currency\n", "is separated by semicolons"),
    ],
)
def test_a_file_that_is_no_dashboard_export_is_refused(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(content)

    with pytest.raises(LogSourceError, match=expected):
        detect_export_kind(path)
    with pytest.raises(LogSourceError, match=expected):
        CsvCostSource([path]).fetch(AUGUST)


# --- every header generation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cost_2025-10_ungrouped.csv", "cost_2025-10_ungrouped.tsv"])
def test_the_2025_10_ungrouped_cost_export_gives_org_wide_totals(name: str) -> None:
    totals = cost(
        name,
        window=days(date(2025, 10, 1), date(2025, 10, 3)),
        organization_id="org-Hp9mSGev2sVmtMeF2wrnSeOV",
    )

    assert totals.groups == {
        UsageKey(date(2025, 10, 1), "(all)"): Usage(cost=D("0.895874")),
        UsageKey(date(2025, 10, 3), "(all)"): Usage(cost=D("0.569788")),
    }


def test_line_items_of_one_model_sum_exactly_in_the_pelanor_field_list() -> None:
    window = one_day(date(2026, 6, 1))

    totals = cost("cost_line_items_pelanor.csv", window=window)

    assert costs_by_model(totals) == {
        "gpt-4o-2024-08-06": D("0.56177125") + D("0.3409") + D("0.569788") + D("0.25"),
        "gpt-4o-mini-2024-07-18": D("0.0012"),
    }
    assert costs_by_model(totals)["gpt-4o-2024-08-06"] == D("1.72245925")


def test_cost_rows_group_by_project_like_the_costs_api() -> None:
    totals = cost(
        "cost_line_items_pelanor.csv",
        window=one_day(date(2026, 6, 1)),
        group_by=("model", "project_id"),
    )

    day = date(2026, 6, 1)
    assert totals.groups == {
        UsageKey(day, "gpt-4o-2024-08-06", "proj_abc"): Usage(cost=D("1.47245925")),
        UsageKey(day, "gpt-4o-2024-08-06", "proj_xyz"): Usage(cost=D("0.25")),
        UsageKey(day, "gpt-4o-mini-2024-07-18", "proj_xyz"): Usage(cost=D("0.0012")),
    }


def test_the_project_filter_keeps_only_the_listed_projects() -> None:
    totals = cost(
        "cost_line_items_pelanor.csv",
        window=one_day(date(2026, 6, 1)),
        project_ids=("proj_xyz",),
    )

    assert costs_by_model(totals) == {
        "gpt-4o-2024-08-06": D("0.25"),
        "gpt-4o-mini-2024-07-18": D("0.0012"),
    }
    assert totals.info["csv_cost_rows_other_projects"] == 3


def test_the_project_filter_refuses_an_export_without_project_ids() -> None:
    with pytest.raises(LogSourceError, match="export it grouped by project"):
        cost(
            "cost_2025-10_ungrouped.csv",
            window=one_day(date(2025, 10, 1)),
            project_ids=("proj_a",),
        )


def test_36_decimal_amounts_of_the_2026_08_header_add_up_without_rounding() -> None:
    totals = cost(
        "cost_2026-08_line_items.csv",
        window=days(date(2026, 8, 10), date(2026, 8, 11)),
        group_by=("model", "api_key_id"),
    )

    day = date(2026, 8, 11)
    assert totals.groups == {
        UsageKey(day, "gpt-5-mini-2025-08-07", api_key_id="key_a"): Usage(
            cost=D("0.123000000000000000000000000000000001")
        ),
        UsageKey(day, "gpt-5-mini-2025-08-07", api_key_id="key_b"): Usage(cost=D("0.4")),
    }
    assert totals.total.cost == D("0.523000000000000000000000000000000001")


def test_quoted_line_items_with_commas_and_the_2026_09_api_source_column_parse() -> None:
    totals = cost("cost_2026-09_api_source.csv", window=days(date(2026, 9, 29), date(2026, 9, 30)))

    assert costs_by_model(totals) == {
        "gpt-5-nano": D("0.0147"),
        # Issue 10: mapped as the Costs API maps it (lineitems.map_line_item).
        "web-search": D("0.5"),
        "gpt-5.6-sol": D("1.25"),
    }
    assert "csv_cost_unparsed_line_items" not in totals.info


def test_the_2025_09_activity_header_sums_every_row_of_a_model() -> None:
    totals = activity(
        "completions_usage_2025-09.csv", window=days(date(2025, 9, 1), date(2025, 9, 2))
    )

    day = date(2025, 9, 1)
    assert totals.groups == {
        UsageKey(day, "gpt-4o-2024-08-06"): Usage(
            input_tokens=5300, cached_tokens=1024, output_tokens=740, requests=12
        ),
        # A blank input_cached_tokens (an optional column) counts as none cached.
        UsageKey(day, "gpt-4o-mini-2024-07-18"): Usage(
            input_tokens=100, cached_tokens=0, output_tokens=10, requests=1
        ),
    }
    assert totals.info["csv_activity_batch_requests"] == 2


def test_activity_groups_by_project_and_api_key_like_the_usage_api() -> None:
    totals = activity(
        "completions_usage_2025-09.csv",
        window=one_day(date(2025, 9, 1)),
        group_by=("model", "project_id", "api_key_id"),
        project_ids=("proj_a",),
    )

    day = date(2025, 9, 1)
    assert set(totals.groups) == {
        UsageKey(day, "gpt-4o-2024-08-06", "proj_a", "key_a"),
        UsageKey(day, "gpt-4o-2024-08-06", "proj_a", "key_b"),
    }


def test_a_spreadsheet_round_trip_with_false_and_integer_counts_reads_the_same() -> None:
    totals = activity("completions_usage_spreadsheet.csv", window=one_day(date(2026, 8, 10)))

    assert totals.groups == {
        UsageKey(date(2026, 8, 10), "gpt-4o-mini-2024-07-18"): Usage(
            input_tokens=32_422, cached_tokens=500, output_tokens=129, requests=10
        )
    }
    assert totals.info["csv_activity_batch_requests"] == 6


def test_a_row_with_usage_but_no_model_is_kept_as_unknown_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "activity.csv"
    path.write_text(
        "start_time,end_time,model,num_model_requests,input_tokens,output_tokens\n"
        "1788134400,1788220800,,3.0,30.0,3.0\n"
    )

    totals = CsvActivitySource([path]).fetch(one_day(date(2026, 8, 31)))

    assert totals.groups == {
        UsageKey(date(2026, 8, 31), "(unknown)"): Usage(
            input_tokens=30, output_tokens=3, requests=3
        )
    }


def test_a_row_repeated_cell_for_cell_is_refused_not_counted_twice(tmp_path: Path) -> None:
    # One export pasted under another doubled OpenAI's side without a word.
    row = "1788134400,1788220800,gpt-4o-mini-2024-07-18,4.0,31422.0,29.0\n"
    path = tmp_path / "activity.csv"
    path.write_text(
        "start_time,end_time,model,num_model_requests,input_tokens,output_tokens\n" + row * 2
    )

    with pytest.raises(LogSourceError, match=r"activity\.csv, line 3 repeats line 2 cell for cell"):
        CsvActivitySource([path]).fetch(one_day(date(2026, 8, 31)))


def test_extra_unknown_columns_and_a_byte_order_mark_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "cost.csv"
    path.write_bytes(
        b"\xef\xbb\xbfstart_time,end_time,amount_value,amount_currency,line_item,next_year\r\n"
        b'1788134400,1788220800,0.25,USD,"gpt-4.1-2025-04-14, output",whatever\r\n'
    )

    totals = CsvCostSource([path]).fetch(one_day(date(2026, 8, 31)))

    assert costs_by_model(totals) == {"gpt-4.1-2025-04-14": D("0.25")}


# --- coverage and overlapping files --------------------------------------------------------------


def test_a_window_day_no_file_covers_is_an_error_naming_the_days() -> None:
    window = days(date(2026, 7, 30), date(2026, 9, 2))

    with pytest.raises(LogSourceError) as caught:
        CsvCostSource([REAL_COST]).fetch(window)

    message = str(caught.value)
    assert "do not cover 2026-07-30..2026-07-31, 2026-09-01..2026-09-02" in message
    assert "export a range that covers them" in message
    assert caught.value.permanent


def test_days_outside_the_window_are_ignored() -> None:
    totals = cost("cost_overlap_a.csv", window=one_day(date(2026, 7, 2)))

    assert costs_by_model(totals) == {"gpt-4.1-2025-04-14": D("2.20")}


def test_two_files_with_the_same_figures_for_a_day_count_it_once() -> None:
    totals = cost(
        "cost_overlap_a.csv",
        "cost_overlap_b_same.csv",
        window=days(date(2026, 7, 1), date(2026, 7, 4)),
    )

    assert totals.total.cost == D("11.00")
    assert totals.groups[UsageKey(date(2026, 7, 3), "gpt-4.1-2025-04-14")].cost == D("3.30")
    assert totals.info["csv_cost_days_in_several_files"] == 1
    assert totals.info["csv_cost_files"] == 2


def test_two_files_with_different_figures_for_a_day_are_an_error() -> None:
    with pytest.raises(LogSourceError, match=r"2026-07-03 is in both cost_overlap_a\.csv and"):
        cost(
            "cost_overlap_a.csv",
            "cost_overlap_b_different.csv",
            window=days(date(2026, 7, 1), date(2026, 7, 4)),
        )


def test_an_overlap_outside_the_window_does_not_matter() -> None:
    totals = cost(
        "cost_overlap_a.csv",
        "cost_overlap_b_different.csv",
        window=one_day(date(2026, 7, 4)),
    )

    assert totals.total.cost == D("4.40")


def test_the_same_file_given_twice_is_not_double_counted() -> None:
    totals = CsvActivitySource([REAL_ACTIVITY, str(REAL_ACTIVITY)]).fetch(AUGUST)

    assert totals.total.requests == 4


# --- bad input -----------------------------------------------------------------------------------


def test_a_wrong_organization_is_refused_naming_both() -> None:
    with pytest.raises(LogSourceError) as caught:
        cost("bad_wrong_org.csv", window=one_day(date(2026, 8, 10)), organization_id="org-acme")

    message = str(caught.value)
    assert "bad_wrong_org.csv, line 2" in message
    assert "'org-other'" in message
    assert "'org-acme'" in message
    assert "wrong organization was exported" in message


def test_the_right_organization_passes_and_empty_rows_carry_none() -> None:
    totals = cost(
        "cost_2026-08_line_items.csv",
        window=days(date(2026, 8, 10), date(2026, 8, 11)),
        organization_id="org-acme",
    )

    assert totals.total.cost == D("0.523000000000000000000000000000000001")


def test_a_missing_required_column_is_named_with_the_file() -> None:
    with pytest.raises(
        LogSourceError, match=r"bad_missing_column\.csv has no amount_currency column"
    ):
        cost("bad_missing_column.csv", window=one_day(date(2026, 8, 10)))


def test_a_missing_activity_column_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "activity.csv"
    path.write_text("start_time,end_time,model,output_tokens\n")

    with pytest.raises(LogSourceError, match="has no num_model_requests, input_tokens column"):
        CsvActivitySource([path]).fetch(AUGUST)


def test_a_non_numeric_amount_names_file_line_column_and_value() -> None:
    with pytest.raises(LogSourceError) as caught:
        cost("bad_non_numeric_amount.csv", window=one_day(date(2026, 8, 10)))

    assert str(caught.value) == (
        "bad_non_numeric_amount.csv, line 3, column amount_value: '$1.20' is not an amount of money"
    )


def test_an_amount_in_another_currency_is_refused() -> None:
    with pytest.raises(LogSourceError, match=r"amount_currency: 'eur' is not usd"):
        cost("bad_currency.csv", window=one_day(date(2026, 8, 10)))


def test_a_fractional_token_count_is_an_error() -> None:
    with pytest.raises(LogSourceError) as caught:
        activity("bad_fractional_tokens.csv", window=one_day(date(2026, 8, 10)))

    assert str(caught.value) == (
        "bad_fractional_tokens.csv, line 2, column input_tokens: '31422.5' is not a whole "
        "number (a fractional count)"
    )


def test_an_hourly_export_is_refused_with_how_to_export_daily() -> None:
    with pytest.raises(LogSourceError, match=r"a bucket of 3600 seconds.*Time interval 1 day"):
        activity("bad_hourly.csv", window=one_day(date(2026, 8, 10)))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1788134400,1788220800,0.1,usd,x,extra", "more fields than the header"),
        (",1788220800,0.1,usd,x", "start_time or end_time is blank"),
        ("1788134401,1788220801,0.1,usd,x", "a bucket of 86400 seconds"),
        ("1e30,1788220800,0.1,usd,x", "column start_time: '1e30' is not a plausible count"),
        ("1788134400,1788220800,NaN,usd,x", "column amount_value: 'NaN' is not a plausible"),
        ("1788134400,1788220800,0.1,,x", "column amount_currency: '' is not usd"),
    ],
)
def test_a_bad_cost_row_is_an_error_not_a_silent_skip(
    tmp_path: Path, row: str, expected: str
) -> None:
    path = tmp_path / "cost.csv"
    path.write_text(f"start_time,end_time,amount_value,amount_currency,line_item\n{row}\n")

    with pytest.raises(LogSourceError, match=expected):
        CsvCostSource([path]).fetch(one_day(date(2026, 8, 31)))


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ("gpt-4o,,10,1,False", "column num_model_requests: '' is blank in a row with usage"),
        ("gpt-4o,1,-10,1,False", "column input_tokens: '-10' is negative"),
        ("gpt-4o,1,10,1,yes", "column batch: 'yes' is not True or False"),
        ("gpt-4o,1,ten,1,False", "column input_tokens: 'ten' is not a number"),
        (
            "gpt-4o,1,9007199254740992,1,False",
            "column input_tokens: '9007199254740992' is more than 9,007,199,254,740,991",
        ),
    ],
)
def test_a_bad_activity_row_is_an_error(tmp_path: Path, cells: str, expected: str) -> None:
    path = tmp_path / "activity.csv"
    path.write_text(
        "start_time,end_time,model,num_model_requests,input_tokens,output_tokens,batch\n"
        f"1788134400,1788220800,{cells}\n"
    )

    with pytest.raises(LogSourceError, match=expected):
        CsvActivitySource([path]).fetch(one_day(date(2026, 8, 31)))


def test_a_missing_file_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(LogSourceError, match="cannot read the CSV export") as caught:
        CsvCostSource([tmp_path / "nope.csv"]).fetch(AUGUST)
    assert caught.value.permanent
    with pytest.raises(LogSourceError, match="cannot read the CSV export"):
        detect_export_kind(tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cost.csv"
    path.write_bytes(b"start_time,end_time,amount_value,amount_currency\n1,2,\xff\xfe,usd\n")

    with pytest.raises(LogSourceError, match="is not UTF-8 text"):
        CsvCostSource([path]).fetch(AUGUST)


def test_bad_arguments_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one cost CSV export"):
        CsvCostSource([])
    with pytest.raises(ConfigError, match="at least one activity CSV export"):
        CsvActivitySource(str(REAL_ACTIVITY))
    with pytest.raises(ConfigError, match="unknown group_by"):
        CsvCostSource([REAL_COST], group_by=("model", "user_id"))


def test_the_files_are_never_modified() -> None:
    paths = sorted(FIXTURES.glob("*.csv"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}

    for path in paths:
        for source in (CsvCostSource, CsvActivitySource):
            try:
                detect_export_kind(path)
                source([path]).fetch(AUGUST)
            except LogSourceError:
                pass

    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths} == before


# --- arbitrary cell values -----------------------------------------------------------------------

# The real 2026-08 headers, the widest of each tab.
_COST_HEADER = REAL_COST.read_text(encoding="utf-8").splitlines()[0].split(",")
_ACTIVITY_HEADER = REAL_ACTIVITY.read_text(encoding="utf-8").splitlines()[0].split(",")
_CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "0", "1.0", "-1", "1e400", "NaN", "inf", "1788134400", "usd", "True"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
)


def _write(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["cost", "activity"]),
    cells=st.lists(_CELL, min_size=26, max_size=26),
    keep_time=st.booleans(),
)
def test_arbitrary_cell_values_raise_nothing_but_log_source_error(
    kind: str, cells: list[str], keep_time: bool
) -> None:
    header = _COST_HEADER if kind == "cost" else _ACTIVITY_HEADER
    row = cells[: len(header)]
    if keep_time:
        row[:2] = ["1788134400", "1788220800"]
    source = CsvCostSource if kind == "cost" else CsvActivitySource
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        path.write_text(_write([header, row]), encoding="utf-8", newline="")
        try:
            totals = source([path], organization_id="org-x").fetch(one_day(date(2026, 8, 31)))
        except LogSourceError:
            return
    assert all(isinstance(u.cost, Decimal) for u in totals.groups.values())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_log_source_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        path.write_bytes(b"start_time,end_time,amount_value,amount_currency,line_item\n" + content)
        with contextlib.suppress(LogSourceError):
            CsvCostSource([path]).fetch(one_day(date(2026, 8, 31)))


def test_an_export_cut_short_mid_row_is_refused_and_a_last_line_without_newline_is_not(
    tmp_path: Path,
) -> None:
    # A download cut after "31422.0,2" read 2 output tokens for 29: reconciled, exit 0.
    whole = REAL_ACTIVITY.read_bytes()
    assert whole.endswith(b"\n")
    cut = tmp_path / "activity_cut.csv"
    cut.write_bytes(whole[:-20])
    with pytest.raises(LogSourceError, match=r"activity_cut\.csv ends in the middle of a row"):
        CsvActivitySource([cut]).fetch(AUGUST)
    unterminated = tmp_path / "activity_no_newline.csv"
    unterminated.write_bytes(whole.rstrip(b"\n"))
    assert CsvActivitySource([unterminated]).fetch(AUGUST) == CsvActivitySource(
        [REAL_ACTIVITY]
    ).fetch(AUGUST)


def test_a_completions_export_without_output_tokens_is_refused_not_read_as_embeddings(
    tmp_path: Path,
) -> None:
    # It came out as 31,422 tokens of untracked "embeddings" and a false completions alert.
    rows = list(csv.reader(io.StringIO(REAL_ACTIVITY.read_text())))
    drop = rows[0].index("output_tokens")
    path = tmp_path / "completions_usage.csv"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:drop] + r[drop + 1 :] for r in rows])
    path.write_text(out.getvalue())

    with pytest.raises(LogSourceError, match=r"has no output_tokens column"):
        CsvActivitySource([path]).fetch(AUGUST)
