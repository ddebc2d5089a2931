"""Run monitoring from the outside: dead-man's-switch pings and a Prometheus Pushgateway push.

A dead-man's switch (healthchecks.io, or anything speaking its pinging API) alerts when a run
does *not* report in, which no in-process alert can do. Per tick of the run loop, with one
``rid`` correlating the signals (reliability.md §6, §9 F):

* ``<url>/start?rid=R`` when the tick starts;
* ``<url>?rid=R`` on success, sent only after the results and outbox rows are committed;
* ``<url>/fail?rid=R`` (the daemon), or ``<url>/<exit code>?rid=R`` (run-once mode), with a
  short redacted reason as the body.

Monitoring must never hurt the job: each attempt is bounded (≤ 10 s), retried twice by the
urllib3 ``Retry`` of :func:`recon_job.http.make_session` (POST allowed: a ping is idempotent
for the monitor, a repeated success or fail signal changes nothing), and every failure is
swallowed and logged. The URL is never logged — it embeds the check's UUID, which is enough to
ping (or silence) the check, so it is a secret. A 404 means the check does not exist (a typo,
or a deleted check): a configuration problem, logged once as such.

:func:`with_pings` brackets one tick in these pings; :func:`push_last_runs` pushes the gauges of
the last run of each period kind to a Pushgateway for run-once mode, where no scraper can reach
the short-lived process (:func:`push_metrics` pushes any registry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit

import requests
import structlog

from recon_job.errors import Interrupted, ReconError
from recon_job.http import failure_kind, make_session
from recon_job.models import RunOutcome
from recon_job.runtime.metrics import last_run_registry

if TYPE_CHECKING:
    # prometheus-client is imported by the pushes themselves: most runs push nothing.
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

log = structlog.get_logger(__name__)

EV_PING_FAILED: Final = "monitor.ping.failed"
EV_PING_NOT_FOUND: Final = "monitor.ping.not_found"
EV_PING_REJECTED: Final = "monitor.ping.rejected"
EV_PING_SENT: Final = "monitor.ping.sent"
EV_PUSH_FAILED: Final = "monitor.push.failed"
EV_PUSH_SENT: Final = "monitor.push.sent"

#: Longest a single ping attempt may take, connect plus read (healthchecks' reliability tips:
#: "you don't want a stuck ping to prevent the actual job from running").
MAX_PING_SECONDS: Final = 10.0
#: Retries after a failed attempt (connection error, timeout, 5xx; 429 with Retry-After).
PING_RETRIES: Final = 2
#: Bytes of a failure reason sent as the ping body.
MAX_REASON_CHARS: Final = 500
#: Job label of pushed metrics.
PUSH_JOB: Final = "recon-job"

T = TypeVar("T")

#: How a result ends its pings: ``(0, _)`` pings success; ``(code, reason)`` pings
#: ``/<code>`` (``None``: ``/fail``) with ``reason`` as the body.
Verdict = tuple[int | None, str]


def new_rid() -> str:
    """A fresh run id correlating one tick's start and end pings."""
    return str(uuid.uuid4())


def secret_values(url: str | None) -> tuple[str, ...]:
    """The parts of a ping URL to scrub from logs: the URL and its path (the check's UUID)."""
    if not url:
        return ()
    path = urlsplit(url).path.strip("/")
    return tuple(v for v in (url, path) if v)


