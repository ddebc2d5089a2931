"""The price file: its shape as pydantic models, the bundled table, and a user's file over it.

:class:`PriceFile` is the file (documented in the header of ``recon_job/data/pricing.toml``):
``batch_discount``, ``models`` — each model a list of price periods
(:class:`~recon_job.config.price_rates.PeriodTable`: an ``effective`` day, rates of every class
and optional ``batch``/``flex``/``priority`` tables) — and ``snapshots``, the dated snapshots
billed at another model's prices (``"gpt-4o-2024-08-06" = "gpt-4o"``; any other snapshot needs
entries of its own).
Unknown keys are refused everywhere. Amounts are read via their text — ``Decimal(str(x))`` for a
TOML number, never float arithmetic — and negative, NaN or infinite ones are refused. Every
problem is reported at once, each with its path (``models.gpt-4o[1].priority.output``).

:func:`load_price_table` reads the bundled table (``importlib.resources``) and a user's file, and
builds the pure :class:`~recon_job.pricing.PriceTable`.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from recon_job.config.load import (
    RULE_ERROR,
    Problem,
    UnusableFile,
    read_text,
    rule,
    rule_errors,
    with_problems,
)
from recon_job.config.price_rates import (
    LongContextTable,
    PeriodTable,
    RatesTable,
    Table,
    amount,
    effective_day,
)
from recon_job.errors import ConfigError
from recon_job.modelnames import ModelNamer, snapshot_base
from recon_job.pricing import DEFAULT_BATCH_DISCOUNT, PriceEntry, PriceTable

#: Where the bundled table lives inside the package, as named in messages.
BUNDLED_SOURCE = "recon_job/data/pricing.toml"


def _discount(value: object) -> Decimal:
    discount = amount(value)
    if not 0 < discount <= 1:
        raise rule(f"{discount} must be above 0 and at most 1 (0.5 = half price)")
    return discount


def _model_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise rule(f"{value!r} is not a model name")
    return value.strip()


def _one_or_more(value: object) -> object:
    # [models."x"] written instead of [[models."x"]]: one period.
    return [value] if isinstance(value, Mapping) else value


Discount = Annotated[Decimal, PlainValidator(_discount)]
ModelName = Annotated[str, PlainValidator(_model_name)]
Periods = Annotated[list[PeriodTable], BeforeValidator(_one_or_more), Field(min_length=1)]


class PriceFile(Table):
    """A price file: the bundled table, or a user's file whose models replace the bundled ones."""

    #: Multiplier for the default batch price (0 < discount <= 1); unset: 0.5, or the bundled.
    batch_discount: Discount | None = None
    #: Price periods per model name, oldest first, effective days strictly increasing.
    models: dict[str, Periods] = Field(default_factory=dict)
    #: Dated snapshots billed at another model's prices: snapshot name -> that model's name,
    #: e.g. ``"gpt-4o-2024-08-06" = "gpt-4o"``. A snapshot listed nowhere is unpriced.
    snapshots: dict[str, ModelName] = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _check_order(cls, data: Any, handler: ModelWrapValidatorHandler[PriceFile]) -> PriceFile:
        # Read from the raw data, so the order is checked even for periods with other problems
        # and every problem is reported at once.
        order = _order_problems(data) + _snapshot_problems(data)
        try:
            parsed = handler(data)
        except ValidationError as e:
            raise with_problems(e, order) from None
        if order:
            raise rule_errors(cls.__name__, order)
        return parsed

    def entries(self) -> dict[str, tuple[PriceEntry, ...]]:
        """The price periods per model, for the price table."""
        return {name: tuple(p.entry() for p in periods) for name, periods in self.models.items()}


def _snapshot_problems(data: Any) -> list[Problem]:
    """A ``snapshots`` entry that is no dated snapshot of its model, or also has entries."""
    snapshots = data.get("snapshots") if isinstance(data, Mapping) else None
    if not isinstance(snapshots, Mapping):
        return []
    models = data.get("models")
    own = set(models) if isinstance(models, Mapping) else set()
    found: list[Problem] = []
    for name, target in snapshots.items():
        if not isinstance(target, str):
            continue  # reported by the value's own validation
        where, model = ("snapshots", str(name)), target.strip()
        if snapshot_base(str(name)) != model:
            found.append(
                (
                    where,
                    f"{name!r} is not a dated snapshot of {model!r}: list a snapshot as "
                    f'"{model}-YYYY-MM-DD" = "{model}"',
                    target,
                )
            )
        elif name in own:
            found.append(
                (
                    where,
                    f'{name!r} also has [[models."{name}"]] entries: a snapshot is priced at '
                    "its own entries or shares another model's, not both",
                    target,
                )
            )
    return found


def _order_problems(data: Any) -> list[Problem]:
    models = data.get("models") if isinstance(data, Mapping) else None
    if not isinstance(models, Mapping):
        return []
    return [
        problem
        for name, periods in models.items()
        if isinstance(periods, list)
        for problem in _period_order(str(name), periods)
    ]


def _period_order(name: str, periods: list[Any]) -> list[Problem]:
    found: list[Problem] = []
    previous: date | None = None
    for index, raw in enumerate(periods):
        try:
            day = effective_day(raw.get("effective") if isinstance(raw, Mapping) else None)
        except PydanticCustomError:
            continue  # reported by the period's own validation
        if previous is not None and day <= previous:
            message = (
                f"{day} is not after the previous entry's {previous}; "
                "list price periods oldest first, one per day"
            )
            found.append((("models", name, index, "effective"), message, day))
        previous = day
    return found


