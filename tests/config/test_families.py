"""``openai.families`` (``RECON_FAMILIES``) and ``[families.line_items]``: parsed, and every bad
value reported by ``check-config`` at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_job.config import load_settings, read_settings
from recon_job.errors import ConfigError
from recon_job.families import FAMILIES
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401


def families(**env: str) -> tuple[str, ...]:
    return load_settings(environ=env).openai.families


def test_every_family_is_fetched_by_default() -> None:
    assert families() == FAMILIES


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", FAMILIES),
        ("ALL", FAMILIES),
        ("completions", ("completions",)),
        # Report order, whatever order they are written in; spaces, case and repeats ignored.
        (" Web_Search_Calls , embeddings,embeddings,", ("embeddings", "web_search_calls")),
        ("embeddings,all", FAMILIES),
    ],
)
def test_recon_families_is_a_comma_list_or_all(value: str, expected: tuple[str, ...]) -> None:
    assert families(RECON_FAMILIES=value) == expected


def test_the_file_and_the_generic_variable_take_a_list_too(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text('[openai]\nfamilies = ["images", "completions"]\n', encoding="utf-8")
    assert load_settings(path, environ={}).openai.families == ("completions", "images")
    generic = {"RECON_OPENAI__FAMILIES": '["audio_speeches"]'}
    assert load_settings(environ=generic).openai.families == ("audio_speeches",)


def test_recon_families_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text('[openai]\nfamilies = ["images"]\n', encoding="utf-8")
    settings = load_settings(path, environ={"RECON_FAMILIES": "moderations"})
    assert settings.openai.families == ("moderations",)


def test_unknown_family_names_are_all_named_with_the_known_ones() -> None:
    loaded = read_settings(environ={"RECON_FAMILIES": "completion,embedings,images"})
    assert loaded.settings is None
    (problem,) = loaded.problems
    assert problem.startswith("openai.families: unknown families completion, embedings; known: ")
    assert "completions, embeddings, moderations" in problem
    assert "(or all)" in problem


def test_a_list_without_any_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"openai\.families: no family named"):
        load_settings(environ={"RECON_FAMILIES": " , "})


def test_recon_families_is_not_mistaken_for_the_families_section() -> None:
    # RECON_<SECTION> variables hold a section as JSON; RECON_FAMILIES is documented as the list.
    settings = load_settings(
        environ={
            "RECON_FAMILIES": "completions",
            "RECON_FAMILIES__LINE_ITEMS": '{"^Text tokens$": "completions"}',
        }
    )
    assert settings.openai.families == ("completions",)
    assert settings.families.line_items == {"^Text tokens$": "completions"}


def test_line_item_patterns_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text(
        '[families.line_items]\n"^sora" = "images"\n"video" = "other"\n"^Text" = "completions"\n',
        encoding="utf-8",
    )
    patterns = load_settings(path, environ={}).families.line_items
    assert list(patterns.items()) == [
        ("^sora", "images"),
        ("video", "other"),
        ("^Text", "completions"),
    ]


def test_check_config_lists_every_bad_family_and_pattern_at_once(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    (workdir / "logs" / "usage.ndjson").write_text("", encoding="utf-8")
    config = workdir / "recon.toml"
    config.write_text(
        "[families.line_items]\n"
        '"(unclosed" = "images"\n'
        '"^Text tokens$" = "completion"\n'
        '"^fine" = "completions"\n',
        encoding="utf-8",
    )
    ran = cli(workdir, fake_openai, "check-config", "--config", str(config), RECON_FAMILIES="x")

    assert ran.code == 2
    lines = [line.strip() for line in ran.stderr.splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 3, ran.stderr
    assert lines[0].startswith("- openai.families: unknown family x; known: completions")
    assert "- families.line_items.(unclosed: '(unclosed' is not a regular expression" in lines[1]
    assert lines[2].startswith(
        "- families.line_items.^Text tokens$: '^Text tokens$' maps to unknown family "
        "'completion'; known: completions, embeddings"
    )
    assert lines[2].endswith("web_search_calls, other")


def test_reconcile_rules_default_to_reporting_untracked_families_and_comparing_every_one() -> None:
    reconcile = load_settings(environ={}).reconcile
    assert reconcile.untracked == "report"
    assert reconcile.families is None


def test_reconcile_rules_come_from_the_file_and_the_generic_variables(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text(
        '[reconcile]\nuntracked = "mismatch"\nfamilies = ["images", "completions"]\n',
        encoding="utf-8",
    )
    reconcile = load_settings(path, environ={}).reconcile
    assert (reconcile.untracked, reconcile.families) == ("mismatch", ("completions", "images"))
    env = {"RECON_RECONCILE__UNTRACKED": "mismatch", "RECON_RECONCILE__FAMILIES": '["all"]'}
    reconcile = load_settings(environ=env).reconcile
    assert (reconcile.untracked, reconcile.families) == ("mismatch", FAMILIES)


def test_bad_reconcile_rules_are_all_reported_at_once() -> None:
    loaded = read_settings(
        environ={
            "RECON_RECONCILE__UNTRACKED": "ignore",
            "RECON_RECONCILE__FAMILIES": '["completion"]',
        }
    )
    assert loaded.settings is None
    problems = "\n".join(loaded.problems)
    assert "reconcile.untracked" in problems
    assert "'report' or 'mismatch'" in problems
    assert "reconcile.families: unknown family completion; known: completions" in problems


def test_a_compared_family_that_is_never_fetched_is_refused() -> None:
    loaded = read_settings(
        environ={"RECON_FAMILIES": "completions", "RECON_RECONCILE__FAMILIES": '["images"]'}
    )
    assert loaded.settings is None
    (problem,) = loaded.problems
    assert problem == (
        "reconcile.families: lists images, which openai.families does not fetch "
        "(fetched: completions)"
    )


def test_the_rules_reach_the_comparison() -> None:
    from recon_job import wiring
    from recon_job.compare import Rules

    settings = load_settings(
        environ={
            "RECON_RECONCILE__UNTRACKED": "mismatch",
            "RECON_RECONCILE__FAMILIES": '["images"]',
        }
    )
    assert wiring.rules(settings) == Rules(untracked="mismatch", families=frozenset({"images"}))


def test_check_config_says_which_families_are_compared_and_what_untracked_ones_do() -> None:
    from recon_job.config.checks import describe

    default = describe(load_settings(environ={}))
    assert "  families:  compared: every one fetched; untracked ones: report" in default
    chosen = describe(
        load_settings(
            environ={
                "RECON_RECONCILE__FAMILIES": '["images", "completions"]',
                "RECON_RECONCILE__UNTRACKED": "mismatch",
            }
        )
    )
    assert "  families:  compared: completions, images; untracked ones: mismatch" in chosen
