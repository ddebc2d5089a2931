"""Reading the raw inputs (recon_job.config.load): files that are not regular files or not UTF-8.

Issue 9 items 11 and 13: a FIFO or a device named by a ``*_FILE`` variable (or as the config or
price file) used to hang forever or read without end; bytes that are not UTF-8 in the TOML file
or a secret file were a ``UnicodeDecodeError`` traceback. Each is now one problem line, exit 2,
and a secret's bytes are never shown.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from recon_job.config import load_settings
from recon_job.config.load import MAX_FILE_BYTES, UnusableFile, read_bytes, read_text
from recon_job.errors import ConfigError
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

#: Bytes of a secret that is not UTF-8: 0xff cannot start a UTF-8 sequence.
SECRET_BYTES = b"sk-admin-\xffSECRETTAIL\xfe"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def load_problems(environ: dict[str, str], config: Path | None = None) -> list[str]:
    """The problems of loading these settings, which must fail within a few seconds."""
    found: list[list[str]] = []

    def load() -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(config, environ=environ)
        found.append(info.value.problems)

    # A thread, so a hang fails the test instead of blocking the suite.
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "loading the settings hangs"
    assert found, "loading the settings raised something else than ConfigError"
    return found[0]


@pytest.mark.parametrize("variable", ["OPENAI_ADMIN_KEY_FILE", "RECON_DATABASE_URL_FILE"])
def test_a_fifo_named_by_a_file_variable_is_refused_without_waiting_for_a_writer(
    fifo: Path, variable: str
) -> None:
    problems = load_problems({variable: str(fifo)})

    assert problems == [
        f"{variable}: cannot read {str(fifo)!r} (it is a FIFO (named pipe), not a regular "
        "file); point it at a regular file holding the value as UTF-8 text"
    ]


def test_dev_zero_named_by_a_file_variable_is_refused_before_reading() -> None:
    problems = load_problems({"RECON_SMTP_PASSWORD_FILE": "/dev/zero"})

    assert "it is a character device, not a regular file" in problems[0]
    assert problems[0].startswith("RECON_SMTP_PASSWORD_FILE: cannot read '/dev/zero'")


def test_a_directory_or_a_socket_named_by_a_file_variable_is_refused(tmp_path: Path) -> None:
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
        problems = load_problems(
            {"OPENAI_ADMIN_KEY_FILE": str(tmp_path), "RECON_WEBHOOK_SECRET_FILE": str(sock_path)}
        )

    assert any("(it is a directory, not a regular file)" in p for p in problems), problems
    assert any("(it is a socket, not a regular file)" in p for p in problems), problems


def test_a_fifo_as_the_config_file_or_the_price_file_is_refused(fifo: Path) -> None:
    problems = load_problems({}, config=fifo)
    assert problems == [
        f"config file {str(fifo)!r} cannot be read: it is a FIFO (named pipe), not a regular file"
    ]

    from recon_job.config import load_price_table

    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot read the price file \(it is a FIFO"):
        load_price_table(fifo)
    assert time.monotonic() - started < 5


def test_a_secret_file_that_is_not_utf8_is_refused_without_showing_its_bytes(
    tmp_path: Path,
) -> None:
    key = tmp_path / "key"
    key.write_bytes(SECRET_BYTES)

    problems = load_problems({"OPENAI_ADMIN_KEY_FILE": str(key)})

    assert problems == [
        f"OPENAI_ADMIN_KEY_FILE: cannot read {str(key)!r} (it is not UTF-8 text); point it at "
        "a regular file holding the value as UTF-8 text"
    ]
    text = "\n".join(problems)
    for leak in ("SECRET", "xff", "0xff", "ÿ", "position"):
        assert leak not in text


def test_a_config_file_that_is_not_utf8_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_bytes(b'[logs]\ntimezone = "UTC"\n# caf\xe9 in Latin-1\n')

    problems = load_problems({}, config=path)

    assert problems == [
        f"config file {str(path)!r} cannot be read: it is not UTF-8 text: line 3 holds bytes "
        "that are not UTF-8; save it as UTF-8"
    ]


def test_a_sql_source_url_file_that_is_not_utf8_is_a_problem_of_that_source(
    tmp_path: Path,
) -> None:
    url = tmp_path / "url"
    url.write_bytes(b"postgresql://app:\xffpw@db/app")
    config = tmp_path / "recon.toml"
    config.write_text(
        '[[sources]]\nkind = "sql"\nname = "app"\nurl_env = "APP_DB"\ntable = "t"\n'
        '[sources.columns]\ntimestamp = "ts"\nmodel = "m"\ninput_tokens = "i"\n'
        'output_tokens = "o"\n',
        encoding="utf-8",
    )

    problems = load_problems({"APP_DB_FILE": str(url)}, config=config)

    assert f"sources.0: cannot read APP_DB_FILE {str(url)!r} (it is not UTF-8 text)" in problems
    assert not any("pw" in p for p in problems)


def test_read_bytes_refuses_a_file_larger_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_FILE_BYTES + 1))

    with pytest.raises(UnusableFile, match="larger than 1 MiB"):
        read_bytes(big)
    big.write_bytes(b"x" * MAX_FILE_BYTES)
    assert len(read_text(big)) == MAX_FILE_BYTES


def test_check_config_exits_2_on_a_fifo_secret_and_a_non_utf8_config(
    workdir: Path, fake_openai: FakeOpenAI
) -> None:
    pipe = workdir / "pipe"
    os.mkfifo(pipe)
    config = workdir / "recon.toml"
    config.write_bytes(b"[reconcile]\nthreshold_pct = 5 # \xff\n")

    ran = cli(
        workdir,
        fake_openai,
        "check-config",
        "--config",
        str(config),
        OPENAI_ADMIN_KEY="",
        OPENAI_ADMIN_KEY_FILE=str(pipe),
    )

    assert ran.code == 2, ran.stderr
    assert "OPENAI_ADMIN_KEY_FILE: cannot read" in ran.stderr
    assert "it is a FIFO (named pipe), not a regular file" in ran.stderr
    assert "line 2 holds bytes that are not UTF-8" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_run_exits_2_on_a_non_utf8_secret_file_without_a_traceback(
    workdir: Path, fake_openai: FakeOpenAI
) -> None:
    key = workdir / "key"
    key.write_bytes(SECRET_BYTES)

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        OPENAI_ADMIN_KEY="",
        OPENAI_ADMIN_KEY_FILE=str(key),
    )

    assert ran.code == 2
    assert f"OPENAI_ADMIN_KEY_FILE: cannot read {str(key)!r} (it is not UTF-8 text)" in ran.stderr
    assert "SECRET" not in ran.stderr + ran.stdout
