"""Reading the raw settings: the documented environment variables, the TOML file, secrets.

The input side of :func:`recon_job.config.loader.load_settings`: :data:`ENV_VARS` and their
``<NAME>_FILE`` twins, the TOML file with secrets refused, the ``url_env`` of SQL sources,
pydantic's errors turned into readable lines, and :func:`secret_values` for the log redactor.
Every file (settings, secret, price file) is read by :func:`read_text`: regular files only (a
FIFO or ``/dev/zero`` would hang or never end), at most 1 MiB, UTF-8 or a problem naming the
file, never a secret's bytes. Everything here works on plain dicts and models, so it imports
nothing of :mod:`recon_job.config.settings`.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

#: The pydantic error type of recon-job's own rules: the message is final, shown as written.
RULE_ERROR = "recon_rule"
#: One problem a validator found: where (relative to what it validates), what, and the value.
Problem = tuple[tuple[str | int, ...], str, Any]

#: The documented environment variables: name -> (section, key, comma-separated list?).
ENV_VARS: dict[str, tuple[str, str, bool]] = {
    "OPENAI_BASE_URL": ("openai", "base_url", False),
    "OPENAI_ADMIN_KEY": ("openai", "admin_key", False),
    "RECON_PROJECT_IDS": ("openai", "project_ids", True),
    "RECON_API_KEY_IDS": ("openai", "api_key_ids", True),
    "RECON_GROUP_BY": ("openai", "group_by", True),
    "RECON_FAMILIES": ("openai", "families", True),
    "RECON_LOG_PATHS": ("logs", "paths", True),
    "RECON_LOG_TIMEZONE": ("logs", "timezone", False),
    "RECON_PRICING_FILE": ("pricing", "file", False),
    "RECON_THRESHOLD_PCT": ("reconcile", "threshold_pct", False),
    "RECON_SETTLE_HOURS": ("reconcile", "settle_hours", False),
    "RECON_DATABASE_URL": ("history", "database_url", False),
    "RECON_LOG_LEVEL": ("logging", "level", False),
    "RECON_LOG_FORMAT": ("logging", "format", False),
    "RECON_SMTP_HOST": ("email", "host", False),
    "RECON_SMTP_PORT": ("email", "port", False),
    "RECON_SMTP_USERNAME": ("email", "username", False),
    "RECON_SMTP_PASSWORD": ("email", "password", False),
    "RECON_SMTP_SECURITY": ("email", "security", False),
    "RECON_EMAIL_FROM": ("email", "sender", False),
    "RECON_EMAIL_TO": ("email", "recipients", True),
    "RECON_SLACK_WEBHOOK_URL": ("slack", "webhook_url", False),
    "RECON_WEBHOOK_URL": ("webhook", "url", False),
    "RECON_WEBHOOK_SECRET": ("webhook", "secret", False),
    "RECON_TEMPLATES_DIR": ("alerts", "templates_dir", False),
    "RECON_PING_URL": ("daemon", "ping_url", False),
    "RECON_PUSHGATEWAY_URL": ("daemon", "pushgateway_url", False),
    "RECON_DASHBOARD_KEY": ("web", "dashboard_key", False),
}
#: Read when ``OPENAI_ADMIN_KEY`` (and its ``_FILE``) is unset, as the official SDK does not.
FALLBACK_KEY_VAR = "OPENAI_API_KEY"
#: The most a settings, secret or price file may hold: far more than any of them needs, and a
#: bound on what a mistaken path (a log file, a disk image) makes recon-job read.
MAX_FILE_BYTES = 1 << 20
#: What a file that is not a regular file is, by its ``stat`` mode, for messages.
_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)
#: Settings that are secrets: never accepted from the TOML file (a database URL only when it
#: carries a password).
SECRET_KEYS = {
    ("openai", "admin_key"),
    ("history", "database_url"),
    ("email", "password"),
    ("slack", "webhook_url"),
    ("webhook", "url"),
    ("webhook", "secret"),
    ("daemon", "ping_url"),
    ("web", "dashboard_key"),
}


class UnusableFile(ValueError):
    """A settings, secret or price file that cannot be used; the message says why, to put in
    parentheses (``No such file or directory``, ``it is a FIFO (named pipe), not a regular
    file``). It never quotes what the file holds: that may be a secret.
    """


def read_bytes(path: Path) -> bytes:
    """The bytes of the regular file ``path``, at most :data:`MAX_FILE_BYTES` of them.

    A FIFO, a device (``/dev/zero``), a socket or a directory is refused before anything is
    read: reading one would block forever or never end. Raises :class:`UnusableFile`.
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise block until one appears;
        # it changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UnusableFile(_not_regular(path) or e.strerror or str(e)) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise UnusableFile(f"it is {kind}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise UnusableFile(e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise UnusableFile(f"it is larger than {MAX_FILE_BYTES // (1 << 20)} MiB")
    return data


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((text for test, text in _FILE_KINDS if test(mode)), "not a file")


