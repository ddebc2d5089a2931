"""Reading one usage-dashboard CSV export: its header, which tab it is, and checked values.

The dashboard's exports are read by header name (reference §3.1, §3.2): :func:`open_export`
gives the header and a row reader, :func:`kind_of` tells a Cost from an Activity export, and
:func:`whole` and :func:`amount` turn one cell into a count or exact USD. Every problem is a
permanent :class:`~recon_job.errors.LogSourceError` naming the file (and line, column, value).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Literal, TextIO

from recon_job.errors import LogSourceError
from recon_job.sources.base import MAX_TOKENS

ExportKind = Literal["cost", "activity", "empty"]

#: The columns every export starts with; an export of a range without usage has only these.
TIME_COLUMNS: Final = ("start_time", "end_time", "start_time_iso", "end_time_iso")
#: Columns a Cost export must have (``line_item`` is optional: an ungrouped export lacks it).
COST_REQUIRED: Final = ("start_time", "end_time", "amount_value", "amount_currency")
#: Columns an Activity export must have (``input_cached_tokens`` is optional).
ACTIVITY_REQUIRED: Final = (
    "start_time",
    "end_time",
    "model",
    "num_model_requests",
    "input_tokens",
    "output_tokens",
)
#: Seconds in the only bucket width accepted.
DAY_SECONDS: Final = 86_400

#: The Activity export of each family tab, told by the column only it has (the Usage API's
#: result fields, reference §1.5), in the order they are tried; an export of input tokens
#: without output (embeddings, moderations) is told apart per row by its model name.
ACTIVITY_FAMILIES: Final = (
    ("usage_bytes", "vector_stores"),
    ("num_sessions", "code_interpreter_sessions"),
    ("images", "images"),
    ("size", "images"),
    ("characters", "audio_speeches"),
    ("seconds", "audio_transcriptions"),
    ("output_tokens", "completions"),
)
#: Columns of the completions tab that no embeddings export has.
_COMPLETIONS_ONLY: Final = frozenset(
    {"input_cached_tokens", "input_audio_tokens", "output_audio_tokens", "service_tier"}
)
#: The columns each family's Activity export must have besides the time columns.
ACTIVITY_REQUIRED_BY_FAMILY: Final[Mapping[str, tuple[str, ...]]] = {
    "completions": ACTIVITY_REQUIRED[2:],
    "embeddings": ("model", "num_model_requests", "input_tokens"),
    "images": ("model", "num_model_requests", "images"),
    "audio_speeches": ("model", "num_model_requests", "characters"),
    "audio_transcriptions": ("model", "num_model_requests", "seconds"),
    "vector_stores": ("usage_bytes",),
    "code_interpreter_sessions": ("num_sessions",),
    "file_search_calls": ("num_requests",),
    "web_search_calls": ("model", "num_model_requests", "num_requests"),
}

# Any of these in a header says which tab the file came from, so a file missing a required
# column is still recognised and its missing columns named.
_COST_MARKERS = frozenset({"amount_value", "amount_currency", "line_item", "quantity"})
_ACTIVITY_MARKERS = frozenset(
    {
        "num_model_requests",
        "input_tokens",
        "output_tokens",
        "input_cached_tokens",
        "model",
        "images",
        "characters",
        "seconds",
        "usage_bytes",
        "num_sessions",
        "num_requests",
    }
)
# The undocumented pre-Dec-2024 /v1/usage format (reference §3.2, "Legacy").
_LEGACY_MARKERS = frozenset({"n_requests", "n_context_tokens_total", "n_generated_tokens_total"})
#: The columns each kind of export must have.
REQUIRED_BY_KIND: Final[Mapping[ExportKind, tuple[str, ...]]] = {
    "cost": COST_REQUIRED,
    "activity": ACTIVITY_REQUIRED,
    "empty": ("start_time", "end_time"),
}
#: Where the row reader puts fields beyond the header.
EXTRA_FIELD = "\x00extra"
#: Year 9999: a start_time beyond it is garbage, and date arithmetic would overflow.
MAX_EPOCH = 253_402_214_400
# Token counts above 10**18 or amounts above 10**15 USD are garbage; bounding them also keeps
# Decimal exponents small enough that int() and sums stay cheap and cannot overflow.
_MAX_COUNT_DIGITS = 18
_MAX_AMOUNT_DIGITS = 15
_MAX_AMOUNT_DECIMALS = 60


def csv_error(message: str, reason: str) -> LogSourceError:
    """A permanent error about an export: it will not read better on the next run."""
    return LogSourceError(message, permanent=True, reason=reason)


def show(value: str, limit: int = 40) -> str:
    """``value`` quoted for a message, cut at ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn I/O, decoding and CSV errors while reading ``path`` into a ``LogSourceError``."""
    try:
        yield
    except OSError as e:
        raise csv_error(
            f"cannot read the CSV export {path}: {e.strerror or e}", "csv_unreadable"
        ) from e
    except UnicodeDecodeError as e:
        raise csv_error(
            f"{path.name} is not UTF-8 text (byte {e.start}); pass the CSV file exactly as the "
            "dashboard exported it",
            "csv_unreadable",
        ) from e
    except csv.Error as e:
        raise csv_error(f"{path.name} is not a readable CSV file: {e}", "csv_unreadable") from e


@contextmanager
def open_export(path: Path) -> Iterator[tuple[tuple[str, ...], csv.DictReader[str]]]:
    """The header names and a row reader of ``path``, opened read-only; a ``LogSourceError``
    when the file was cut short (see :func:`_check_complete`)."""
    with _translated(path), path.open(encoding="utf-8-sig", newline="") as handle:
        names, reader = _header_and_reader(handle, path)
        _check_complete(path, names, reader.reader.dialect.delimiter)
        yield names, reader


def _check_complete(path: Path, names: tuple[str, ...], delimiter: str) -> None:
    """Refuse a file whose last line stops before its last column with no newline after it: a
    download cut short, whose missing cells would read as blank (the dashboard ends every line
    with a newline; a spreadsheet dropping trailing blanks ends its lines too)."""
    with path.open("rb") as raw:
        size = raw.seek(0, io.SEEK_END)
        raw.seek(max(0, size - 65536))
        tail = raw.read()
    if not tail or tail.endswith(b"\n"):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    fields = next(csv.reader([last], delimiter=delimiter), [])
    if len(fields) < len(names):
        raise csv_error(
            f"{path.name} ends in the middle of a row ({len(fields)} of its {len(names)} "
            "columns, no newline after it): the download was cut short; export it again",
            "csv_truncated",
        )


def _header_and_reader(handle: TextIO, path: Path) -> tuple[tuple[str, ...], csv.DictReader[str]]:
    first = handle.readline()
    if not first.strip():
        raise csv_error(
            f"{path.name} is empty: no header line; export it again from the usage dashboard",
            "csv_structure",
        )
    # Some teams keep the exports as TSV (reference §3.1, the 2025-10 "Guardian TSV").
    delimiter = "\t" if "\t" in first and "," not in first else ","
    names = tuple(name.strip() for name in next(csv.reader([first], delimiter=delimiter)))
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise csv_error(
            f"{path.name}: the header repeats column(s) {', '.join(repeated)}; the file's "
            "structure changed, export it again",
            "csv_structure",
        )
    reader = csv.DictReader(handle, fieldnames=names, delimiter=delimiter, restkey=EXTRA_FIELD)
    return names, reader


def kind_of(names: Collection[str], path: Path) -> ExportKind:
    """Which tab a header comes from; a LogSourceError for a legacy, mixed or foreign file."""
    present = {name for name in names if name}
    if present & _LEGACY_MARKERS:
        raise csv_error(
            f"{path.name} is a legacy usage export (n_requests, n_context_tokens_total ...), "
            "which recon-job does not read; export the Cost and Activity tabs from today's "
            "usage dashboard",
            "csv_structure",
        )
    cost = bool(present & _COST_MARKERS)
    activity = bool(present & _ACTIVITY_MARKERS)
    if cost and activity:
        raise csv_error(
            f"{path.name} has both Cost and Activity columns; export each tab to its own file",
            "csv_structure",
        )
    if cost:
        return "cost"
    if activity:
        return "activity"
    if present and present <= set(TIME_COLUMNS):
        return "empty"
    if len(names) == 1 and next(iter(names)).count(";") >= 2:
        raise csv_error(
            f"{path.name} is separated by semicolons, as a spreadsheet saves CSV where the "
            "decimal mark is a comma; use the file as the dashboard exported it, or save it as "
            "comma-separated CSV with a decimal point",
            "csv_structure",
        )
    raise csv_error(
        f"{path.name} is not an OpenAI usage dashboard export (header: "
        f"{show(','.join(names), 80)}); export the Cost and Activity tabs from "
        "platform.openai.com/usage",
        "csv_structure",
    )


def activity_family(names: Collection[str]) -> str:
    """Which family tab an Activity export's header comes from (see :data:`ACTIVITY_FAMILIES`).

    Search calls: web searches have a model (or ``context_level``), file searches do not. A
    header of input tokens alone is ``embeddings`` here; each row's model name then tells
    moderations apart (:func:`recon_job.families.family_of_model`).
    """
    present = set(names)
    for column, family in ACTIVITY_FAMILIES:
        if column in present:
            return family
    if "num_requests" in present:
        web = "model" in present or "context_level" in present
        return "web_search_calls" if web else "file_search_calls"
    # A completions export that lost its output_tokens column still has the token classes
    # only completions count: it is refused for the column, not read as embeddings.
    embeddings = "input_tokens" in present and not present & _COMPLETIONS_ONLY
    return "embeddings" if embeddings else "completions"


def detect_export_kind(path: str | Path) -> ExportKind:
    """Which dashboard tab ``path`` was exported from, by its header names (not its file name).

    ``cost`` has ``amount_value``; ``activity`` has ``num_model_requests``/``input_tokens``;
    ``empty`` has only the four time columns — a range with no usage, whose Cost and Activity
    exports are byte-identical (reference §3.2), so it may stand for either. Raises
    ``LogSourceError`` when the file cannot be read or is no dashboard export.
    """
    path = Path(path)
    with open_export(path) as (names, _reader):
        return kind_of(names, path)


@dataclass(frozen=True, slots=True)
class Cell:
    """Where a value came from, for error messages."""

    path: Path
    line: int
    column: str

    def error(self, value: str, problem: str, reason: str = "csv_value") -> LogSourceError:
        return csv_error(
            f"{self.path.name}, line {self.line}, column {self.column}: {show(value)} {problem}",
            reason,
        )


def whole(value: str, cell: Cell) -> int:
    """A non-negative whole number; the Activity export writes counts as ``31422.0`` (§3.3)."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise cell.error(value, "is not a number") from None
    if not number.is_finite() or number.adjusted() > _MAX_COUNT_DIGITS:
        raise cell.error(value, "is not a plausible count")
    if number != number.to_integral_value():
        raise cell.error(value, "is not a whole number (a fractional count)")
    if number < 0:
        raise cell.error(value, "is negative")
    if number > MAX_TOKENS:
        # As from the Usage API: no real count, and sums of it overflow the history database.
        raise cell.error(value, f"is more than {MAX_TOKENS:,}, the largest count recon-job keeps")
    return int(number)


def amount(value: str, cell: Cell) -> Decimal:
    """Exact USD: amounts carry up to 36 decimals (reference §3.3), so never a float."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise cell.error(value, "is not an amount of money") from None
    if not number.is_finite() or number.adjusted() > _MAX_AMOUNT_DIGITS:
        raise cell.error(value, "is not a plausible amount of money")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_AMOUNT_DECIMALS:
        raise cell.error(value, f"has more than {_MAX_AMOUNT_DECIMALS} decimals")
    return number
