"""What every SQLAlchemy user in recon-job shares: URLs, safe messages, the one error classifier.

Three parts of recon-job talk to a database — the history store, the SQL usage source and the
per-request write-back — and they must agree on what a URL means (``postgresql://`` is psycopg 3,
``mysql://`` is PyMySQL: the drivers recon-job ships), on how a URL or a driver error may be shown
(never with its password), and above all on which failures are worth retrying: the same app
database must not be "transient" for one command and "permanent" for another.

:func:`is_transient` is that one rule: the server could not be reached, was busy or broke the
connection (retry later: exit 3), or it refused us for good (bad login, no such database or table,
bad SQL: exit 2). It reads the SQLSTATE (PostgreSQL), the error number (MySQL/MariaDB) or the
message (SQLite, and psycopg while connecting, which carries no SQLSTATE).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Final
from urllib.parse import unquote, urlsplit

from sqlalchemy import exc
from sqlalchemy.engine import URL, make_url

#: The drivers recon-job ships extras for, used when a URL names only the database.
DEFAULT_DRIVERS: Final = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

# MySQL/MariaDB error codes worth retrying: cannot connect, unknown host, server gone, lost
# connection, too many connections, lock wait timeout, deadlock, query interrupted or timed out.
_MYSQL_TRANSIENT: Final = frozenset(
    {1040, 1053, 1205, 1213, 1317, 1927, 2002, 2003, 2005, 2006, 2013, 2055, 3024}
)
# PostgreSQL SQLSTATE classes worth retrying: connection, resources, operator intervention
# (shutdown, statement timeout), transaction rollback (deadlock, serialization).
_PG_TRANSIENT_CLASSES: Final = ("08", "53", "57", "40")
# Refusals without a SQLSTATE (psycopg while connecting) or on SQLite that retrying cannot fix.
_REFUSED: Final = re.compile(
    r"authentication failed|does not exist|no pg_hba\.conf entry|permission denied"
    r"|unable to open database file|file is not a database|readonly database"
    r"|no files found that match",  # DuckDB: a relation's glob matches no file
    re.IGNORECASE,
)
_SQLITE_BUSY: Final = ("database is locked", "database is busy")
_USERINFO: Final = re.compile(r"(://[^:/@\s]*):[^@\s]*@")
#: Query parameters of a database URL that hold a credential (``?password=``, Snowflake's and
#: psycopg's; ``sslpassword``; BigQuery's ``credentials_base64``; MotherDuck's
#: ``motherduck_token``; any ``...key``): masked like the password wherever a URL is shown.
_CREDENTIAL_WORDS: Final = "pass|pwd|secret|token|credential"
_SECRET_PARAM: Final = re.compile(rf"{_CREDENTIAL_WORDS}|key$", re.IGNORECASE)
_SECRET_QUERY: Final = re.compile(
    rf"([?&][^=&#\s]*(?:{_CREDENTIAL_WORDS}|key)[^=&#\s]*=)[^&#\s]*", re.IGNORECASE
)


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL, defaulting the driver to the one recon-job ships.

    Raises ValueError with a message that never repeats the URL (it may hold a password).
    """
    try:
        # urlsplit too: SQLAlchemy accepts a host like "[bad" that the driver then chokes on
        # with "Invalid IPv6 URL" at connect time.
        urlsplit(url)
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError) as e:
        raise ValueError(
            "not a database URL; expected e.g. sqlite:///path.db, "
            "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
        ) from e
    driver = DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def display_url(url: str | URL) -> str:
    """``url`` with its password and credential query parameters masked, for messages, logs
    and the history."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
        secret = {name: "***" for name in parsed.query if _SECRET_PARAM.search(name)}
        if secret:
            parsed = parsed.update_query_dict(secret)
        # Unquoted for reading (``duckdb:///:memory:``, not ``%3Amemory%3A``): every
        # credential, the only parts that must not be shown, is masked before.
        return unquote(parsed.render_as_string(hide_password=True))
    except (exc.ArgumentError, ValueError):
        return redact_url_text(url) if isinstance(url, str) else "<unparseable URL>"


def redact_url_text(text: str) -> str:
    """Hide the password and the credential query parameters of any URL written inside
    ``text`` (for URLs too broken to parse)."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\1:***@", text))


def first_line(error: BaseException | None, url: str | URL | None = None) -> str:
    """The first line of a driver error (drivers append SQL and hints), password masked.

    PyMySQL errors are ``(code, message)`` tuples: the message is shown.
    """
    if error is None:
        return "unknown database error"
    orig = getattr(error, "orig", None) or error
    args = orig.args
    text = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(orig)
    lines = text.strip().splitlines()
    line = " ".join(lines[0].split()) if lines else type(orig).__name__
    return redact(line, url) if url is not None else redact_url_text(line)


def redact(text: str, url: str | URL) -> str:
    """``text`` with ``url``'s password and credential query parameters (and any URL's
    userinfo password) masked."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (exc.ArgumentError, ValueError):
        return redact_url_text(text)
    secrets = [parsed.password] if parsed.password else []
    for name, value in parsed.query.items():
        if _SECRET_PARAM.search(name):
            secrets.extend([value] if isinstance(value, str) else value)
    for secret in sorted({str(s) for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact_url_text(text)


def is_transient(error: BaseException) -> bool:
    """True when retrying later can help (server down, busy, deadlock, dropped connection)."""
    if isinstance(error, exc.TimeoutError):  # the pool's: every connection is busy
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error)
    if isinstance(orig, sqlite3.Error):
        return any(marker in text for marker in _SQLITE_BUSY)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: (code, message)
        return args[0] in _MYSQL_TRANSIENT
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:  # psycopg, once connected
        return sqlstate.startswith(_PG_TRANSIENT_CLASSES)
    if _REFUSED.search(text):
        return False
    return isinstance(error, exc.OperationalError | exc.InterfaceError)


__all__ = [
    "DEFAULT_DRIVERS",
    "display_url",
    "first_line",
    "is_transient",
    "parse_url",
    "redact",
    "redact_url_text",
]
