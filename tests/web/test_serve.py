"""``recon-job serve`` and ``--listen``: the command, its flag, and what reaches the log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from recon_job.cli.main import main
from tests.web.history import KEY
from tests.web.server import Running


@pytest.mark.parametrize("command", ["serve", "daemon"])
@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1:99999", "host:", ":9108"])
def test_a_bad_listen_address_exits_2_naming_it(command: str, value: str) -> None:
    result = CliRunner().invoke(main, [command, "--listen", value])
    assert result.exit_code == 2
    assert "is not an address to listen on; use host:port" in result.output


def test_a_bad_web_listen_setting_is_a_configuration_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve"], env={"RECON_WEB__LISTEN": "nowhere", "RECON_CONFIG": None}
    )
    assert result.exit_code == 2
    assert "web.listen" in result.output


def test_serve_refuses_a_port_in_use_with_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["serve", "--listen", f"127.0.0.1:{port}"],
            env={"RECON_DATABASE_URL": f"sqlite:///{tmp_path}/h.db", "RECON_CONFIG": None},
        )
    assert result.exit_code == 2
    assert f"web.listen: cannot listen on 127.0.0.1:{port}" in result.output


def test_the_key_never_reaches_the_log(app: Running, capfd: pytest.CaptureFixture[str]) -> None:
    browser = app.browser()
    browser.get(app.url(f"/usage-api?key={KEY}"), timeout=10)
    browser.get(app.url("/usage-api?key=" + "w" * 24), timeout=10)
    requests.get(app.url("/api/v1/runs"), headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    out, err = capfd.readouterr()
    assert KEY not in out + err
    assert "w" * 24 not in out + err


def test_serve_warns_at_start_of_what_would_stop_a_reconcile(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # It started without a word; the first "Reconcile this range" then failed with a 503.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        url = "http://hooks.example/T000/secret-path"
        result = CliRunner().invoke(
            main,
            ["serve", "--listen", f"127.0.0.1:{port}"],
            env={
                "RECON_DATABASE_URL": f"sqlite:///{tmp_path}/h.db",
                "RECON_CONFIG": None,
                "RECON_WEBHOOK_URL": url,
            },
        )
    out, err = capfd.readouterr()
    everything = result.output + out + err
    warned = [line for line in everything.splitlines() if "web.reconcile_unavailable" in line]
    assert any("RECON_WEBHOOK_URL" in line and "https" in line for line in warned), everything
    assert "secret-path" not in everything
