"""The run's JSON and text over several usage families (issue 10 item 7): each breakdown row
names its family and carries that family's quantities, totals add dollars across families and
tokens only across token families, untracked and unavailable families are listed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from recon_job.compare import reconcile
from recon_job.models import RunOutcome, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.report.history import run_detail_dict, run_detail_text, run_summary
from recon_job.report.run import SCHEMA_VERSION, outcome_dict, render_text
from recon_job.store import HistoryStore

DAY = date(2026, 8, 1)
WINDOW = Window("daily", DAY, date(2026, 8, 2))
AT = datetime(2026, 8, 3, tzinfo=UTC)
D = Decimal

CHAT = UsageKey(DAY, "gpt-4o")
EMBED = UsageKey(DAY, "text-embedding-3-small", family="embeddings")
IMAGES = UsageKey(DAY, "gpt-image-1", family="images")
SPEECH = UsageKey(DAY, "tts-1", family="audio_speeches")
SEARCH = UsageKey(DAY, "web-search", family="web_search_calls")


def outcome() -> RunOutcome:
    chat = Usage(1000, 300, 500, 5, D("0.007125"), input_audio_tokens=50, output_audio_tokens=60)
    embed = Usage(input_tokens=1_000_000, requests=1, cost=D("0.02"))
    local = UsageTotals(
        groups={
            CHAT: chat,
            EMBED: embed,
            # gpt-image-1's response logs text tokens too: not tokens of the token families.
            IMAGES: Usage(input_tokens=40, images=3, requests=2, cost=D("0.12")),
            SEARCH: Usage(calls=9, requests=6, cost=D("0.09")),
        }
    )
    official = UsageTotals(
        groups={
            CHAT: chat,
            EMBED: embed,
            IMAGES: Usage(images=5, requests=2, cost=D("0.20")),
            SPEECH: Usage(characters=826_667, requests=40, cost=D("12.40")),
            SEARCH: Usage(cost=D("0.09")),
        },
        unavailable_families=("web_search_calls",),
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    return RunOutcome(3, WINDOW, started_at=AT, finished_at=AT, result=result)


def test_breakdown_rows_carry_their_family_and_its_quantities() -> None:
    doc = outcome_dict(outcome())
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    rows = {row["family"]: row for row in doc["breakdown"]}
    assert list(rows) == [
        "completions",
        "embeddings",
        "images",
        "audio_speeches",
        "web_search_calls",
    ]
    chat = rows["completions"]
    assert chat["local"]["input_audio_tokens"] == 50
    assert chat["local"]["output_audio_tokens"] == 60
    assert chat["local"]["cache_write_tokens"] == 0  # a completions quantity: always there
    assert "images" not in chat["local"]
    images = rows["images"]
    assert images["status"] == "mismatch"
    assert images["local"] == {
        "input_tokens": 40,
        "cached_tokens": 0,
        "output_tokens": 0,
        "tokens": 40,
        "requests": 2,
        "cost": "0.120000",
        "images": 3,
    }
    assert images["openai"]["images"] == 5
    assert images["difference"]["images"] == -2
    assert images["difference"]["images_pct"] == "-40.000000"
    assert images["difference"]["exceeds"] == ["cost", "images"]
    assert images["difference"]["deciding"] == ["images", "requests", "cost"]
    assert "characters" not in images["local"]
    assert rows["audio_speeches"]["status"] == "untracked"
    assert rows["audio_speeches"]["openai"]["characters"] == 826_667
    search = rows["web_search_calls"]
    assert search["status"] == "reconciled"  # OpenAI could not count the calls: cost decides
    assert search["difference"]["deciding"] == ["cost"]
    assert (search["local"]["calls"], search["openai"]["calls"]) == (9, 0)


def test_totals_add_dollars_across_families_and_tokens_only_across_token_families() -> None:
    doc = outcome_dict(outcome())
    # Untracked speech stays out; web search adds its dollars only.
    assert doc["local"]["cost"] == "0.237125"
    assert doc["openai"]["cost"] == "0.317125"
    assert doc["local"]["tokens"] == doc["openai"]["tokens"] == 1_001_500
    assert (doc["local"]["images"], doc["openai"]["images"]) == (3, 5)
    assert "calls" not in doc["local"]
    assert doc["untracked"] == [
        {
            "family": "audio_speeches",
            "input_tokens": 0,
            "cached_tokens": 0,
            "output_tokens": 0,
            "tokens": 0,
            "requests": 40,
            "cost": "12.400000",
            "characters": 826_667,
        }
    ]
    assert doc["unavailable_families"] == ["web_search_calls"]
    # Every field of before is still there.
    for name in ("status", "reconciled", "breakdown", "unpriced_models", "skipped", "sources"):
        assert name in doc


def test_the_text_report_groups_drift_by_family_and_names_untracked_dollars() -> None:
    text = render_text(outcome())
    assert "untracked: OpenAI billed $12.40 of audio_speeches you do not log " in text
    assert "(826,667 characters, 40 requests)" in text
    assert "unavailable: web_search_calls" in text
    assert "compared by cost only" in text
    # Neither the untracked nor the uncounted family is blamed for the drift of the others.
    assert "likely causes" not in text
    assert "web-search appears only" not in text
    assert "more requests in your logs" not in text
    table = text.split("out of tolerance:\n", 1)[1].splitlines()
    assert table[0].split()[:4] == ["images", "images", "local", "OpenAI"]
    assert table[1].split()[:5] == ["2026-08-01", "gpt-image-1", "3", "5", "-40.00%"]
    # The totals name the other families' quantities.
    assert any(line.split()[:3] == ["images", "3", "5"] for line in text.splitlines())


def test_families_are_listed_completions_first_with_a_header_each() -> None:
    chat_off = Usage(1000, 0, 100, 2, D("1.00"))
    local = UsageTotals(
        groups={
            IMAGES: Usage(images=1, requests=1, cost=D("0.04")),
            CHAT: Usage(5000, 0, 100, 9, D("3.00")),
        }
    )
    official = UsageTotals(
        groups={IMAGES: Usage(images=4, requests=1, cost=D("0.16")), CHAT: chat_off}
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    text = render_text(RunOutcome(4, WINDOW, started_at=AT, finished_at=AT, result=result))
    table = text.split("out of tolerance:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    headers = [line.split()[0] for line in table if not line.startswith("    ")]
    assert headers == ["completions", "images"]
    assert table[0].split()[1:3] == ["tokens", "local"]


def test_a_window_failed_by_an_untracked_family_says_so() -> None:
    from recon_job.compare import Rules

    local = UsageTotals(groups={CHAT: Usage(10, 0, 1, 1, D("1"))})
    official = UsageTotals(
        groups={CHAT: Usage(10, 0, 1, 1, D("1")), SPEECH: Usage(characters=9, cost=D("2"))}
    )
    result = reconcile(
        local, official, window=WINDOW, tolerance=Tolerance(), rules=Rules(untracked="mismatch")
    )
    text = render_text(RunOutcome(5, WINDOW, started_at=AT, finished_at=AT, result=result))
    assert "status: mismatch" in text
    assert (
        "families billed that you do not log: audio_speeches (reconcile.untracked = mismatch)"
        in text
    )


def test_a_stored_run_reads_back_with_its_families(tmp_path: Path) -> None:
    made = outcome()
    assert made.result is not None
    with HistoryStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        run_id = store.start_run(WINDOW, started_at=AT, trigger="test")
        store.finish_run(run_id, made.result, finished_at=AT)
        run = store.get_run(run_id)
        groups = store.run_groups(run_id)
        stored = store.stored_result(run_id)
    assert run is not None
    assert stored is not None

    # run --date of a completed period: the same document as the run printed.
    again = RunOutcome(run_id, WINDOW, started_at=AT, finished_at=AT, result=stored)
    first = replace(made, run_id=run_id)
    assert outcome_dict(again, from_history=True) == {
        **outcome_dict(first),
        "from_history": True,
    }
    assert render_text(again) == render_text(first)

    # history --run ID: every group with its family and quantities, the families listed apart.
    detail = run_detail_dict(run, groups)
    rows = {row["family"]: row for row in detail["breakdown"]}
    assert rows["images"]["openai"]["images"] == 5
    assert rows["completions"]["local"]["input_audio_tokens"] == 50
    assert rows["audio_speeches"]["status"] == "untracked"
    assert detail["untracked"][0]["family"] == "audio_speeches"
    assert detail["untracked"][0]["characters"] == 826_667
    assert detail["unavailable_families"] == ["web_search_calls"]
    assert run_summary(run).endswith(", untracked: audio_speeches ($12.40)")
    text = run_detail_text(run, groups)
    assert "2026-08-01 images gpt-image-1" in text
    assert "untracked: OpenAI billed $12.40 of audio_speeches you do not log" in text
    assert "unavailable: web_search_calls" in text
