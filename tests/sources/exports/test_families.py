"""Issue 10 item 4: the Activity export of every family tab, told by its header, and the Cost
export's line items mapped to families the way the Costs API's are."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from recon_job.models import Usage, UsageKey, Window
from recon_job.sources.exports.source import CsvActivitySource, CsvCostSource
from recon_job.sources.openai.lineitems import LineItemRules

DAY = date(2026, 8, 31)
WINDOW = Window("daily", DAY, date(2026, 9, 1))
TIMES = "1788134400,1788220800,2026-08-31T00:00:00+00:00,2026-09-01T00:00:00+00:00"
HEAD = "start_time,end_time,start_time_iso,end_time_iso"

# (header after the time columns, one data row, expected group key, expected usage)
TABS: list[tuple[str, str, UsageKey, Usage]] = [
    (
        "project_id,num_model_requests,model,input_tokens",
        "proj_1,3.0,text-embedding-3-small-2024-01-25,900.0",
        UsageKey(DAY, "text-embedding-3-small-2024-01-25", family="embeddings"),
        Usage(input_tokens=900, requests=3),
    ),
    (
        "project_id,num_model_requests,model,input_tokens",
        "proj_1,2.0,omni-moderation-2024-09-26,40.0",
        UsageKey(DAY, "omni-moderation-2024-09-26", family="moderations"),
        Usage(input_tokens=40, requests=2),
    ),
    (
        "project_id,num_model_requests,model,images,size,source",
        "proj_1,2.0,dall-e-3,4.0,1024x1024,image.generation",
        UsageKey(DAY, "dall-e-3", family="images"),
        Usage(images=4, requests=2),
    ),
    (
        "project_id,num_model_requests,model,characters",
        "proj_1,5.0,tts-1,12000.0",
        UsageKey(DAY, "tts-1", family="audio_speeches"),
        Usage(characters=12000, requests=5),
    ),
    (
        "project_id,num_model_requests,model,seconds",
        "proj_1,5.0,whisper-1,600.0",
        UsageKey(DAY, "whisper-1", family="audio_transcriptions"),
        Usage(seconds=600, requests=5),
    ),
    (
        "project_id,usage_bytes",
        "proj_1,5000000.0",
        UsageKey(DAY, "vector-storage", family="vector_stores"),
        Usage(usage_bytes=5_000_000),
    ),
    (
        "project_id,num_sessions",
        "proj_1,7.0",
        UsageKey(DAY, "code-interpreter", family="code_interpreter_sessions"),
        Usage(sessions=7),
    ),
    (
        "project_id,user_id,api_key_id,vector_store_id,num_requests",
        "proj_1,,key_1,vs_1,9.0",
        UsageKey(DAY, "file-search", family="file_search_calls"),
        Usage(calls=9),
    ),
    (
        "project_id,num_model_requests,model,context_level,num_requests",
        "proj_1,4.0,gpt-4o-search-preview,medium,6.0",
        UsageKey(DAY, "gpt-4o-search-preview", family="web_search_calls"),
        Usage(calls=6, requests=4),
    ),
]


@pytest.mark.parametrize(("header", "row", "key", "usage"), TABS, ids=lambda v: str(v)[:30])
def test_the_activity_export_of_each_family_tab_is_told_by_its_header(
    tmp_path: Path, header: str, row: str, key: UsageKey, usage: Usage
) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{HEAD},{header}\n{TIMES},{row}\n")

    totals = CsvActivitySource([path]).fetch(WINDOW)

    assert totals.groups == {key: usage}


def test_a_family_tab_missing_its_quantity_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{HEAD},project_id,num_model_requests,model,size\n")

    with pytest.raises(Exception, match="has no images column") as caught:
        CsvActivitySource([path]).fetch(WINDOW)
    assert type(caught.value).__name__ == "LogSourceError"


def test_the_cost_exports_line_items_are_mapped_to_families_like_the_costs_apis(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cost.csv"
    path.write_text(
        f"{HEAD},amount_value,amount_currency,line_item\n"
        f'{TIMES},0.5,usd,"text-embedding-3-small, input"\n'
        f'{TIMES},0.25,usd,"whisper-1, audio"\n'
        f"{TIMES},0.125,usd,Vector storage\n"
        f"{TIMES},1.5,usd,web search tool calls\n"
        f'{TIMES},2,usd,"gpt-4o-2024-08-06, input"\n'
        f"{TIMES},0.01,usd,Mystery fee\n"
        f"{TIMES},0.02,usd,Custom thing 7\n"
    )

    totals = CsvCostSource(
        [path], line_items=LineItemRules.compile({r"^custom thing": "web_search_calls"})
    ).fetch(WINDOW)

    by_key = {(k.family, k.model): u.cost for k, u in totals.groups.items()}
    assert by_key == {
        ("embeddings", "text-embedding-3-small"): Decimal("0.5"),
        ("audio_transcriptions", "whisper-1"): Decimal("0.25"),
        ("vector_stores", "vector-storage"): Decimal("0.125"),
        ("web_search_calls", "web-search"): Decimal("1.52"),
        ("completions", "gpt-4o-2024-08-06"): Decimal("2"),
        # Nothing is dropped: what no rule maps is family ``other`` with its text.
        ("other", "Mystery fee"): Decimal("0.01"),
    }
    assert totals.info["csv_cost_unparsed_line_items"] == 1
