"""End to end, issue 12's scenarios through ``recon-job run`` and ``recon-job explain``: a real
NDJSON log against the fake OpenAI (real HTTP on 127.0.0.1) serving ``1d``/``1h``/``1m`` usage,
Costs line items with quantities and the Admin API's names.

Each scenario checks that the run's text output says the cause in one line a finance user can
act on, and that ``--format json`` carries the same finding in its ``diagnosis`` object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.e2e import Ran, cli, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, RecordedRequest, fake_openai_fixture  # noqa: F401

SNAPSHOT = "gpt-4o-mini-2024-07-18"
MODEL = "gpt-4o-mini"
#: gpt-4o-mini's prices in the bundled table, per token.
INPUT_PRICE = Decimal("0.15") / 1_000_000
OUTPUT_PRICE = Decimal("0.60") / 1_000_000
#: What one request of these scenarios uses.
IN_TOKENS, OUT_TOKENS = 1000, 200
SUMMER = date(2026, 8, 4)
WINTER = date(2026, 1, 15)
#: Where the text report lists the findings.
DIAGNOSIS = "diagnosis:"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        hours=hour, minutes=minute
    )


def minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += timedelta(minutes=1)


def line(stamp: str, **fields: Any) -> str:
    return json.dumps(
        {
            "timestamp": stamp,
            "model": MODEL,
            "prompt_tokens": IN_TOKENS,
            "completion_tokens": OUT_TOKENS,
            **fields,
        }
    )


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bill(fake: FakeOpenAI, day: date, requests: int) -> None:
    """The Costs line items of ``requests`` requests on ``day`` at the table's prices."""
    fake.add_cost(day, f"{SNAPSHOT}, input", INPUT_PRICE * IN_TOKENS * requests)
    fake.add_cost(day, f"{SNAPSHOT}, output", OUTPUT_PRICE * OUT_TOKENS * requests)


def findings(ran: Ran) -> list[str]:
    """The text report's finding sentences."""
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert DIAGNOSIS in lines, ran.stdout
    out = []
    for text in lines[lines.index(DIAGNOSIS) + 1 :]:
        if not text.startswith("  - "):
            break
        out.append(text[4:])
    return out


def run(workdir: Path, fake: FakeOpenAI, *args: str, **env: str) -> tuple[Ran, dict[str, Any]]:
    """``recon-job run ARGS`` in text, then again in JSON (which reads the cache): both."""
    text = cli(workdir, fake, "run", *args, "--force", **env)
    doc = cli(workdir, fake, "run", *args, "--force", "--format", "json", **env)
    assert doc.code == 0, doc.stderr
    return text, doc.doc()["diagnosis"]


# --- 1. a logging outage ------------------------------------------------------------------


def outage_world(fake: FakeOpenAI, workdir: Path) -> None:
    """One gpt-4o-mini request a minute 08:00-20:00 UTC; the log lacks those of 14:00-15:20."""
    lines = []
    for moment in minutes(at(SUMMER, 8), at(SUMMER, 20)):
        fake.add_usage(
            SUMMER,
            SNAPSHOT,
            input_tokens=IN_TOKENS,
            output_tokens=OUT_TOKENS,
            requests=1,
            at=moment,
        )
        if not at(SUMMER, 14) <= moment < at(SUMMER, 15, 20):
            lines.append(line(utc(moment + timedelta(seconds=12))))
    bill(fake, SUMMER, 720)
    write_logs(workdir, lines)


