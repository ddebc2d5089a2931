"""Fixtures of the run loop's tests: the real SMTP servers of the channel tests."""

from tests.notify.conftest import certs, smtp_server  # noqa: F401
