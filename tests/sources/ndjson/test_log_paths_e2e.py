"""Log paths a run cannot read end the command with exit 2 naming them (issue 9 items 10, 11).

A FIFO named in ``RECON_LOG_PATHS`` used to hang the run forever, ``/dev/zero`` to read for
ever, and a symbolic link loop in a log directory to end in a traceback. Each test carries a
timeout, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e import cli, drifting_world, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401


def _fifo(workdir: Path) -> str:
    path = workdir / "logs" / "pipe.ndjson"
    os.mkfifo(path)
    return str(path)


def _loop(workdir: Path) -> str:
    # ln -s a d/b.ndjson; ln -s b.ndjson d/a
    logs = workdir / "logs"
    (logs / "b.ndjson").symlink_to("a")
    (logs / "a").symlink_to("b.ndjson")
    return str(logs)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("make", "named", "says"),
    [
        (_fifo, "pipe.ndjson", "is a named pipe (FIFO), not a log file"),
        (lambda _: "/dev/zero", "/dev/zero", "is a character device, not a log file"),
        (_loop, "b.ndjson", "is a loop of symbolic links"),
    ],
)
@pytest.mark.parametrize("command", [["check-config"], ["run", "--date", "2026-08-01"]])
def test_an_unreadable_kind_of_log_path_exits_2_naming_it(
    fake_openai: FakeOpenAI,
    workdir: Path,
    make: object,
    named: str,
    says: str,
    command: list[str],
) -> None:
    drifting_world(fake_openai, workdir)
    assert callable(make)
    paths = make(workdir)

    ran = cli(workdir, fake_openai, *command, RECON_LOG_PATHS=paths)

    assert ran.code == 2, ran.stdout + ran.stderr
    assert named in ran.stderr
    assert says in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize("named", ["glob", "directory"])
def test_what_a_glob_or_directory_leaves_out_is_named_in_a_warning(
    fake_openai: FakeOpenAI, workdir: Path, named: str
) -> None:
    # A rotated log whose file is gone, and a pipe, were dropped without a word.
    drifting_world(fake_openai, workdir)
    logs = workdir / "logs"
    (logs / "usage_tracking.ndjson.1").symlink_to("gone.ndjson")
    os.mkfifo(logs / "pipe.ndjson")
    paths = str(logs / "*") if named == "glob" else str(logs)

    ran = cli(workdir, fake_openai, "run", "--date", "2026-08-01", RECON_LOG_PATHS=paths)

    assert ran.code == 0, ran.stdout + ran.stderr
    left_out = [line for line in ran.stderr.splitlines() if "recon.source.ndjson.left_out" in line]
    assert len(left_out) == 2, ran.stderr
    [gone] = [line for line in left_out if "usage_tracking.ndjson.1" in line]
    assert "a link to a file that is gone" in gone
    [pipe] = [line for line in left_out if "pipe.ndjson" in line]
    assert "not a regular file" in pipe
    # check-config lists problems, not warnings: the same paths are fine there.
    assert cli(workdir, fake_openai, "check-config", RECON_LOG_PATHS=paths).code == 0