def test_a_logging_outage_is_located_to_the_minute_with_its_share(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    outage_world(fake_openai, workdir)

    text, diagnosis = run(workdir, fake_openai, "--date", SUMMER.isoformat())

    sentence = findings(text)[0]
    assert sentence.startswith(f"{SUMMER} completions {MODEL}:")
    assert "80 requests" in sentence
    assert "14:00\u201315:20 UTC" in sentence
    assert "100%" in sentence
    assert "logging outage" in sentence
    (group,) = diagnosis["groups"]
    assert group["gaps"] == [
        {
            "start": f"{SUMMER}T14:00:00Z",
            "end": f"{SUMMER}T15:20:00Z",
            "quantity": "requests",
            "difference": "-80",
            "share_pct": "100.000000",
            "resolution": "1m",
        }
    ]
    assert diagnosis["summary"][0] == sentence


# --- 2. Berlin wall times read as UTC -----------------------------------------------------


def berlin_world(fake: FakeOpenAI, workdir: Path, day: date) -> None:
    """Usage late in the UTC day (one request a minute 17:00-24:00, 20 an hour earlier), logged
    in Europe/Berlin naive wall time: read as UTC, part of it falls on the next day."""
    berlin = ZoneInfo("Europe/Berlin")
    lines = []
    for moment in minutes(at(day, 0), at(day, 24)):
        if moment.hour < 17 and moment.minute % 3:
            continue
        fake.add_usage(
            day, SNAPSHOT, input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS, requests=1, at=moment
        )
        wall = moment.astimezone(berlin).replace(tzinfo=None)
        lines.append(line(wall.isoformat()))
    bill(fake, day, len(lines))
    write_logs(workdir, lines)


def test_berlin_wall_times_read_as_utc_are_a_two_hour_shift_in_summer(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    berlin_world(fake_openai, workdir, SUMMER)

    text, diagnosis = run(
        workdir, fake_openai, "--date", SUMMER.isoformat(), RECON_LOGS__TIMEZONE="UTC"
    )

    sentence = findings(text)[0]
    assert sentence.startswith(f"{SUMMER} completions {MODEL}:")
    assert "+2 h" in sentence
    assert "logs.timezone" in sentence
    assert "Europe/Berlin" in sentence
    (group,) = diagnosis["groups"]
    assert (group["shift_hours"], group["gaps"]) == (2, [])
    assert diagnosis["summary"][0] == sentence


def test_berlin_wall_times_read_as_utc_are_a_one_hour_shift_in_winter(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    berlin_world(fake_openai, workdir, WINTER)

    text, diagnosis = run(
        workdir, fake_openai, "--date", WINTER.isoformat(), RECON_LOGS__TIMEZONE="UTC"
    )

    sentence = findings(text)[0]
    assert "+1 h" in sentence
    assert "logs.timezone" in sentence
    assert "Europe/Berlin" in sentence
    (group,) = diagnosis["groups"]
    assert group["shift_hours"] == 1


# --- 3. a price change --------------------------------------------------------------------

PRICE_START = date(2026, 9, 1)
PRICE_DAYS = 14
#: OpenAI bills gpt-4o-mini input at $0.18/1M from the 10th day on; the table says $0.15.
NEW_INPUT_PRICE = Decimal("0.18") / 1_000_000
PRICE_CHANGED = date(2026, 9, 10)


def price_world(fake: FakeOpenAI, workdir: Path) -> None:
    """Ten requests a day of 100,000 input and 20,000 output tokens, in both sides; billed with
    their quantities, input at the new price from :data:`PRICE_CHANGED`."""
    lines = []
    for offset in range(PRICE_DAYS):
        day = PRICE_START + timedelta(days=offset)
        price = NEW_INPUT_PRICE if day >= PRICE_CHANGED else INPUT_PRICE
        fake.add_usage(
            day, SNAPSHOT, input_tokens=1_000_000, output_tokens=200_000, requests=10, at=at(day, 9)
        )
        fake.add_cost(
            day, f"{SNAPSHOT}, input", price * 1_000_000, quantity=1_000_000, quantity_unit="tokens"
        )
        fake.add_cost(
            day,
            f"{SNAPSHOT}, output",
            OUTPUT_PRICE * 200_000,
            quantity=200_000,
            quantity_unit="tokens",
        )
        lines += [
            line(utc(at(day, 9, n)), prompt_tokens=100_000, completion_tokens=20_000)
            for n in range(10)
        ]
    write_logs(workdir, lines)


def test_a_price_change_is_a_stale_price_finding_with_its_date_and_both_prices(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    price_world(fake_openai, workdir)
    last = PRICE_START + timedelta(days=PRICE_DAYS - 1)

    text, diagnosis = run(
        workdir, fake_openai, "--start", PRICE_START.isoformat(), "--end", last.isoformat()
    )

    sentence = f"OpenAI bills {MODEL} input at $0.18/1M since {PRICE_CHANGED}; your table: $0.15"
    assert [s for s in findings(text) if "bills" in s] == [sentence]
    assert sentence in diagnosis["summary"]
    assert diagnosis["price_findings"] == [
        {
            "model": MODEL,
            "piece": "input",
            "tier": "standard",
            "billed": "0.180000",
            "table": "0.150000",
            "unit": "1M tokens",
            "since": PRICE_CHANGED.isoformat(),
            "last_day": last.isoformat(),
        }
    ]


# --- 4. an API key the logs never mention -------------------------------------------------


def shadow_world(fake: FakeOpenAI, workdir: Path) -> None:
    """key_app: 90 requests 10:00-11:30, all logged; key_ci (named 'ci-bot'): 10 requests at
    03:00 that OpenAI counts and no log mentions, in the same project."""
    requests = [("key_app", at(SUMMER, 10, n)) for n in range(90)]
    requests += [("key_ci", at(SUMMER, 3, n)) for n in range(10)]
    for key, moment in requests:
        fake.add_usage(
            SUMMER,
            SNAPSHOT,
            input_tokens=IN_TOKENS,
            output_tokens=OUT_TOKENS,
            requests=1,
            project_id="proj_main",
            api_key_id=key,
            at=moment,
        )
    for key, count in (("key_app", 90), ("key_ci", 10)):
        for piece, price, tokens in (
            ("input", INPUT_PRICE, IN_TOKENS),
            ("output", OUTPUT_PRICE, OUT_TOKENS),
        ):
            fake.add_cost(
                SUMMER,
                f"{SNAPSHOT}, {piece}",
                price * tokens * count,
                project_id="proj_main",
                api_key_id=key,
            )
    fake.add_project("proj_main", "Main app")
    fake.add_api_key("proj_main", "key_app", "app server")
    fake.add_api_key("proj_main", "key_ci", "ci-bot")
    write_logs(
        workdir, [line(utc(moment), api_key_id=key) for key, moment in requests if key == "key_app"]
    )


def test_an_api_key_the_logs_never_mention_is_shadow_usage_with_its_share_and_name(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    shadow_world(fake_openai, workdir)

    text, diagnosis = run(
        workdir,
        fake_openai,
        "--date",
        SUMMER.isoformat(),
        RECON_OPENAI__GROUP_BY='["model", "api_key_id"]',
    )

    (sentence,) = [s for s in findings(text) if "never mention" in s]
    assert "key_ci" in sentence
    assert "ci-bot" in sentence
    assert "10%" in sentence
    assert "$0.0027" in sentence
    assert diagnosis["shadow"] == [
        {
            "kind": "api_key",
            "id": "key_ci",
            "name": "ci-bot",
            "tokens": 12_000,
            "requests": 10,
            "cost": "0.002700",
            "token_share_pct": "10.000000",
            "cost_share_pct": "10.000000",
        }
    ]


# --- 5. the extra-request budget ----------------------------------------------------------

#: A second day with a smaller gap than the outage day's.
NEXT_DAY = SUMMER + timedelta(days=1)


def two_drifting_days(fake: FakeOpenAI, workdir: Path) -> None:
    """The outage day, then a day where the log misses 10 of 100 requests at 09:00."""
    outage_world(fake, workdir)
    for n in range(100):
        fake.add_usage(
            NEXT_DAY,
            SNAPSHOT,
            input_tokens=IN_TOKENS,
            output_tokens=OUT_TOKENS,
            requests=1,
            at=at(NEXT_DAY, 9, n % 60),
        )
    bill(fake, NEXT_DAY, 100)
    log = workdir / "logs" / "usage_tracking.ndjson"
    extra = [line(utc(at(NEXT_DAY, 9, n % 60))) for n in range(90)]
    log.write_text(log.read_text("utf-8") + "\n".join(extra) + "\n", "utf-8")


def extra_requests(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """The diagnosis's requests: hourly or minute buckets, per-id scope, Admin API names."""
    return [
        r
        for r in requests
        if r.param("bucket_width") in ("1h", "1m")
        or {"project_id", "api_key_id", "user_id"} & set(r.query.get("group_by[]", []))
        or "/organization/projects" in r.path
    ]


def test_the_extra_request_budget_is_never_exceeded_and_the_rest_is_skipped(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    two_drifting_days(fake_openai, workdir)
    span = ("--start", SUMMER.isoformat(), "--end", NEXT_DAY.isoformat(), "--format", "json")
    plain = cli(workdir, fake_openai, "run", *span, "--force", RECON_DIAGNOSIS__ENABLED="false")
    assert plain.code == 0, plain.stderr
    own = len(fake_openai.requests)
    assert extra_requests(fake_openai.requests) == []

    for budget in (0, 1):
        before = len(fake_openai.requests)
        ran = cli(
            workdir,
            fake_openai,
            "run",
            *span,
            "--force",
            RECON_DIAGNOSIS__MAX_REQUESTS=str(budget),
        )
        assert ran.code == 0, ran.stderr
        diagnosis = ran.doc()["diagnosis"]
        made = fake_openai.requests[before:]
        extra = len(made) - own
        assert extra == len(extra_requests(made)) == diagnosis["requests_used"] <= budget
        groups = {g["group"]["day"]: g for g in diagnosis["groups"]}
        assert groups[NEXT_DAY.isoformat()]["skipped"] == "budget"
        if budget == 0:
            assert groups[SUMMER.isoformat()]["skipped"] == "budget"
        else:
            # One hourly request locates the outage day to the hour; no minute request is left.
            (gap,) = groups[SUMMER.isoformat()]["gaps"]
            assert (gap["start"], gap["end"], gap["resolution"]) == (
                f"{SUMMER}T14:00:00Z",
                f"{SUMMER}T16:00:00Z",
                "1h",
            )


def test_a_rerun_of_the_same_window_asks_openai_for_no_series_again(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    two_drifting_days(fake_openai, workdir)
    span = ("--start", SUMMER.isoformat(), "--end", NEXT_DAY.isoformat(), "--format", "json")

    first = cli(workdir, fake_openai, "run", *span, "--force")
    fetched = len(fake_openai.requests)
    again = cli(workdir, fake_openai, "run", *span, "--force")

    assert first.code == again.code == 0, again.stderr
    series = [r for r in fake_openai.requests if r.param("bucket_width") in ("1h", "1m")]
    assert series
    assert all(fake_openai.requests.index(r) < fetched for r in series)
    assert again.doc()["diagnosis"]["groups"] == first.doc()["diagnosis"]["groups"]
    assert [g["gaps"][0]["resolution"] for g in first.doc()["diagnosis"]["groups"]] == [
        "1m",
        "1m",
    ]


# --- 6. recon-job explain -----------------------------------------------------------------


def test_explain_prints_the_findings_of_a_stored_window(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    outage_world(fake_openai, workdir)
    text, diagnosis = run(workdir, fake_openai, "--date", SUMMER.isoformat())

    explained = cli(workdir, fake_openai, "explain", "--date", SUMMER.isoformat())
    as_json = cli(
        workdir,
        fake_openai,
        "explain",
        "--date",
        SUMMER.isoformat(),
        "--model",
        MODEL,
        "--format",
        "json",
    )

    assert explained.code == 0, explained.stderr
    assert findings(explained) == findings(text)
    assert as_json.code == 0, as_json.stderr
    doc = as_json.doc()
    assert (doc["window"], doc["model"]) == (f"daily:{SUMMER}", MODEL)
    assert doc["diagnosis"]["summary"] == diagnosis["summary"]
    assert doc["diagnosis"]["groups"] == diagnosis["groups"]


def test_explain_of_a_window_never_run_says_how_to_run_it(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    outage_world(fake_openai, workdir)
    cli(workdir, fake_openai, "run", "--date", SUMMER.isoformat(), "--force")
    other = SUMMER - timedelta(days=3)

    ran = cli(workdir, fake_openai, "explain", "--date", other.isoformat())

    assert ran.code == 2
    assert "Traceback" not in ran.stdout + ran.stderr
    assert f"recon-job run --date {other}" in ran.stderr


def test_explain_of_a_model_the_run_never_saw_lists_the_models_it_has(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    outage_world(fake_openai, workdir)
    cli(workdir, fake_openai, "run", "--date", SUMMER.isoformat(), "--force")

    ran = cli(workdir, fake_openai, "explain", "--date", SUMMER.isoformat(), "--model", "gpt-9")

    assert ran.code == 2
    assert "Traceback" not in ran.stdout + ran.stderr
    assert "gpt-9" in ran.stderr
    assert MODEL in ran.stderr
    assert "its families: completions" in ran.stderr
    # A family that does not exist said "no group of any model in bogus; its models: ...".
    bogus = cli(workdir, fake_openai, "explain", "--date", SUMMER.isoformat(), "--family", "bogus")
    assert bogus.code == 2
    assert "'bogus' is not one of 'completions', 'embeddings'" in bogus.stderr


def test_explain_says_which_groups_it_could_not_locate_and_why(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    outage_world(fake_openai, workdir)
    # No extra request allowed, ever: nothing is fetched, so nothing is in the series cache.
    cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        SUMMER.isoformat(),
        "--force",
        RECON_DIAGNOSIS__MAX_REQUESTS="0",
    )

    ran = cli(
        workdir,
        fake_openai,
        "explain",
        "--date",
        SUMMER.isoformat(),
        RECON_DIAGNOSIS__MAX_REQUESTS="0",
    )

    assert ran.code == 0, ran.stderr
    assert "not located: 1 group over diagnosis.max_requests" in ran.stdout