def _not_regular(path: Path) -> str | None:
    """Why ``path`` could not be opened when it is no regular file (a socket cannot be)."""
    try:
        kind = _kind(os.stat(path).st_mode)
    except OSError:
        return None
    return None if kind is None else f"it is {kind}, not a regular file"


def read_text(path: Path, *, secret: bool = False) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`read_bytes`).

    Raises :class:`UnusableFile`; for bytes that are not UTF-8 it names the line, except in
    a ``secret`` file, whose bytes and their positions are never shown.
    """
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if secret:
            raise UnusableFile("it is not UTF-8 text") from None
        line = data[: e.start].count(b"\n") + 1
        raise UnusableFile(
            f"it is not UTF-8 text: line {line} holds bytes that are not UTF-8; save it as UTF-8"
        ) from None


@dataclass
class EnvValues:
    """What the documented environment variables set, and what was wrong with them."""

    #: The settings, in the nested shape: section -> key -> value.
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Problems reading them (a secret file that cannot be read, a value set twice).
    problems: list[str] = field(default_factory=list)
    #: The sections a problem is about: their values are not known.
    broken: set[str] = field(default_factory=set)
    #: (section, key) -> the variable its value came from (``OPENAI_API_KEY_FILE`` ...).
    origins: dict[tuple[str, str], str] = field(default_factory=dict)


def _read_variable(
    environ: Mapping[str, str], name: str, found: EnvValues
) -> tuple[str, str] | None:
    """``name`` or the file ``name_FILE`` names: (the value, the variable it came from)."""
    value = environ.get(name)
    file_name = environ.get(f"{name}_FILE")
    if value and file_name:
        # Silently preferring one would hide a mistake, e.g. an image's default
        # RECON_DATABASE_URL shadowing the RECON_DATABASE_URL_FILE a deployment mounts.
        found.problems.append(f"both {name} and {name}_FILE are set; set only one of them")
        return None
    if value:
        return value, name
    if file_name:
        try:
            return read_text(Path(file_name), secret=True).strip(), f"{name}_FILE"
        except UnusableFile as e:
            found.problems.append(
                f"{name}_FILE: cannot read {file_name!r} ({e}); point it at a regular file "
                "holding the value as UTF-8 text"
            )
    return None


def documented_env(environ: Mapping[str, str]) -> EnvValues:
    """Read :data:`ENV_VARS` and their ``_FILE`` twins into the nested settings shape."""
    found = EnvValues()
    for name, (section, key, is_list) in ENV_VARS.items():
        before = len(found.problems)
        read = _read_variable(environ, name, found)
        if read is None and name == "OPENAI_ADMIN_KEY" and len(found.problems) == before:
            read = _read_variable(environ, FALLBACK_KEY_VAR, found)
        if len(found.problems) > before:
            found.broken.add(section)
        if read is None:
            continue
        value, origin = read
        parsed: Any = [v.strip() for v in value.split(",") if v.strip()] if is_list else value
        found.data.setdefault(section, {})[key] = parsed
        found.origins[(section, key)] = origin
    return found


def resolve_source_urls(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Fill each SQL source's ``url`` from the variable its ``url_env`` names (or its _FILE)."""
    problems: list[str] = []
    sources = data.get("sources")
    if not isinstance(sources, list):
        return problems
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("url_env"), str):
            continue
        name = source["url_env"]
        value = environ.get(name)
        file_name = environ.get(f"{name}_FILE")
        if not value and file_name:
            try:
                value = read_text(Path(file_name), secret=True).strip()
            except UnusableFile as e:
                problems.append(f"sources.{index}: cannot read {name}_FILE {file_name!r} ({e})")
        if value:
            source["url"] = value
    return problems


def has_password(url: str) -> bool:
    """True when ``url`` carries a password (``scheme://user:password@host``)."""
    netloc = urlsplit(url).netloc
    return "@" in netloc and ":" in netloc.split("@", 1)[0]


