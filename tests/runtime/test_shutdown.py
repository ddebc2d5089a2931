"""The SIGTERM budget: stop at a checkpoint, cut a stuck step short, exit on our terms.

The signals are real (sent to this process); the process exit is recorded instead of done.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from recon_job.errors import Interrupted
from recon_job.runtime import Shutdown


class Exits:
    """Records ``os._exit`` calls instead of making them."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_sigterm_sets_the_stop_event_and_the_exit_code_then_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    exits = Exits()
    shutdown = Shutdown(5.0, exit_now=exits)
    with shutdown.handle(signal.SIGTERM):
        os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.stop.wait(5)
    assert shutdown.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before
    assert exits.codes == []  # finished within the budget


def test_a_second_signal_exits_at_once_with_its_code() -> None:
    exits = Exits()
    shutdown = Shutdown(5.0, exit_now=exits)
    shutdown.request(signal.SIGINT)
    assert shutdown.exit_code == 130
    shutdown.request(signal.SIGINT)
    assert exits.codes == [130]
    shutdown.finished()


def test_a_stop_without_a_signal_exits_0() -> None:
    shutdown = Shutdown(5.0, exit_now=Exits())
    shutdown.request()
    assert shutdown.stop.is_set()
    assert shutdown.exit_code == 0
    shutdown.finished()


def test_a_main_thread_step_past_its_checkpoints_is_interrupted_then_the_process_exits() -> None:
    exits = Exits()
    shutdown = Shutdown(1.0, exit_now=exits)  # the step is cut short 0.2 s before the end
    with shutdown.interruptible():
        shutdown.request(signal.SIGTERM)
        began = time.monotonic()
        with pytest.raises(Interrupted, match="shutdown budget ran out"):
            time.sleep(10)  # a hung fetch: no checkpoint in sight
        assert 0.5 < time.monotonic() - began < 5  # at the budget's end, not the sleep's
    # Whatever cleanup follows must end within the budget; here it does not.
    assert exits.called.wait(5)
    assert exits.codes == [143]


def test_the_watchdog_stands_down_once_the_process_has_finished() -> None:
    exits = Exits()
    shutdown = Shutdown(0.3, exit_now=exits)
    shutdown.on_stop(lambda deadline: shutdown.finished())  # e.g. the scheduler stopped at once
    shutdown.request(signal.SIGTERM)
    time.sleep(0.6)
    assert exits.codes == []


def test_a_step_outside_the_main_thread_is_never_signalled() -> None:
    exits = Exits()
    shutdown = Shutdown(0.5, exit_now=exits)
    outcome: list[str] = []

    def step() -> None:
        with shutdown.interruptible():  # no-op here: only checkpoints can stop this thread
            time.sleep(1.0)
        outcome.append("ran to its end")

    worker = threading.Thread(target=step)
    worker.start()
    shutdown.request(signal.SIGTERM)
    assert exits.called.wait(5)  # the budget ran out: the process would end here
    worker.join()
    assert outcome == ["ran to its end"]
    assert exits.codes == [143]
