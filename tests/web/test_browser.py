"""The dashboard in a real browser (headless Chromium via selenium): what a person sees.

Screenshots go to ``$RECON_SCREENSHOTS`` when set (else the test's temporary directory), so a
person can look at them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.history import KEY
from tests.web.server import Running, serving

pytestmark = pytest.mark.slow

GREEN_INK = "rgba(27, 107, 44, 1)"
RED_INK = "rgba(161, 29, 29, 1)"


def _driver() -> Any:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("Chromium is not installed (apt install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("RECON_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def _no_console_errors(browser: Any, *, expected: str = "\0") -> None:
    log = browser.get_log("browser")
    severe = [e for e in log if e["level"] == "SEVERE" and expected not in e["message"]]
    assert severe == []


def _only_local_requests(browser: Any, app: Running) -> None:
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(u.startswith(app.base) for u in urls), urls


def _colour(browser: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    element = browser.find_element(By.CSS_SELECTOR, selector)
    return str(element.value_of_css_property("color"))


def test_the_overview_shows_the_verdict_colours_and_chart(
    browser: Any, app: Running, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(app.url(f"/usage-api?key={KEY}"))
    assert "key=" not in browser.current_url  # exchanged for a cookie, gone from the bar
    status = browser.find_element(By.ID, "status")
    assert status.text == "⚠ Mismatch Detected"
    assert _colour(browser, "#status") == RED_INK
    assert _colour(browser, "table.totals tr.openai-higher td") == RED_INK
    chart = browser.find_element(By.ID, "cost-chart")
    assert chart.size["height"] > 100
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cost-chart rect.bar")) == 10
    drift = browser.find_element(By.ID, "drift-chart")
    assert drift.size["height"] > 100
    assert len(browser.find_elements(By.CSS_SELECTOR, "#drift-chart path.line")) == 2
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "failed: quota_exhausted" in body
    assert "not reconciled yet" in body
    browser.save_screenshot(str(shots / "overview-mismatch.png"))
    _no_console_errors(browser)
    _only_local_requests(browser, app)

    browser.get(app.url("/usage-api?start_date=2026-03-09&end_date=2026-03-12"))
    assert browser.find_element(By.ID, "status").text == "✓ Reconciled (within 5%)"
    assert _colour(browser, "#status") == GREEN_INK
    browser.save_screenshot(str(shots / "overview-reconciled.png"))
    _no_console_errors(browser)


def test_a_run_and_the_run_list_read_well(browser: Any, app: Running, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(app.url(f"/runs?key={KEY}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert len(rows) == 6
    browser.save_screenshot(str(shots / "runs.png"))
    browser.find_element(By.LINK_TEXT, "#5").click()
    assert browser.find_element(By.ID, "status").text == "mismatch"
    assert "gpt-4o-mini" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(shots / "run.png"))
    _no_console_errors(browser)
    _only_local_requests(browser, app)
    browser.find_element(By.LINK_TEXT, "Trends").click()
    assert "gpt-4o" in browser.find_element(By.CSS_SELECTOR, "table.groups").text
    browser.save_screenshot(str(shots / "trends.png"))
    _no_console_errors(browser)


def test_a_stranger_sees_the_sign_in_form(browser: Any, history_url: str, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    with serving(history_url) as app:
        browser.delete_all_cookies()
        browser.get(app.url("/usage-api"))
        assert browser.find_element(By.ID, "key").get_attribute("type") == "password"
        browser.save_screenshot(str(shots / "login.png"))
        browser.find_element(By.ID, "key").send_keys(KEY)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        assert browser.find_element(By.ID, "status").text == "⚠ Mismatch Detected"
        _no_console_errors(browser, expected="status of 401 (Unauthorized)")
