"""HttpTransport's shared rules, through a minimal channel built on it, and the mrkdwn escape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.errors import NotifyError
from recon_job.http import make_session
from recon_job.models import Message
from recon_job.notify.base import HttpOptions, HttpTransport, Transport, Wording, mrkdwn_escape
from recon_job.notify.render import sample_message

PATH = "/in/t0ken-path"
#: The receivers of these tests listen on 127.0.0.1.
LOCAL = HttpOptions(timeout=(1.0, 0.5), allow_private=True)


class Echo(HttpTransport):
    """The smallest HTTP channel: POST the subject, delivered on any 2xx."""

    channel = "echo"
    wording = Wording(
        receiver="echo receiver",
        rate_limited="echo: 429{detail}",
        server_error="echo: {status}{detail}",
        redirect="echo: {status} redirect",
        rejected="echo: rejected {status}{detail}",
    )

    def notify(self, message: Message) -> None:
        with self.post(message.subject.encode(), {"Content-Type": "text/plain"}) as response:
            if not 200 <= response.status_code < 300:
                raise self.failure(response, self.excerpt(response))


@pytest.fixture
def echo(httpserver: HTTPServer) -> Iterator[Echo]:
    with make_session(retries=0) as session:
        yield Echo(httpserver.url_for(PATH), session, LOCAL)


def fail(t: Transport) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        t.notify(sample_message())
    assert "t0ken" not in str(caught.value)
    assert caught.value.__cause__ is None
    return caught.value


def test_a_2xx_delivers_one_post(httpserver: HTTPServer, echo: Echo) -> None:
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data("", 202)

    echo.notify(sample_message())

    [(request, _)] = httpserver.log
    assert request.get_data(as_text=True) == sample_message().subject
    assert repr(echo) == "Echo()"


def test_a_429_without_retry_after_names_no_wait(httpserver: HTTPServer, echo: Echo) -> None:
    httpserver.expect_request(PATH).respond_with_data("busy", 429)

    error = fail(echo)

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", None)
    assert str(error) == "echo: 429: busy"


@pytest.mark.parametrize(
    ("status", "permanent", "reason", "text"),
    [
        (503, False, "http_503", "echo: 503: Cannot POST ***"),
        (307, True, "redirect", "echo: 307 redirect"),
        (418, True, "http_418", "echo: rejected 418: Cannot POST ***"),
    ],
)
def test_statuses_map_to_transient_or_permanent_errors_with_the_url_masked(
    httpserver: HTTPServer, echo: Echo, status: int, permanent: bool, reason: str, text: str
) -> None:
    headers = {"Location": httpserver.url_for("/next")} if status == 307 else {}
    httpserver.expect_request(PATH).respond_with_data(
        f"Cannot POST {PATH}", status, headers=headers
    )

    error = fail(echo)

    assert (error.permanent, error.reason, str(error)) == (permanent, reason, text)
    assert [r.path for r, _ in httpserver.log] == [PATH]


def test_a_refused_connection_names_the_receiver_not_the_url() -> None:
    with make_session(retries=0) as session:
        error = fail(Echo(f"http://127.0.0.1:9{PATH}", session, LOCAL))

    assert (error.permanent, error.reason) == (False, "connection")
    assert str(error) == "could not connect to the echo receiver"


def test_mrkdwn_escape_defuses_links_and_mentions() -> None:
    assert (
        mrkdwn_escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
    )
    assert mrkdwn_escape(5) == "5"


def test_the_http_base_needs_a_notify(httpserver: HTTPServer) -> None:
    class Incomplete(HttpTransport):
        channel = "incomplete"

    with pytest.raises(TypeError):
        Incomplete(httpserver.url_for("/"), requests.Session())  # type: ignore[abstract]


@pytest.mark.timeout(30)
def test_an_error_body_dripped_a_byte_at_a_time_is_read_for_seconds_not_minutes() -> None:
    # The read timeout bounds each socket read: a receiver answering 500 and sending its body
    # one byte every 0.3 s held a run (and `alerts test`) for a quarter of an hour.
    import socket
    import threading
    import time

    from recon_job.notify.base import body_excerpt

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.3)

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    try:
        port = listener.getsockname()[1]
        response = requests.post(f"http://127.0.0.1:{port}/hook", timeout=(2, 2), stream=True)
        assert response.status_code == 500
        excerpt = body_excerpt(response, seconds=1.0)
        response.close()
    finally:
        stop.set()
        listener.close()
    assert excerpt  # what came in time, no more waited for
    assert set(excerpt) == {"x"}
