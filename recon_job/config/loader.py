"""Loading the settings: every problem at once, and the settings as far as they are valid.

:func:`read_settings` reads the TOML file, the documented variables (and their ``_FILE``
secrets) and the generic ``RECON_<SECTION>__<KEY>`` variables, and validates them. It never
raises: a file that cannot be read, a variable pydantic-settings cannot parse (a section
variable that is not JSON, ``RECON_EMAIL=finance@example.com``) and every invalid value each
become one line of :attr:`Loaded.problems`. When there are problems it also keeps the *usable*
settings — each invalid value left at its default, its section marked unknown — so that
``recon-job check-config`` can still check the files and URLs of the valid sections: one bad
setting never hides the others. :func:`load_settings` is the strict form every command uses.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from recon_job.config.load import (
    ENV_VARS,
    describe_error,
    documented_env,
    read_toml,
    resolve_source_urls,
)
from recon_job.config.settings import Settings, build_settings
from recon_job.errors import ConfigError

#: The prefix and nesting of the generic variables (``Settings.model_config``).
PREFIX = "RECON_"
NESTING = "__"
#: Rounds of leaving invalid values out before giving up on usable settings.
SALVAGE_ROUNDS = 4

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Loaded:
    """What :func:`read_settings` found."""

    #: The settings, when there is no problem at all.
    settings: Settings | None
    #: Every problem, one line each, secrets never shown.
    problems: list[str] = field(default_factory=list)
    #: With problems: the settings with every invalid value left at its default (None when
    #: even that fails, or the config file could not be read), for the checks of the rest.
    usable: Settings | None = None
    #: The sections whose values are not known (a value in them was invalid or unreadable):
    #: the checks of those sections are skipped on :attr:`usable`.
    unknown: frozenset[str] = frozenset()


def load_settings(
    config_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load and validate the settings; raise one ``ConfigError`` that lists every problem.

    ``config_file`` defaults to ``RECON_CONFIG`` (no file when unset). ``environ`` replaces
    ``os.environ`` (for tests and embedding).
    """
    loaded = read_settings(config_file, environ=environ)
    if loaded.settings is None:
        raise ConfigError(loaded.problems or ["invalid configuration"])
    return loaded.settings