def read_toml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The TOML file as a dict, with secrets removed, and the problems found reading it."""
    problems: list[str] = []
    if not path.exists():
        return {}, [f"config file {str(path)!r} does not exist; check --config or RECON_CONFIG"]
    try:
        data = tomllib.loads(read_text(path))
    except UnusableFile as e:
        return {}, [f"config file {str(path)!r} cannot be read: {e}"]
    except tomllib.TOMLDecodeError as e:
        return {}, [f"config file {str(path)!r} is not valid TOML: {e}"]
    for index, source in enumerate(data.get("sources") or []):
        if isinstance(source, dict) and has_password(str(source.get("url", ""))):
            problems.append(
                f"{path}: sources.{index}.url carries a password; put the URL in an environment "
                "variable and name it with url_env instead"
            )
            del source["url"]
    for section, key in sorted(SECRET_KEYS):
        if isinstance(data.get(section), dict) and key in data[section]:
            if key == "database_url" and not has_password(str(data[section][key])):
                continue
            problems.append(
                f"{path}: [{section}] {key} is a secret and is not read from the config file; "
                "set it in the environment or a *_FILE secret instead (see README)"
            )
            del data[section][key]
    return data, problems


def rule(message: str) -> PydanticCustomError:
    """A problem found by one of recon-job's own rules, for pydantic, its message as written."""
    # The message goes in as context, so braces in it ("{ input = ... }") are never a template.
    return PydanticCustomError(RULE_ERROR, "{message}", {"message": message})


def _details(problems: Iterable[Problem]) -> list[InitErrorDetails]:
    return [InitErrorDetails(type=rule(m), loc=loc, input=value) for loc, m, value in problems]


def rule_errors(title: str, problems: Iterable[Problem]) -> ValidationError:
    """Every problem a validator found, as one error to raise from inside the validator.

    pydantic-core merges a ``ValidationError`` raised by a validator into the model's own
    errors, each under its location (pydantic-core#510), so several problems of one setting are
    listed apart instead of the first hiding the rest.
    """
    return ValidationError.from_exception_data(title, _details(problems))


def with_problems(error: ValidationError, problems: Iterable[Problem]) -> ValidationError:
    """``error``'s problems and more, as one error to raise (pydantic has no public merge).

    For a wrap validator that checks the raw input too, so its findings are reported along with
    the problems of the parts rather than only once every part is valid.
    """
    details: list[InitErrorDetails] = []
    for found in error.errors():
        if found["type"] == RULE_ERROR:
            details.extend(_details([(found["loc"], found["msg"], found["input"])]))
            continue
        detail = InitErrorDetails(type=found["type"], loc=found["loc"], input=found["input"])
        if "ctx" in found:
            detail["ctx"] = found["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(error.title, [*details, *_details(problems)])


def _is_secret(loc: tuple[Any, ...]) -> bool:
    where = ".".join(str(p) for p in loc)
    # A SQL source's URL may carry a password even when it came from url_env.
    source_url = len(loc) > 1 and loc[0] == "sources" and loc[-1] == "url"
    return source_url or any(where.startswith(f"{s}.{k}") for s, k in SECRET_KEYS)


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as a line: ``section.key: what is wrong (got value)``, secrets hidden."""
    loc = tuple(error.get("loc", ()))
    where = ".".join(str(p) for p in loc) or "settings"
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    kind = error.get("type")
    if kind == "extra_forbidden":
        return f"{where}: unknown setting (see config/recon.example.toml for every key)"
    value = error.get("input")
    # Our own rules name the value where it helps; a secret's is never shown.
    shown = kind not in ("missing", RULE_ERROR) and isinstance(value, str | int | float | Decimal)
    if shown:
        return f"{where}: {message} (got {'<hidden>' if _is_secret(loc) else repr(value)})"
    return f"{where}: {message}"


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret in ``settings``, for the log redactor.

    The redactor also masks each credential part of a secret URL (its path, query, token-like
    segments: :func:`recon_job.logconfig.secret_parts`), since ``requests`` and receivers quote
    those alone ("Max retries exceeded with url: /services/T0/B0/XYZ").
    """
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secret_values(value))
        elif isinstance(value, tuple):
            found.extend(
                v for item in value if isinstance(item, BaseModel) for v in secret_values(item)
            )
    return [f for f in found if f]
