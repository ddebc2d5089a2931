"""``recon-job run`` over more than one usage family, in this process: logs of chat traffic only
against an organisation that also bills embeddings (the fake OpenAI, real HTTP on 127.0.0.1)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.e2e import D1, cli, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

ARGS = ("run", "--date", D1.isoformat(), "--force", "--format", "json", "--fail-on-mismatch")


def chat_and_embeddings(fake: FakeOpenAI, workdir: Path) -> None:
    """gpt-4o agrees; OpenAI also bills 1M embedding tokens the logs do not have."""
    fake.add_usage(D1, "gpt-4o-2024-08-06", input_tokens=1000, output_tokens=100, requests=1)
    fake.add_cost(D1, "gpt-4o-2024-08-06, input", Decimal("0.0025"))
    fake.add_cost(D1, "gpt-4o-2024-08-06, output", Decimal("0.001"))
    fake.add_family_usage(
        "embeddings", D1, "text-embedding-3-small", input_tokens=1_000_000, num_model_requests=1
    )
    fake.add_cost(D1, "text-embedding-3-small, input", Decimal("0.02"))
    write_logs(
        workdir,
        [rec(D1, "gpt-4o", 9, prompt_tokens=1000, completion_tokens=100, cost="0.0035")],
    )


def test_an_untracked_family_is_listed_and_does_not_fail_the_run_by_default(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    chat_and_embeddings(fake_openai, workdir)
    ran = cli(workdir, fake_openai, *ARGS)
    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["status"] == "reconciled"
    assert [(r["family"], r["status"]) for r in doc["breakdown"]] == [
        ("completions", "reconciled"),
        ("embeddings", "untracked"),
    ]
    assert doc["untracked"] == [
        {
            "family": "embeddings",
            "input_tokens": 1_000_000,
            "cached_tokens": 0,
            "output_tokens": 0,
            "tokens": 1_000_000,
            "requests": 1,
            "cost": "0.020000",
        }
    ]
    assert doc["openai"]["tokens"] == 1100  # the untracked family stays out of the totals
    text = cli(workdir, fake_openai, *ARGS[:4])
    assert "untracked: OpenAI billed $0.02 of embeddings you do not log" in text.stdout


def test_reconcile_untracked_mismatch_fails_the_run(fake_openai: FakeOpenAI, workdir: Path) -> None:
    chat_and_embeddings(fake_openai, workdir)
    ran = cli(workdir, fake_openai, *ARGS, RECON_RECONCILE__UNTRACKED="mismatch")
    assert ran.code == 1, ran.stderr
    assert ran.doc()["status"] == "mismatch"
    assert ran.doc()["mismatches"] == 0


def test_reconcile_families_leaves_the_others_out(fake_openai: FakeOpenAI, workdir: Path) -> None:
    chat_and_embeddings(fake_openai, workdir)
    ran = cli(
        workdir,
        fake_openai,
        *ARGS,
        RECON_RECONCILE__UNTRACKED="mismatch",
        RECON_RECONCILE__FAMILIES='["completions"]',
    )
    assert ran.code == 0, ran.stderr
    assert [r["family"] for r in ran.doc()["breakdown"]] == ["completions"]
    assert ran.doc()["untracked"] == []