# What a problem pydantic reports itself means here, by the depth of its location:
# 1 a top-level key, 2 a model's list, 3 a period, 4 a period's key, 5 a tier table's key.
_EXPECTED = {
    1: " or ".join(PriceFile.model_fields),
    4: "one of " + ", ".join(PeriodTable.model_fields),
    5: "one of " + ", ".join(RatesTable.model_fields),
}
_EXPECTED_LONG = "one of " + ", ".join(LongContextTable.model_fields)
_NOT_A_TABLE = {
    1: 'must be a table of [[models."NAME"]] entries',
    3: "must be a table with effective and rates like input, cached_input, output",
    4: "must be a table like { input = ..., output = ... }",
}
_NOT_A_LONG_TABLE = "must be a table like { threshold = 272000, input = ..., output = ... }"
_MISSING = {
    "effective": "missing (the first UTC day of this price, e.g. 2025-06-10)",
    "threshold": "missing (input tokens above which the long-context rates apply)",
}


def _message(error: ErrorDetails) -> str:
    kind, loc = error["type"], error["loc"]
    in_long = "long_context" in loc[:-1]
    if kind == RULE_ERROR:
        return error["msg"]
    if kind == "extra_forbidden":
        if in_long:
            return f"unknown key (expected {_EXPECTED_LONG})"
        return f"unknown key (expected {_EXPECTED.get(len(loc), 'no other key')})"
    if kind == "missing":
        return _MISSING.get(str(loc[-1]), "missing")
    if kind in ("model_type", "dict_type"):
        if loc == ("snapshots",):
            return 'must be a table of "SNAPSHOT" = "MODEL" lines'
        if loc[-1] == "long_context":
            return _NOT_A_LONG_TABLE
        return _NOT_A_TABLE.get(min(len(loc), 4), error["msg"])
    if kind in ("list_type", "too_short"):
        return f'must be one or more [[models."{loc[-1]}"]] entries'
    return error["msg"]


def _where(loc: tuple[int | str, ...]) -> str:
    """``("models", "gpt-4o", 1, "priority")`` as ``models.gpt-4o[1].priority``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "price file"


def parse_price_file(data: Mapping[str, Any], source: str) -> PriceFile:
    """``data`` (a price file's TOML content) validated; ``source`` names it in the messages.

    Raises :class:`ConfigError` listing every problem, each as ``source: path: what``.
    """
    try:
        return PriceFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            [f"{source}: {_where(error['loc'])}: {_message(error)}" for error in e.errors()]
        ) from None


def price_table_from(
    data: Mapping[str, Any], source: str, namer: ModelNamer | None = None
) -> PriceTable:
    """A price table from one file's TOML content alone (no bundled prices)."""
    parsed = parse_price_file(data, source)
    entries = parsed.entries()
    _check_shares(parsed.snapshots, entries, dict.fromkeys(parsed.snapshots, source))
    return PriceTable(
        entries=entries,
        batch_discount=parsed.batch_discount or DEFAULT_BATCH_DISCOUNT,
        namer=namer or ModelNamer(),
        source=source,
        shares=dict(parsed.snapshots),
    )


def _check_shares(
    shares: Mapping[str, str], entries: Mapping[str, Any], sources: Mapping[str, str]
) -> None:
    """ConfigError naming every shared model the table has no entries for."""
    problems = [
        f"{sources[name]}: snapshots.{name}: {target!r} is not a model of the price table; "
        f'add [[models."{target}"]] entries, or give {name} entries of its own'
        for name, target in sorted(shares.items())
        if target not in entries
    ]
    if problems:
        raise ConfigError(problems)


def _loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e


@functools.cache
def bundled_prices() -> PriceFile:
    """The bundled ``recon_job/data/pricing.toml``, read and validated once per process."""
    text = resources.files("recon_job").joinpath("data", "pricing.toml").read_text("utf-8")
    return parse_price_file(_loads(text, BUNDLED_SOURCE), BUNDLED_SOURCE)


def read_price_file(path: Path) -> PriceFile:
    """A user's price file, validated; :class:`ConfigError` when unreadable or invalid."""
    name = str(path)
    try:
        text = read_text(path)
    except UnusableFile as e:
        raise ConfigError(
            f"{name}: cannot read the price file ({e}); "
            "fix the path or leave the setting out to use the bundled prices"
        ) from e
    return parse_price_file(_loads(text, name), name)


def load_price_table(user_file: Path | None = None, namer: ModelNamer | None = None) -> PriceTable:
    """The bundled table; every model listed in ``user_file`` gets the user's entries instead.

    A user file may also set ``batch_discount`` and list ``snapshots`` (each replacing whatever
    the bundled table says of that name). Raises :class:`ConfigError` listing every problem of
    the file when it cannot be read or is invalid, or when a snapshot shares the price of a
    model the table does not have.
    """
    bundled = bundled_prices()
    entries, discount, source = bundled.entries(), bundled.batch_discount, BUNDLED_SOURCE
    shares = dict(bundled.snapshots)
    sources = dict.fromkeys(shares, BUNDLED_SOURCE)
    if user_file is not None:
        user = read_price_file(user_file)
        # Whatever the user's file says about a name replaces what the bundled table says:
        # its own entries end a bundled share, its share ends bundled entries.
        for name in user.models:
            shares.pop(name, None)
        for name in user.snapshots:
            entries.pop(name, None)
        entries.update(user.entries())
        shares.update(user.snapshots)
        sources.update(dict.fromkeys(user.snapshots, str(user_file)))
        if user.batch_discount is not None:
            discount = user.batch_discount
        source = f"{BUNDLED_SOURCE} + {user_file}"
    _check_shares(shares, entries, sources)
    return PriceTable(
        entries=entries,
        batch_discount=discount or DEFAULT_BATCH_DISCOUNT,
        namer=namer or ModelNamer(),
        source=source,
        shares=shares,
    )
