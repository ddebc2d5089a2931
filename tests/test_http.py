"""The session factory: retries, Retry-After handling, deadlines and timeouts, over real HTTP."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from recon_job.errors import DeadlineExceeded
from recon_job.http import (
    MIN_ATTEMPT_TIMEOUT,
    CappedRetry,
    Deadline,
    DeadlineTimeout,
    failure_kind,
    make_session,
    max_retry_after,
    parse_retry_after,
    timeout_for,
)
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

TIMEOUT = (2.0, 2.0)


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="url")
def url_fixture(fake_openai: FakeOpenAI) -> str:
    return f"{fake_openai.base_url}/anything"


@pytest.fixture(name="session")
def session_fixture() -> Iterator[requests.Session]:
    with make_session(retries=2, backoff_factor=0.01, backoff_max=0.05) as session:
        yield session


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [("1", 1.0), ("1.5", 1.5), (" 0.3 ", 0.3), ("0", 0.0), (".5", 0.5), ("120", 120.0)],
    )
    def test_it_reads_integer_and_fractional_seconds(self, value: str, seconds: float) -> None:
        assert parse_retry_after(value) == pytest.approx(seconds)

    def test_it_reads_an_http_date_relative_to_now(self) -> None:
        now = 1_754_006_400.0
        value = email.utils.formatdate(now + 90, usegmt=True)
        assert parse_retry_after(value, now=now) == pytest.approx(90.0)

    def test_it_never_returns_a_negative_delay_for_a_past_date(self) -> None:
        value = email.utils.formatdate(1_000_000_000, usegmt=True)
        assert parse_retry_after(value, now=1_754_006_400.0) == 0.0

    @pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "1e3", "", "1.2.3"])
    def test_it_returns_none_for_values_it_cannot_read(self, value: str) -> None:
        assert parse_retry_after(value) is None

    def test_stock_urllib3_crashes_on_a_fractional_value_which_is_why_we_subclass(self) -> None:
        with pytest.raises(urllib3.exceptions.InvalidHeader):
            Retry().parse_retry_after("1.5")
        assert CappedRetry().parse_retry_after("1.5") == 1.5


class TestCappedRetry:
    def test_new_keeps_the_extra_parameters(self) -> None:
        deadline = Deadline(10)
        retry = CappedRetry(total=3, max_retry_after=7.0, deadline=deadline)
        copy = retry.new(total=1)
        assert isinstance(copy, CappedRetry)
        assert (copy.total, copy.max_retry_after, copy.deadline) == (1, 7.0, deadline)

    def test_increment_keeps_the_extra_parameters(self) -> None:
        retry = CappedRetry(total=3, max_retry_after=7.0)
        after = retry.increment(method="GET", url="/x", error=urllib3.exceptions.ProtocolError())
        assert isinstance(after, CappedRetry)
        assert (after.total, after.max_retry_after) == (2, 7.0)


class TestDeadline:
    def test_it_counts_down_with_the_clock_it_is_given(self) -> None:
        clock = FakeClock()
        deadline = Deadline(5, clock=clock)
        assert deadline.remaining() == 5
        clock.now += 3
        assert deadline.remaining() == 2
        assert not deadline.expired
        clock.now += 2
        assert deadline.expired
        assert deadline.remaining() == 0

    def test_check_raises_a_transient_deadline_error_once_expired(self) -> None:
        clock = FakeClock()
        deadline = Deadline(1, clock=clock)
        deadline.check("fetching page 1")
        clock.now += 1.5
        with pytest.raises(DeadlineExceeded) as info:
            deadline.check("fetching page 2")
        assert info.value.permanent is False
        assert info.value.reason == "deadline"
        assert "fetching page 2" in str(info.value)

    def test_timeout_for_never_exceeds_the_remaining_time(self) -> None:
        clock = FakeClock()
        deadline = Deadline(10, clock=clock)
        assert timeout_for(None, 5, 30) == (5, 30)
        assert timeout_for(deadline, 5, 30) == (5, 10)
        clock.now += 8
        assert timeout_for(deadline, 5, 30) == (2, 2)
        clock.now += 2
        with pytest.raises(DeadlineExceeded, match="deadline"):
            timeout_for(deadline, 5, 30)


class TestMakeSession:
    def test_it_mounts_a_get_only_retry_for_http_and_https(self) -> None:
        with make_session(retries=3, max_retry_after=12) as session:
            for prefix in ("http://example.test", "https://example.test"):
                adapter = session.get_adapter(prefix)
                assert isinstance(adapter, HTTPAdapter)
                retry = adapter.max_retries
                assert isinstance(retry, CappedRetry)
                assert retry.allowed_methods == frozenset({"GET"})
                assert tuple(retry.status_forcelist) == (500, 502, 503, 504)
                assert retry.raise_on_status is False
                assert retry.respect_retry_after_header is True
                assert (retry.total, retry.connect, retry.read, retry.status) == (3, 3, 3, 3)
                assert retry.backoff_jitter > 0
            assert max_retry_after(session, "https://example.test/x") == 12

    def test_it_sends_a_recon_job_user_agent(self, fake_openai: FakeOpenAI, url: str) -> None:
        with make_session() as session:
            session.get(url, timeout=TIMEOUT).close()
        with make_session(user_agent="custom/1") as session:
            session.get(url, timeout=TIMEOUT).close()
        first, second = (r.headers["User-Agent"] for r in fake_openai.requests)
        assert first.startswith("recon-job/")
        assert first != "recon-job/"
        assert second == "custom/1"


class TestRetriesOverRealHttp:
    def test_r01_it_waits_for_retry_after_then_succeeds(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(1, 429, headers={"Retry-After": "1"})
        fake_openai.respond_next(1, body={"ok": True})
        response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 200
        assert len(fake_openai.requests) == 2
        assert fake_openai.gaps()[0] >= 1.0

    def test_r02_a_429_without_retry_after_is_not_retried(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(3, 429)
        response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 429
        assert len(fake_openai.requests) == 1

    def test_r03_a_fractional_retry_after_is_waited_for_not_a_crash(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(1, 429, headers={"Retry-After": "0.3"})
        fake_openai.respond_next(1, body={"ok": True})
        response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 200
        assert len(fake_openai.requests) == 2
        assert fake_openai.gaps()[0] >= 0.3

    @pytest.mark.parametrize("status", [429, 503])
    def test_r04_a_retry_after_beyond_the_cap_is_handed_back_at_once(
        self, fake_openai: FakeOpenAI, url: str, status: int
    ) -> None:
        fake_openai.fail_next(3, status, headers={"Retry-After": "86400"})
        started = time.monotonic()
        with make_session(max_retry_after=60) as session:
            response = session.get(url, timeout=TIMEOUT)
        assert time.monotonic() - started < 1.0
        assert response.status_code == status
        assert len(fake_openai.requests) == 1

    def test_r04_an_http_date_a_day_ahead_is_beyond_the_cap_too(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        tomorrow = email.utils.formatdate(time.time() + 86400, usegmt=True)
        fake_openai.fail_next(3, 503, headers={"Retry-After": tomorrow})
        started = time.monotonic()
        assert session.get(url, timeout=TIMEOUT).status_code == 503
        assert time.monotonic() - started < 1.0
        assert len(fake_openai.requests) == 1

    def test_an_unreadable_retry_after_on_429_counts_as_absent(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(3, 429, headers={"Retry-After": "soon"})
        assert session.get(url, timeout=TIMEOUT).status_code == 429
        assert len(fake_openai.requests) == 1

    def test_r05_two_502s_then_success_takes_three_requests(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(2, 502)
        fake_openai.respond_next(1, body={"ok": True})
        response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {"ok": True}
        assert len(fake_openai.requests) == 3

    def test_r06_a_server_that_always_fails_gets_retries_plus_one_requests(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(10, 500)
        response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 500
        assert len(fake_openai.requests) == 3

    def test_post_is_never_retried(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.fail_next(3, 503)
        assert session.post(url, data=b"x", timeout=TIMEOUT).status_code == 503
        assert len(fake_openai.requests) == 1

    def test_r07_each_attempt_ends_at_the_read_timeout(
        self, fake_openai: FakeOpenAI, session: requests.Session, url: str
    ) -> None:
        fake_openai.delay_next(5, 30)
        started = time.monotonic()
        with pytest.raises(requests.RequestException) as info:
            session.get(url, timeout=(1.0, 0.3))
        elapsed = time.monotonic() - started
        assert len(fake_openai.requests) == 3
        assert 0.9 <= elapsed < 3.0
        assert all(0.25 <= gap < 1.0 for gap in fake_openai.gaps())
        assert failure_kind(info.value) == "timeout"

    def test_a_refused_connection_is_a_connection_failure(self, session: requests.Session) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(requests.RequestException) as info:
            session.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
        assert failure_kind(info.value) == "connection"


class TestDeadlineStopsRetries:
    def test_a_backoff_that_would_pass_the_deadline_is_not_slept(
        self, fake_openai: FakeOpenAI, url: str
    ) -> None:
        fake_openai.fail_next(10, 500)
        started = time.monotonic()
        with make_session(retries=4, backoff_factor=1.0, deadline=Deadline(0.8)) as session:
            response = session.get(url, timeout=TIMEOUT)
        assert response.status_code == 500
        # The first retry is immediate (urllib3); the second would sleep 2 s > 0.8 s left.
        assert len(fake_openai.requests) == 2
        assert time.monotonic() - started < 0.8

    def test_a_retry_after_that_would_pass_the_deadline_is_not_slept(
        self, fake_openai: FakeOpenAI, url: str
    ) -> None:
        fake_openai.fail_next(3, 429, headers={"Retry-After": "5"})
        started = time.monotonic()
        with make_session(deadline=Deadline(1.0)) as session:
            assert session.get(url, timeout=TIMEOUT).status_code == 429
        assert time.monotonic() - started < 1.0
        assert len(fake_openai.requests) == 1

    def test_a_timeout_retry_past_the_deadline_reports_the_deadline(
        self, fake_openai: FakeOpenAI, url: str
    ) -> None:
        fake_openai.delay_next(5, 30)
        deadline = Deadline(0.5)
        with (
            make_session(retries=4, backoff_factor=0.01, deadline=deadline) as session,
            pytest.raises(requests.RequestException) as info,
        ):
            session.get(url, timeout=timeout_for(deadline, 1.0, 0.3))
        assert failure_kind(info.value) == "deadline"
        assert len(fake_openai.requests) == 2


class TestDeadlineCapsEveryAttempt:
    """Issue 9 item 25: a 45 s deadline with a silent server ended the run after 62 s."""

    @pytest.mark.timeout(30)
    def test_a_retry_inside_urllib3_gets_only_what_is_left_of_the_deadline(
        self, fake_openai: FakeOpenAI, url: str
    ) -> None:
        fake_openai.delay_next(10, 30)
        deadline = Deadline(1.2)
        started = time.monotonic()
        with (
            make_session(retries=4, backoff_factor=0.01, deadline=deadline) as session,
            pytest.raises(requests.RequestException),
        ):
            # The first attempt may read for 1 s; its retry only for the 0.2 s left, not 1 s.
            session.get(url, timeout=timeout_for(deadline, 1.0, 1.0))
        elapsed = time.monotonic() - started

        assert len(fake_openai.requests) == 2
        assert 1.15 <= elapsed < 1.2 + 0.35

    @pytest.mark.timeout(30)
    @pytest.mark.parametrize("timeout", [(5.0, 5.0), 5.0, None])
    def test_any_timeout_a_caller_passes_is_capped(
        self, fake_openai: FakeOpenAI, url: str, timeout: float | tuple[float, float] | None
    ) -> None:
        fake_openai.delay_next(10, 30)
        started = time.monotonic()
        with (
            make_session(retries=0, deadline=Deadline(0.5)) as session,
            pytest.raises(requests.RequestException) as info,
        ):
            session.get(url, timeout=timeout)

        assert time.monotonic() - started < 0.5 + 0.35
        assert failure_kind(info.value) == "timeout"

    def test_an_attempt_never_gets_a_zero_timeout(self) -> None:
        clock = FakeClock()
        deadline = Deadline(1, clock=clock)
        clock.now += 5

        timeout = DeadlineTimeout(deadline, 2.0, 30.0).clone()

        assert timeout.connect_timeout == timeout.read_timeout == MIN_ATTEMPT_TIMEOUT > 0

    def test_the_timeouts_shrink_as_the_deadline_nears_and_survive_cloning(self) -> None:
        clock = FakeClock()
        timeout = DeadlineTimeout(Deadline(10, clock=clock), 2.0, 30.0)

        assert (timeout.connect_timeout, timeout.read_timeout) == (2.0, 10.0)
        clock.now += 9
        clone = timeout.clone()
        assert isinstance(clone, DeadlineTimeout)
        assert (clone.connect_timeout, clone.read_timeout) == (1.0, 1.0)
