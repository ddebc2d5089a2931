"""End to end, in process: ``recon-job run`` against the fake OpenAI over real HTTP, for what
the report says about prices (issue 9 items 5, 6 and 29).

* a dated snapshot is priced at its own price, not its alias's (item 5);
* unpriced usage carries its tier, in JSON and in the advice (item 6);
* a deployment name with no alias gets the ``[models.aliases]`` line, and its requests are not
  listed both as missing and as extra (item 29).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.e2e import cli, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

D1 = date(2026, 8, 1)
D2 = date(2026, 8, 2)


def gpt4o_world(fake: FakeOpenAI, workdir: Path) -> None:
    """On D1: 6 standard and 4 flex gpt-4o requests, and 38 gpt-4.1 requests logged as prod-41."""
    fake.add_usage(
        D1, "gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=100_000, requests=10
    )
    # Standard: 600k × $2.50 + 60k × $10 = $2.10; flex (OpenAI's price): $0.70.
    fake.add_cost(D1, "gpt-4o-2024-08-06, input", Decimal("2.00"))
    fake.add_cost(D1, "gpt-4o-2024-08-06, output", Decimal("0.80"))
    fake.add_usage(D1, "gpt-4.1-2025-04-14", input_tokens=38_000, output_tokens=3_800, requests=38)
    fake.add_cost(D1, "gpt-4.1-2025-04-14, input", Decimal("0.076"))
    fake.add_cost(D1, "gpt-4.1-2025-04-14, output", Decimal("0.0304"))
    lines = [
        *[rec(D1, "gpt-4o", 9, input_tokens=100_000, output_tokens=10_000) for _ in range(6)],
        *[
            rec(D1, "gpt-4o", 10, input_tokens=100_000, output_tokens=10_000, service_tier="flex")
            for _ in range(4)
        ],
        *[rec(D1, "prod-41", 11, input_tokens=1000, output_tokens=100) for _ in range(38)],
    ]
    write_logs(workdir, lines)


def test_unpriced_usage_carries_its_tier_and_a_deployment_name_gets_its_alias_line(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    gpt4o_world(fake_openai, workdir)

    ran = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--format", "json")

    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["unpriced_models"] == [
        {
            "model": "gpt-4o",
            "service_tier": "flex",
            "requests": 4,
            "input_tokens": 400_000,
            "cached_tokens": 0,
            "output_tokens": 40_000,
        },
        {
            "model": "prod-41",
            "service_tier": "standard",
            "requests": 38,
            "input_tokens": 38_000,
            "cached_tokens": 0,
            "output_tokens": 3_800,
        },
    ]
    gpt4o = next(r for r in doc["breakdown"] if r["model"] == "gpt-4o")
    assert Decimal(gpt4o["local"]["cost"]) == Decimal("2.10")  # the standard part only

    text = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--force").stdout

    assert (
        "No flex price for gpt-4o: that usage's cost is not counted on your side — add flex "
        "rates (flex = { input = …, output = … }) to its entry in your pricing file." in text
    )
    assert (
        "Model prod-41 appears only in your logs and gpt-4.1 only at OpenAI, on the same days "
        "(2026-08-01) — if prod-41 is your deployment name for gpt-4.1, map it in your "
        'settings: [models.aliases] "prod-41" = "gpt-4.1" (that also prices it as gpt-4.1).'
    ) in text
    assert (
        "unpriced: gpt-4o at the flex tier (4 requests, 440,000 tokens) has no price and no "
        "logged cost; its cost is NOT included. To price it, add flex rates "
        "(flex = { input = …, output = … }) to its entry in your pricing file."
    ) in text
    assert (
        "unpriced: prod-41 at the standard tier (38 requests, 41,800 tokens) has no price and "
        "no logged cost; its cost is NOT included. To price it, if it is your deployment name "
        'for gpt-4.1, add "prod-41" = "gpt-4.1" under [models.aliases] in your settings.'
    ) in text
    # Nothing contradicts that: no "add it to your pricing file" for a deployment name, no
    # 38 requests both missing and extra, no "gpt-4o has no price".
    assert "No price for" not in text
    assert "not in your logs" not in text
    assert "more requests in your logs" not in text
    assert "Tokens match but cost differs" not in text

    # The stored run tells the same (a completed period is shown from the history).
    stored = cli(workdir, fake_openai, "run", "--date", D1.isoformat()).stdout
    assert "unpriced: gpt-4o at the flex tier (4 requests, 440,000 tokens)" in stored
    assert '"prod-41" = "gpt-4.1" under [models.aliases]' in stored

    # The line the report gives is the fix: with it, only the flex price is missing.
    config = workdir / "recon.toml"
    config.write_text('[models.aliases]\n"prod-41" = "gpt-4.1"\n', "utf-8")
    fixed = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        D1.isoformat(),
        "--force",
        "--format",
        "json",
        "--config",
        str(config),
    ).doc()
    assert [(u["model"], u["service_tier"]) for u in fixed["unpriced_models"]] == [
        ("gpt-4o", "flex")
    ]
    gpt41 = next(r for r in fixed["breakdown"] if r["model"] == "gpt-4.1")
    assert gpt41["status"] == "reconciled"


def test_a_dated_snapshot_is_priced_at_its_own_price_and_reconciles(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    # 1M input and 100k output on the first GPT-4o snapshot: 5.00 + 1.50, as OpenAI bills it;
    # at gpt-4o's price it would be 2.50 + 1.00 and drift by 46%.
    fake_openai.add_usage(
        D2, "gpt-4o-2024-05-13", input_tokens=1_000_000, output_tokens=100_000, requests=5
    )
    fake_openai.add_cost(D2, "gpt-4o-2024-05-13, input", Decimal("5.00"))
    fake_openai.add_cost(D2, "gpt-4o-2024-05-13, output", Decimal("1.50"))
    write_logs(
        workdir,
        [
            rec(D2, "gpt-4o-2024-05-13", 8, input_tokens=200_000, output_tokens=20_000)
            for _ in range(5)
        ],
    )

    ran = cli(workdir, fake_openai, "run", "--date", D2.isoformat(), "--format", "json")

    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["status"] == "reconciled", doc["breakdown"]
    assert Decimal(doc["local"]["cost"]) == Decimal("6.50")
    assert doc["unpriced_models"] == []