class Pinger:
    """healthchecks.io-style pings to ``url``; a no-op when ``url`` is None. Never raises.

    ``timeout`` bounds each attempt (at most :data:`MAX_PING_SECONDS`); ``retries`` and
    ``backoff`` (seconds, urllib3's ``backoff_factor``) configure the session's retries.
    ``redact`` scrubs the failure reason before it is sent.
    """

    def __init__(
        self,
        url: str | None,
        *,
        timeout: float = MAX_PING_SECONDS,
        retries: int = PING_RETRIES,
        backoff: float = 1.0,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._url = url.rstrip("/") if url else None
        timeout = min(timeout, MAX_PING_SECONDS)
        connect = min(3.0, timeout / 2)
        #: ``(connect, read)`` per attempt; their sum is at most :data:`MAX_PING_SECONDS`.
        self.timeout = (connect, timeout - connect)
        self._retries = retries
        self._backoff = backoff
        self._redact = redact
        self._session: requests.Session | None = None
        self._not_found_logged = False

    @property
    def enabled(self) -> bool:
        """True when a ping URL is configured."""
        return self._url is not None

    def start(self, rid: str) -> None:
        """Signal that run ``rid`` started (the monitor starts timing it)."""
        self._ping("start", "/start", rid)

    def success(self, rid: str) -> None:
        """Signal that run ``rid`` succeeded. Send it only after everything is committed."""
        self._ping("success", "", rid)

    def fail(self, rid: str, exit_code: int | None = None, reason: str = "") -> None:
        """Signal that run ``rid`` failed: ``/<exit_code>`` when given (1-255), else ``/fail``."""
        suffix = f"/{exit_code}" if exit_code is not None and 0 < exit_code < 256 else "/fail"
        body = self._redact(reason)[:MAX_REASON_CHARS]
        self._ping("fail", suffix, rid, body)

    def _ping(self, signal: str, suffix: str, rid: str, body: str = "") -> None:
        if self._url is None:
            return
        try:
            self._send(signal, f"{self._url}{suffix}", rid, body)
        except Interrupted:
            raise  # the shutdown budget ran out: a stop, not a monitoring bug
        except Exception as e:  # a monitoring bug must not fail the run
            log.warning(EV_PING_FAILED, signal=signal, error=type(e).__name__)

    def _send(self, signal: str, url: str, rid: str, body: str) -> None:
        try:
            response = self._get_session().post(
                url,
                params={"rid": rid},
                data=body.encode("utf-8"),
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            # str(e) would name the URL (and so the check's UUID): log the kind only.
            log.warning(EV_PING_FAILED, signal=signal, error=failure_kind(e))
            return
        with response:
            status = response.status_code
            attempts = _attempts(response)
        if 200 <= status < 300:
            log.debug(EV_PING_SENT, signal=signal, attempts=attempts)
        elif status == 404:
            self._not_found(signal, status)
        elif 400 <= status < 500 and status != 429:
            log.warning(EV_PING_REJECTED, signal=signal, status=status)
        else:
            log.warning(EV_PING_FAILED, signal=signal, status=status, attempts=attempts)

    def _not_found(self, signal: str, status: int) -> None:
        if self._not_found_logged:
            return
        self._not_found_logged = True
        log.error(
            EV_PING_NOT_FOUND,
            signal=signal,
            status=status,
            hint="the ping URL names no check: fix RECON_PING_URL (config problem)",
        )

    def _get_session(self) -> requests.Session:
        if self._session is None:
            self._session = make_session(
                retries=self._retries,
                backoff_factor=self._backoff,
                # A monitor asking for more than one attempt's worth of patience gets none.
                max_retry_after=MAX_PING_SECONDS,
                allowed_methods=("POST",),
            )
        return self._session

    def close(self) -> None:
        """Close the session this pinger made."""
        if self._session is not None:
            self._session.close()
            self._session = None


def _attempts(response: requests.Response) -> int:
    """How many times urllib3 sent the request that ``response`` answers."""
    retries = getattr(response.raw, "retries", None)
    return len(getattr(retries, "history", ())) + 1


def _no_code(_error: ReconError) -> int | None:
    return None


def _success(_result: object) -> Verdict:
    return (0, "")


def with_pings(
    pinger: Pinger,
    fn: Callable[[], T],
    *,
    verdict: Callable[[T], Verdict] = _success,
    error_code: Callable[[ReconError], int | None] = _no_code,
) -> T:
    """Call ``fn`` between a ``/start`` ping and its outcome ping; return what it returns.

    ``verdict(result)`` decides the outcome ping (see :data:`Verdict`). A ``ReconError`` from
    ``fn`` pings ``/<error_code(e)>`` (``None``: ``/fail``) with ``"<reason>: <message>"`` and
    is re-raised; any other exception pings ``/fail`` and is re-raised — a bug's message may
    quote data, so only its type is sent. Pings never raise and never change the result.
    """
    rid = new_rid()
    pinger.start(rid)
    try:
        result = fn()
    except ReconError as e:
        pinger.fail(rid, error_code(e), f"{e.reason}: {e}")
        raise
    except Exception as e:
        pinger.fail(rid, None, f"{type(e).__name__}: internal error")
        raise
    except BaseException as e:  # KeyboardInterrupt, SystemExit
        pinger.fail(rid, None, f"{type(e).__name__}: the run was stopped")
        raise
    code, reason = verdict(result)
    if code == 0:
        pinger.success(rid)
    else:
        pinger.fail(rid, code, reason or f"exit code {code}")
    return result


def _sampled(registry: CollectorRegistry) -> CollectorRegistry:
    """A view of the metric families of ``registry`` that hold at least one sample."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

    class Sampled(Collector):
        def collect(self) -> Iterator[Metric]:
            for family in registry.collect():
                if family.samples:
                    yield family

    view = CollectorRegistry(auto_describe=False)
    view.register(Sampled())
    return view


def push_last_runs(
    pushgateway_url: str | None, runs: Sequence[RunOutcome], *, job: str = PUSH_JOB
) -> bool:
    """Push the gauges of the last run of each period kind in ``runs`` (run-once mode).

    One group per kind, under the stable grouping key ``job="recon-job", kind="daily"`` (or
    ``monthly``), so that a tick that ran only a daily period leaves the monthly group alone;
    the gauges are those of :func:`~recon_job.runtime.metrics.last_run_registry`. Nothing is
    pushed when nothing ran. True when every push was accepted; failures are logged and
    swallowed.
    """
    last: dict[str, RunOutcome] = {}
    for outcome in runs:  # oldest period first: the newest of each kind ends up last
        last[outcome.window.kind] = outcome
    accepted = [
        push_metrics(
            pushgateway_url, last_run_registry(outcome), job=job, grouping_key={"kind": kind}
        )
        for kind, outcome in last.items()
    ]
    return bool(accepted) and all(accepted)


def push_metrics(
    pushgateway_url: str | None,
    registry: CollectorRegistry,
    *,
    job: str = PUSH_JOB,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = MAX_PING_SECONDS,
) -> bool:
    """Push ``registry`` to a Pushgateway group (``job`` and ``grouping_key``); True when it
    was accepted.

    Uses POST (``pushadd``), which replaces only the metric names pushed: a failed run pushes no
    ``recon_last_success_timestamp_seconds``, so the previous success stays visible instead of
    being wiped as a PUT would (families without samples are left out for the same reason).
    The request goes through recon-job's HTTP session, never retried (a push is not replayed
    behind our back). Failures are logged and swallowed.
    """
    if not pushgateway_url:
        return False
    from prometheus_client.exposition import pushadd_to_gateway

    with make_session(retries=0) as http:

        def handler(
            url: str,
            method: str,
            timeout: float | None,
            headers: list[tuple[str, str]],
            data: bytes,
        ) -> Callable[[], None]:
            def send() -> None:
                response = http.request(
                    method, url, data=data, headers=dict(headers), timeout=timeout or 10.0
                )
                response.close()
                if response.status_code >= 400:
                    raise OSError(f"Pushgateway answered HTTP {response.status_code}")

            return send

        view = _sampled(registry)
        try:
            pushadd_to_gateway(
                pushgateway_url,
                job=job,
                registry=view,
                grouping_key=dict(grouping_key or {}),
                timeout=timeout,
                handler=handler,
            )
        except (OSError, requests.RequestException, ValueError) as e:
            detail = failure_kind(e) if isinstance(e, requests.RequestException) else str(e)
            log.warning(EV_PUSH_FAILED, error=type(e).__name__, detail=detail)
            return False
    log.info(EV_PUSH_SENT, job=job, **dict(grouping_key or {}))
    return True
