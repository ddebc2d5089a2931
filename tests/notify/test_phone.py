"""The HTML email reads on a phone (issue 9 item 28): one column, nothing wider than the screen.

The structure is checked on every run; when Chromium is installed (Debian ``chromium`` and
``chromium-driver``, driven by selenium) the email is also laid out at a phone's 375 CSS
pixels and must not scroll sideways.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from recon_job.compare import reconcile
from recon_job.models import Message, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.notify.context import Notice
from recon_job.notify.render import render_message, sample_message
from tests.notify.test_figures import uneven

PHONE = 375
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


def extreme() -> Message:
    """A long fine-tuned model name, a long project id and figures in the millions."""
    day = date(2026, 3, 14)
    window = Window("daily", day, date(2026, 3, 15))
    key = UsageKey(
        day,
        "ft:gpt-4o-mini-2024-07-18:acme-corporation:customer-support-classifier-v3:AbCdEf12",
        "proj_0123456789abcdefghijKLMNOP",
        "key_AbCdEfGhIjKlMnOp",
    )
    local = UsageTotals(
        groups={key: Usage(9_876_543_210, 0, 1, 98_765_432, Decimal("1234567.891"))}
    )
    official = UsageTotals(
        groups={key: Usage(8_765_432_109, 0, 1, 87_654_321, Decimal("1134567.8"))}
    )
    result = reconcile(local, official, window=window, tolerance=Tolerance())
    return render_message(Notice("opened", window.key, "k" * 64, window, result))


class _Rows(HTMLParser):
    """Counts the cells of every table row, nested tables apart."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[int] = []
        self.counts: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.open.append(0)
        elif tag in ("td", "th") and self.open:
            self.open[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.open:
            self.counts.append(self.open.pop())


def _cells_per_row(html: str) -> list[int]:
    rows = _Rows()
    rows.feed(html)
    return rows.counts


MESSAGES = {"sample": sample_message, "uneven": uneven, "extreme": extreme}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_email_has_a_viewport_and_narrow_tables(name: str) -> None:
    html = MESSAGES[name]().html

    assert VIEWPORT in html
    assert max(_cells_per_row(html)) <= 4
    # No fixed width a phone cannot show (the old layout was 760 px, nine columns).
    widths = [int(w) for w in re.findall(r"(?:^|[;\"\s])(?:min-)?width:\s*(\d+)px", html)]
    assert all(w <= PHONE for w in widths), widths


def _driver() -> Any:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("Chromium is not installed (apt install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    # A phone: mobile layout, so the viewport tag decides the layout width (else 980 px).
    metrics = {"width": PHONE, "height": 800, "pixelRatio": 2}
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_email_does_not_scroll_sideways_on_a_phone(
    browser: Any, tmp_path: Path, name: str
) -> None:
    page = tmp_path / f"{name}.html"
    page.write_text(MESSAGES[name]().html, encoding="utf-8")

    browser.get(page.as_uri())
    scroll, inner, font = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " parseFloat(getComputedStyle(document.body).fontSize)]"
    )

    assert inner == PHONE  # the viewport tag is honoured: laid out for the phone, not shrunk
    assert scroll <= inner
    assert font >= 14
