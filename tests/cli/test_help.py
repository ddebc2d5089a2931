"""``--help`` reads as plain text: whole summaries, every option explained (issue 9 item 31).

Docstrings of click commands are shown to users as they are: reStructuredText markup such as
````skipped: locked```` or ``:func:`` must not leak into them, and the command list of
``recon-job --help`` must not cut a summary short.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from recon_job.cli.main import main

MARKUP = re.compile(r"``|:(?:func|class|mod|meth|data|attr):`")


def every_command() -> Iterator[tuple[list[str], click.Command]]:
    """Each command and subcommand with the words that call it."""

    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name])

    yield from walk(main, [])


COMMANDS = [
    pytest.param(path, command, id=" ".join(path) or "main") for path, command in every_command()
]


def help_of(path: list[str]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS)
def test_every_option_has_help_and_no_help_shows_markup(
    path: list[str], command: click.Command
) -> None:
    undocumented = [
        p.name
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]

    assert undocumented == [], f"recon-job {' '.join(path)}: options without help"
    assert not MARKUP.search(help_of(path)), help_of(path)


def test_run_help_names_the_skipped_states_as_plain_words() -> None:
    text = " ".join(help_of(["run"]).split())

    assert "(skipped: locked)" in text
    assert "``" not in text


def test_the_command_list_shows_each_whole_first_line() -> None:
    text = " ".join(help_of([]).split())

    for name in ("run", "history", "check-config", "alerts", "reconcile-requests", "daemon"):
        command = main.get_command(click.Context(main), name)
        assert command is not None
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert f"{name} {first}" in text, name
        assert "..." not in first


def test_every_command_group_lists_each_whole_first_line() -> None:
    groups = [(p, c) for p, c in every_command() if isinstance(c, click.Group)]
    assert [p for p, _ in groups] == [[], ["history"], ["alerts"], ["prices"], ["cache"]]

    for path, group in groups:
        text = " ".join(help_of(path).split())
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            first = " ".join((command.help or "").split("\n\n")[0].split())
            assert f"{name} {first}" in text, (path, name)
            assert "..." not in first


@pytest.mark.parametrize(
    ("path", "option"),
    [
        (["history"], "--limit"),
        (["alerts", "list"], "--limit"),
        (["reconcile-requests"], "--batch-size"),
    ],
)
def test_limit_and_batch_size_say_what_they_do(path: list[str], option: str) -> None:
    text = help_of(path)
    line = next(line for line in text.splitlines() if line.strip().startswith(option))

    assert len(line.split()) > 3, line  # the option, its metavar and words of help
