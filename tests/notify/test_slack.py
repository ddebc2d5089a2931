"""SlackTransport against a real HTTP server on 127.0.0.1, and the Block Kit body it posts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.compare import reconcile
from recon_job.errors import NotifyError
from recon_job.http import make_session
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.notify.base import HttpOptions
from recon_job.notify.context import Notice
from recon_job.notify.render import render_message, sample_message, sample_result
from recon_job.notify.slack import MAX_BLOCKS, MAX_SECTION, SlackTransport, build_blocks
from tests.notify.conftest import HOST

PATH = "/services/T000/B000/XXXXs3cret"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(retries=0) as s:
        yield s


def slack(url: str, session: requests.Session) -> SlackTransport:
    # allow_private: the receivers of these tests listen on 127.0.0.1.
    return SlackTransport(url, session, HttpOptions(timeout=(1.0, 0.5), allow_private=True))


def fail(t: SlackTransport) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        t.notify(sample_message("k1"))
    error = caught.value
    for text in (str(error), repr(error), str(error.__cause__), str(error.__context__)):
        assert "XXXXs3cret" not in text
    assert "XXXXs3cret" not in repr(t)
    return error


def test_200_ok_is_delivered_with_blocks_and_a_dedupe_footer(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data("ok")
    message = sample_message("dedupe-42")

    slack(httpserver.url_for(PATH), session).notify(message)

    [(request, _)] = httpserver.log
    body = json.loads(request.get_data())
    assert body["text"] == message.slack_text
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": message.subject}}
    assert blocks[-1]["type"] == "context"
    assert blocks[-1]["elements"][0]["text"] == "recon-job · dedupe-42"
    fields = next(b for b in blocks if "fields" in b)["fields"]
    assert any("Cost (USD)" in f["text"] for f in fields)
    assert any("out of tolerance" in b.get("text", {}).get("text", "") for b in blocks)


def test_200_with_another_body_is_permanent(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request(PATH).respond_with_data("no")

    error = fail(slack(httpserver.url_for(PATH), session))

    assert error.permanent
    assert "no" in str(error)


@pytest.mark.parametrize(("retry_after", "expected"), [({"Retry-After": "3"}, 3.0), ({}, 30.0)])
def test_429_sets_retry_after_and_posts_exactly_once(
    httpserver: HTTPServer,
    session: requests.Session,
    retry_after: dict[str, str],
    expected: float,
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        '{"retry_after":3,"ok":false,"error":"rate_limited"}', 429, headers=retry_after
    )
    started = time.monotonic()

    error = fail(slack(httpserver.url_for(PATH), session))

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", expected)
    assert len(httpserver.log) == 1
    assert time.monotonic() - started < 1.0  # never slept here


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (404, "no_service"),
    ],
)
def test_slack_client_errors_are_permanent_with_slacks_error(
    httpserver: HTTPServer, session: requests.Session, status: int, code: str
) -> None:
    httpserver.expect_request(PATH).respond_with_data(code, status)

    error = fail(slack(httpserver.url_for(PATH), session))

    assert (error.permanent, error.reason) == (True, code)
    assert code in str(error)
    assert str(status) in str(error)
    assert len(httpserver.log) == 1


def test_500_is_transient_and_the_next_attempt_can_succeed(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_ordered_request(PATH).respond_with_data("rollup_error", 500)
    httpserver.expect_ordered_request(PATH).respond_with_data("ok")
    transport = slack(httpserver.url_for(PATH), session)

    error = fail(transport)
    transport.notify(sample_message("k1"))  # the relay's next pass

    assert (error.permanent, error.reason) == (False, "rollup_error")
    assert len(httpserver.log) == 2


def test_a_slack_that_never_answers_is_transient_within_the_timeout(
    silent_port: int, session: requests.Session
) -> None:
    started = time.monotonic()

    error = fail(slack(f"http://{HOST}:{silent_port}{PATH}", session))

    assert (error.permanent, error.reason) == (False, "timeout")
    assert "Slack webhook timed out after 0.5 s" in str(error)
    assert time.monotonic() - started < 3.0


def test_redirects_are_not_followed(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "", 302, headers={"Location": httpserver.url_for("/elsewhere")}
    )

    error = fail(slack(httpserver.url_for(PATH), session))

    assert (error.permanent, error.reason) == (True, "redirect")
    assert [r.path for r, _ in httpserver.log] == [PATH]


def _many_groups(count: int, name_length: int) -> UsageTotals:
    base = sample_result()
    day = base.window.start
    groups = {
        UsageKey(day, f"model-{i:04d}-" + "x" * name_length, "proj"): Usage(
            1000, 0, 1000, 10 + i, cost=base.local.cost
        )
        for i in range(count)
    }
    return UsageTotals(groups=groups)


def test_block_kit_limits_hold_for_huge_alerts() -> None:
    base = sample_result()
    result = reconcile(
        _many_groups(300, 80),
        UsageTotals(),
        window=base.window,
        tolerance=Tolerance(),
    )
    resolved = tuple(f"2026-03-14 model-{i}" for i in range(500))
    notice = Notice("opened", result.window.key, "big", result.window, result, resolved=resolved)
    message = render_message(notice, max_groups=300)
    message = replace(message, subject="S" * 400, slack_text="t" * 5000)

    blocks = build_blocks(message)

    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= 150
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(t) <= MAX_SECTION for t in texts)
    assert any("…and " in t and " more" in t for t in texts)
    assert all(len(f["text"]) <= 2000 for b in blocks for f in b.get("fields", []))
    assert blocks[-1]["type"] == "context"


def test_the_more_line_counts_groups_left_out_by_max_groups() -> None:
    base = sample_result()
    result = reconcile(
        _many_groups(12, 1), UsageTotals(), window=base.window, tolerance=Tolerance()
    )
    message = render_message(
        Notice("opened", result.window.key, "k", result.window, result), max_groups=5
    )

    [groups] = [
        b
        for b in build_blocks(message)
        if b.get("text", {}).get("text", "").startswith("*12 groups out of tolerance*")
    ]

    assert groups["text"]["text"].endswith("…and 7 more")


def test_data_cannot_form_slack_links_or_mentions() -> None:
    base = sample_result()
    local = UsageTotals(
        groups={
            replace(g.key, model="<!channel> <https://evil|click>"): g.local for g in base.groups
        }
    )
    result = reconcile(local, UsageTotals(), window=base.window, tolerance=Tolerance())
    message = render_message(Notice("opened", "g", "k", base.window, result))

    blocks = build_blocks(message)
    assert blocks[0]["text"]["type"] == "plain_text"  # Slack never parses plain_text
    body = json.dumps(blocks[1:]) + message.slack_text

    assert "<!channel>" not in body
    assert "<https://evil" not in body
    assert "&lt;!channel&gt;" in body


# --- issue 9 item 21: a receiver's error text never leaks the webhook's token ----------------

REAL_PATH = "/services/T0AB12CD3/B0EF45GH6/xQ7vR2mN9pL4sT8wY1zK3cF6"


@pytest.mark.parametrize(
    "body",
    [
        "no_such_hook: token xQ7vR2mN9pL4sT8wY1zK3cF6",
        "invalid_token for team T0AB12CD3, hook B0EF45GH6",
        "no_such_hook: token xQ7vR2mN9pL4sT8wY1zK3cF6?x=1",
    ],
)
def test_a_slack_error_quoting_one_segment_of_the_url_is_masked(
    httpserver: HTTPServer, session: requests.Session, body: str
) -> None:
    httpserver.expect_request(REAL_PATH).respond_with_data(body, 404)

    with pytest.raises(NotifyError) as caught:
        slack(httpserver.url_for(REAL_PATH), session).notify(sample_message("k1"))

    text = str(caught.value)
    for segment in ("T0AB12CD3", "B0EF45GH6", "xQ7vR2mN9pL4sT8wY1zK3cF6"):
        assert segment not in text
    assert "***" in text
    assert caught.value.permanent
