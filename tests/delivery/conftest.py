"""Fixtures of the delivery tests: the real SMTP and HTTP servers of the channel tests, and a
fresh history database on SQLite (and PostgreSQL when configured), shared from their packages."""

from __future__ import annotations

from tests.notify.conftest import _receiver, certs, httpserver, smtp_server
from tests.store.conftest import db_url, open_store, store

__all__ = ["_receiver", "certs", "db_url", "httpserver", "open_store", "smtp_server", "store"]
