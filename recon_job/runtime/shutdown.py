"""SIGTERM (and SIGINT) with one budget, for ``recon-job run`` and the daemon alike.

Kubernetes sends SIGTERM and, ``terminationGracePeriodSeconds`` later (30 s by default),
SIGKILL; Python installs no SIGTERM handler, so without one the process dies without running a
single ``finally`` (reliability.md §2.1, R38). :class:`Shutdown` gives both run modes the same
rules, with the budget of ``daemon.shutdown_budget_seconds``:

* the first signal sets the stop event: the running step stops at its next checkpoint (the run
  row becomes ``interrupted``, its period lock is released) and the process exits 143 after
  SIGTERM (128 + 15, what Kubernetes expects), 130 after SIGINT;
* a step still running :data:`CLEANUP_SECONDS` before the end of the budget (a hung fetch) is
  cut short when it runs in the main thread inside :meth:`Shutdown.interruptible`: SIGALRM
  raises ``Interrupted`` there, and the run is recorded as interrupted all the same;
* at the end of the budget a process that has not finished exits at once, with its exit code,
  as SIGKILL would a little later; a row left ``running`` is reaped by the next run;
* a second signal means "now": the process exits at once.

The signal handlers only set events (logging there could deadlock on a stream lock that the
interrupted main thread holds); the watchdog thread does the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final

import structlog

from recon_job.errors import Interrupted

log = structlog.get_logger(__name__)

EV_SHUTDOWN_REQUESTED: Final = "shutdown.requested"
EV_SHUTDOWN_INTERRUPTING: Final = "shutdown.interrupting"
EV_BUDGET_EXCEEDED: Final = "shutdown.budget_exceeded"

#: Seconds of the budget kept, at most, for recording a step cut short before the exit.
CLEANUP_SECONDS: Final = 5.0


class Shutdown:
    """One process's stop request, its exit code and its budget (see the module docstring).

    ``stop`` is the event the run loop checks at its checkpoints (a new one by default).
    ``exit_now`` ends the process without cleanup (``os._exit``; tests replace it).
    """

    def __init__(
        self,
        budget: float,
        stop: threading.Event | None = None,
        *,
        exit_now: Callable[[int], None] = os._exit,
    ) -> None:
        #: Seconds from the stop request to the exit.
        self.budget = budget
        #: Set on the first signal (or :meth:`request`).
        self.stop = stop or threading.Event()
        #: 128 + the signal number once a signal stopped the process; 0 otherwise.
        self.exit_code = 0
        self._exit_now = exit_now
        self._signum: int | None = None
        self._requested = False
        self._wake = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._main_step = False
        self._on_stop: list[Callable[[float], None]] = []
        self._watchdog: threading.Thread | None = None

    def on_stop(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(deadline)`` (``time.monotonic()`` seconds) when a stop is requested.

        It runs in the watchdog thread, before the wait for the end: the daemon shuts its
        scheduler down there.
        """
        self._on_stop.append(callback)

    @contextlib.contextmanager
    def handle(self, *signals: signal.Signals) -> Iterator[Shutdown]:
        """While inside, ``signals`` request a stop; the previous handlers come back after.

        Call from the main thread. Leaving marks the process finished (:meth:`finished`).
        """
        self._start_watchdog()  # now, not in the signal handler
        previous = {signum: signal.signal(signum, self._on_signal) for signum in signals}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.finished()

    def request(self, signum: int | None = None) -> None:
        """Stop: the running step stops at its next checkpoint; the budget starts.

        ``signum`` sets the exit code (128 + it); None stops with exit code 0. A second request
        with a signal exits at once. Safe in a signal handler: it only sets events.
        """
        if self._requested:
            if signum is not None:
                # A second signal: the operator wants out now; the next run reaps the row.
                self._exit_now(128 + signum)
            return
        self._requested = True
        self._signum = signum
        self.exit_code = 128 + signum if signum is not None else 0
        self.stop.set()
        self._start_watchdog()
        self._wake.set()

    def finished(self) -> None:
        """The process is done: the watchdog stands down."""
        self._done.set()
        self._wake.set()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A step in the main thread that the end of the budget may cut short (``Interrupted``).

        Elsewhere than in the main thread, the step is only stopped at its checkpoints.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        with self._lock:
            self._main_step = True
        try:
            yield
        finally:
            with self._lock:
                self._main_step = False
            signal.signal(signal.SIGALRM, previous)

    # -- internals ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._main_step:
            raise Interrupted("interrupted: the shutdown budget ran out mid-step")

    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="recon-shutdown", daemon=True
            )
            self._watchdog.start()

    def _watch(self) -> None:
        self._wake.wait()
        if self._done.is_set():
            return
        deadline = time.monotonic() + self.budget
        name = signal.Signals(self._signum).name if self._signum is not None else None
        log.warning(EV_SHUTDOWN_REQUESTED, signal=name, budget_s=self.budget)
        for callback in self._on_stop:
            callback(deadline)
        cleanup = min(CLEANUP_SECONDS, self.budget / 5)
        if self._done.wait(max(0.0, deadline - cleanup - time.monotonic())):
            return
        self._interrupt_main_step()
        if self._done.wait(max(0.0, deadline - time.monotonic())):
            return
        log.error(EV_BUDGET_EXCEEDED, budget_s=self.budget)
        sys.stderr.flush()
        # Past the budget the orchestrator's SIGKILL is close: exit now, on our terms.
        self._exit_now(self.exit_code or 1)

    def _interrupt_main_step(self) -> None:
        with self._lock:
            if not self._main_step:
                return
            log.warning(EV_SHUTDOWN_INTERRUPTING, budget_s=self.budget)
            main = threading.main_thread().ident
            if main is not None:
                # A signal to the main thread also breaks a blocking read (EINTR), so a hung
                # fetch ends too; its handler raises Interrupted there.
                signal.pthread_kill(main, signal.SIGALRM)
