"""Bring the history schema to the newest Alembic revision, safely under concurrency.

The migrations ship inside the package; no ``alembic.ini`` is needed. An up-to-date database is
detected with a plain read, so opening the store normally takes no write lock. Otherwise the
upgrade runs in one writer transaction: ``BEGIN IMMEDIATE`` on SQLite, and on PostgreSQL a
transaction-scoped advisory lock, because two transactions creating the same table there collide
instead of waiting. The second opener waits, then finds the schema at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

from recon_job.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: pg_advisory_xact_lock key serialising schema upgrades ("recon-job schema" as 63-bit number).
SCHEMA_LOCK_KEY = 0x7265636F6E534348


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision this version of recon-job knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision recorded in the database, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, writer: Engine) -> tuple[str | None, str]:
    """Upgrade the schema to head; return (revision before, revision after).

    ``writer`` is ``engine`` with the write execution option (``BEGIN IMMEDIATE`` on SQLite).
    Raises a permanent ``StoreError`` when the database is at a revision this version does not
    know (it was written by a newer recon-job). SQLAlchemy errors propagate to the caller.
    """
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    before = current_revision(engine)
    if before == head:
        return before, head
    if before is not None:
        _known_or_raise(script, before, head)
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as e:
            raise StoreError(
                f"cannot upgrade the history schema: {e}", permanent=True, reason="store_schema"
            ) from e
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after or head


def _known_or_raise(script: ScriptDirectory, revision: str, head: str) -> None:
    """Refuse a database whose revision is unknown here, rather than guess at its schema."""
    try:
        script.get_revision(revision)
    except CommandError as e:
        raise StoreError(
            f"the history database is at schema revision {revision!r}, which this recon-job "
            f"does not know (its newest is {head!r}): it was written by a newer recon-job; "
            "upgrade recon-job or point it at another database",
            permanent=True,
            reason="store_schema",
        ) from e