def read_settings(
    config_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Loaded:
    """Every problem of the settings, and the settings (or the usable part of them)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    problems: list[str] = []
    unknown: set[str] = set()
    data: dict[str, Any] = {}
    path = config_file if config_file is not None else env.get("RECON_CONFIG") or None
    file_unread = False
    if path is not None:
        data, file_problems = read_toml(Path(path))
        problems.extend(file_problems)
        file_unread = bool(file_problems) and not data
    url_problems = resolve_source_urls(data, env)
    problems.extend(url_problems)
    if url_problems:
        unknown.add("sources")
    documented = documented_env(env)
    problems[:0] = documented.problems
    unknown |= documented.broken
    for section, values in documented.data.items():
        existing = data.get(section)
        data[section] = {**existing, **values} if isinstance(existing, dict) else values
    # A documented variable is never also read as a generic one: RECON_FAMILIES is the list of
    # openai.families, not the [families] section.
    generic, generic_problems = _parsable({k: v for k, v in env.items() if k not in ENV_VARS})
    problems.extend(generic_problems.values())
    problems.extend(_unknown_sections(env))
    unknown |= {_section_of(name) for name in generic_problems}
    key_variable = _key_variable(env, documented.origins.get(("openai", "admin_key")))
    try:
        settings = build_settings(data, generic, key_variable=key_variable)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        problems.extend(describe_error(err) for err in errors)
        usable, more = _salvage(data, generic, errors, key_variable)
        unknown |= more
        if file_unread:
            usable = None
        return Loaded(None, problems, usable, frozenset(unknown))
    if problems:
        return Loaded(None, problems, None if file_unread else settings, frozenset(unknown))
    return Loaded(settings)


# --- generic variables pydantic-settings cannot parse ---------------------------------------


def _generic_parts(name: str) -> list[str] | None:
    """``RECON_EMAIL__RECIPIENTS`` -> ``["email", "recipients"]``; None: not a setting's name."""
    parts = _prefixed_parts(name)
    return parts if parts and parts[0] in Settings.model_fields else None


def _prefixed_parts(name: str) -> list[str] | None:
    """``RECON_X__Y`` -> ``["x", "y"]``, whatever ``x`` is; None without the prefix."""
    lower = name.lower()
    return lower[len(PREFIX) :].split(NESTING) if lower.startswith(PREFIX.lower()) else None


def _unknown_sections(environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``RECON_<SECTION>__<KEY>`` variable whose section does not exist: a
    misspelt section (``RECON_RECONCIL__TOKEN_FLOOR``) would otherwise set nothing, silently.
    (A misspelt key in a real section is refused by the section itself.)"""
    sections = sorted(Settings.model_fields)
    found = []
    for name in sorted(environ):
        parts = _prefixed_parts(name)
        if parts is None or len(parts) < 2 or parts[0] in sections:
            continue
        section = parts[0]
        close = difflib.get_close_matches(section, sections, n=1)
        hint = f" (did you mean {PREFIX}{close[0].upper()}{NESTING}…?)" if close else ""
        found.append(
            f"{name}: there is no [{section}] section{hint}; the sections are {', '.join(sections)}"
        )
    return found


def _section_of(name: str) -> str:
    parts = _generic_parts(name)
    return parts[0] if parts else name


def _parsable(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``environ`` without the generic variables pydantic-settings cannot parse, and a problem
    for each of those (by name).

    pydantic-settings parses a variable holding a section or a list as JSON, and raises
    ``SettingsError`` naming only the section when that fails; each candidate is tried on its
    own to find the variable, whose value is never shown (it may be a secret).
    """
    env = dict(environ)
    try:
        build_settings({}, env)
    except SettingsError:
        pass
    except ValidationError:
        return env, {}  # parsed: what is wrong with the values is reported by the caller
    else:
        return env, {}
    found: dict[str, str] = {}
    for name in sorted(env):
        parts = _generic_parts(name)
        if parts is None:
            continue
        try:
            build_settings({}, {name: env[name]})
        except SettingsError:
            found[name] = _not_json(name, parts)
        except ValidationError:
            pass
    return {k: v for k, v in env.items() if k not in found}, found


def _field_type(parts: Sequence[str]) -> Any:
    """The annotation of the setting ``parts`` names (None when there is no such setting)."""
    model: Any = Settings
    annotation: Any = None
    for part in parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        annotation = info.annotation
        model = next((a for a in (annotation, *get_args(annotation)) if isinstance(a, type)), None)
    return annotation


def _json_form(annotation: Any) -> str:
    """The JSON a variable of this type must hold, with an example."""
    origin = get_origin(annotation)
    if origin in (tuple, list, set, frozenset):
        return 'a JSON list, e.g. \'["first", "second"]\''
    if origin is dict:
        return 'a JSON object, e.g. \'{"name": "value"}\''
    return "JSON"


def _not_json(name: str, parts: list[str]) -> str:
    """Why ``name`` was refused and what it must look like instead."""
    section = parts[0]
    twins = [var for var, (sec, key, _) in ENV_VARS.items() if sec == section]
    if len(parts) == 1 and section == "sources":
        return (
            f"{name} is not JSON: it must hold every [[sources]] table as a JSON list, e.g. "
            f'{name}=\'[{{"kind": "ndjson", "name": "app", "paths": ["logs/*.ndjson"]}}]\''
            "; or list the sources in the config file"
        )
    if len(parts) == 1:
        model = Settings.model_fields[section].annotation
        keys = ", ".join(model.model_fields) if isinstance(model, type) else ""
        documented = f", or the documented {', '.join(twins)}" if twins else ""
        return (
            f"{name} is not JSON: a variable named after the [{section}] section must hold its "
            f'settings as a JSON object, e.g. {name}=\'{{"key": "value"}}\' (keys: {keys}). '
            f"To set one setting, use {name}{NESTING}<KEY>{documented}"
        )
    where = ".".join(parts)
    twin = [var for var, (sec, key, _) in ENV_VARS.items() if (sec, key) == (section, parts[1])]
    hint = f"; or use {twin[0]} (comma-separated)" if twin and len(parts) == 2 else ""
    return f"{name} is not JSON: {where} must be given as {_json_form(_field_type(parts))}{hint}"


def _key_variable(environ: Mapping[str, str], documented: str | None) -> str | None:
    """The variable the admin key is read from; a generic variable outranks the documented."""
    for name, value in environ.items():
        parts = _generic_parts(name)
        if value and parts == ["openai", "admin_key"]:
            return name
        if value and parts == ["openai"] and "admin_key" in value:
            return name
    return documented


# --- the usable part of invalid settings ----------------------------------------------------


def _salvage(
    data: dict[str, Any],
    environ: dict[str, str],
    errors: list[Any],
    key_variable: str | None,
) -> tuple[Settings | None, set[str]]:
    """The settings with each invalid value left out, and the sections they were in.

    A value left out takes its default; a required one left out takes its parent with it (a
    ``[[sources]]`` table missing its table name is left out whole). None when the errors are
    not about one place, or they do not go away.
    """
    unknown: set[str] = set()
    for _ in range(SALVAGE_ROUNDS):
        # Deepest and last first, so leaving out a list item never shifts one still to do.
        places = sorted({_place(e) for e in errors}, key=_sort_key, reverse=True)
        if any(not loc for loc in places):
            return None, unknown
        for loc in places:
            unknown.add(str(loc[0]))
            _drop(data, loc)
            environ = {k: v for k, v in environ.items() if not _names(k, loc)}
        try:
            return build_settings(data, environ, key_variable=key_variable), unknown
        except ValidationError as e:
            errors = e.errors(include_url=False)
        except SettingsError:
            return None, unknown
    return None, unknown


def _place(error: Mapping[str, Any]) -> Loc:
    loc: Loc = tuple(error.get("loc", ()))
    return loc[:-1] if error.get("type") == "missing" else loc


def _sort_key(loc: Loc) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in loc)


def _names(variable: str, loc: Loc) -> bool:
    """True when the generic ``variable`` sets ``loc``, a part of it, or a section around it."""
    parts = _generic_parts(variable)
    if parts is None:
        return False
    where = [str(p) for p in loc]
    shorter = min(len(parts), len(where))
    return parts[:shorter] == where[:shorter]


def _drop(data: dict[str, Any], loc: Loc) -> None:
    """Remove the value at ``loc`` from ``data``, when it came from there (not a variable)."""
    container: Any = data
    parent: Any = None
    last: str | int | None = None
    for part in loc:
        if isinstance(container, dict) and part not in container and part == container.get("kind"):
            continue  # the tag of a [[sources]] table in pydantic's location, not a key
        listed = isinstance(container, list) and isinstance(part, int) and part < len(container)
        if not (listed or (isinstance(container, dict) and part in container)):
            return
        parent, last, container = container, part, container[part]
    if parent is not None:
        del parent[last]
