"""Whether the history database answers, looked at read-only: for ``check-config --connect``.

Unlike opening a :class:`~recon_job.store.HistoryStore`, a probe never creates the database,
never upgrades its schema and writes nothing: a SQLite file is opened ``mode=ro`` (and never
switched to WAL), a PostgreSQL session is made read-only. It reads the schema revision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from recon_job.database import display_url
from recon_job.errors import StoreError
from recon_job.store.engine import parse_url, to_store_error


@dataclass(frozen=True)
class HistoryProbe:
    """What a probe of the history database found."""

    #: The database URL, password hidden.
    url: str
    #: False: a SQLite file that does not exist yet (the first run creates it).
    exists: bool
    #: The schema revision recorded in it; None when it holds no recon-job history yet.
    revision: str | None
    #: The newest revision this recon-job knows (the first run upgrades an older one to it).
    head: str

    @property
    def summary(self) -> str:
        """One line: what the next run will find."""
        if not self.exists:
            return "no database yet; the first run creates it"
        if self.revision is None:
            return "answers; holds no recon-job history yet (the first run creates the tables)"
        if self.revision == self.head:
            return f"answers; schema revision {self.revision} (current)"
        return f"answers; schema revision {self.revision} (the next run upgrades it to {self.head})"


def probe_history(url: str) -> HistoryProbe:
    """Connect to the history database at ``url`` read-only and read its schema revision.

    Raises :class:`~recon_job.errors.StoreError`: transient when the server does not answer,
    permanent when it refuses (login, no such database), the URL or driver is unusable, or the
    schema was written by a newer recon-job.
    """
    # Alembic is imported here, not at the top: the run path imports this package, and needs
    # Alembic only to create or upgrade a schema (see HistoryStore).
    from alembic.runtime.migration import MigrationContext

    from recon_job.store import migrate

    parsed = parse_url(url)
    shown = display_url(parsed)
    head = migrate.head_revision()
    if parsed.get_backend_name() == "sqlite":
        read_only = _read_only_sqlite(parsed)
        if read_only is None:
            return HistoryProbe(shown, exists=False, revision=None, head=head)
        parsed = read_only
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = 10
    try:
        engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    except (exc.ArgumentError, ImportError) as e:
        raise StoreError(
            f"cannot use history database {shown}: {type(e).__name__}: {e}",
            permanent=True,
            reason="store_bad_url",
        ) from e
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            revision = MigrationContext.configure(conn).get_current_revision()
    except exc.SQLAlchemyError as e:
        raise to_store_error(e, url=parsed, action="connect") from e
    finally:
        engine.dispose()
    if revision is not None and revision != head:
        _known_or_raise(revision, head)
    return HistoryProbe(shown, exists=True, revision=revision, head=head)


def _known_or_raise(revision: str, head: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from recon_job.store import migrate

    try:
        ScriptDirectory.from_config(migrate.alembic_config()).get_revision(revision)
    except CommandError as e:
        raise StoreError(
            f"the history database is at schema revision {revision!r}, which this recon-job "
            f"does not know (its newest is {head!r}): it was written by a newer recon-job",
            permanent=True,
            reason="store_schema",
        ) from e


def _read_only_sqlite(url: URL) -> URL | None:
    """The URL of a SQLite file opened read-only; None when the file does not exist."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if not path.exists():
        _creatable_or_raise(path)
        return None
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


def _creatable_or_raise(path: Path) -> None:
    """A permanent StoreError unless a run could create the SQLite file ``path``."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        problem = f"{ancestor} is not a directory"
    elif not os.access(ancestor, os.W_OK | os.X_OK):
        problem = f"the directory {ancestor} is not writable"
    else:
        return
    raise StoreError(
        f"there is no history database at {path}, and a run cannot create it: {problem}; "
        "check RECON_DATABASE_URL",
        permanent=True,
        reason="store_path",
    )
