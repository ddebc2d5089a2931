"""The data recon-job passes between its stages: frozen dataclasses, Decimal money, UTC days.

Nothing here does I/O or reads the clock. Money is ``Decimal`` USD, never float; tokens and
requests are ``int``; every datetime is timezone-aware UTC and every day is a UTC calendar day,
the way OpenAI buckets its Usage and Costs data.
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from recon_job.families import COMPLETIONS, EXTRA_TOKEN_CLASSES, family_rank
from recon_job.findings import NO_DIAGNOSIS, BilledLine, Diagnosis, Duplicates

if TYPE_CHECKING:
    from recon_job.errors import ReconError

ZERO = Decimal(0)
#: The model name of cost OpenAI did not attribute to a model: an ungrouped Costs API answer or
#: dashboard export (``line_item`` null or blank) carries the whole day's cost under it.
UNATTRIBUTED = "(all)"
#: Sums of money are exact: OpenAI sends amounts with up to 36 decimals, more digits than the
#: default 28-digit context keeps.
MONEY = decimal.Context(prec=96)

WindowKind = Literal["daily", "monthly", "range"]


def day_start(day: date) -> datetime:
    """00:00:00 UTC of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open span of whole UTC days: ``start`` inclusive, ``end`` exclusive."""

    kind: WindowKind
    #: First UTC day in the window.
    start: date
    #: First UTC day after the window (exclusive), like OpenAI's ``end_time``.
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")

    @property
    def start_at(self) -> datetime:
        """00:00 UTC on the first day: OpenAI's inclusive ``start_time``."""
        return day_start(self.start)

    @property
    def end_at(self) -> datetime:
        """00:00 UTC after the last day: OpenAI's exclusive ``end_time``."""
        return day_start(self.end)

    @property
    def last_day(self) -> date:
        """The last UTC day inside the window (inclusive)."""
        return self.end - timedelta(days=1)

    @property
    def num_days(self) -> int:
        """How many UTC days the window spans."""
        return (self.end - self.start).days

    def days(self) -> Iterator[date]:
        """Every UTC day in the window, oldest first."""
        for offset in range(self.num_days):
            yield self.start + timedelta(days=offset)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    @property
    def key(self) -> str:
        """A stable period key: ``daily:2026-03-14``, ``monthly:2026-02``, ``range:A..B``."""
        if self.kind == "daily":
            return f"daily:{self.start.isoformat()}"
        if self.kind == "monthly":
            return f"monthly:{self.start.strftime('%Y-%m')}"
        return f"range:{self.start.isoformat()}..{self.last_day.isoformat()}"


@dataclass(frozen=True, slots=True)
class UsageKey:
    """One comparison group: a UTC day, a model, and (when grouped) a project and an API key."""

    #: UTC calendar day of the usage.
    day: date
    #: Model name. Sources report it as they see it; the job normalises both sides before comparing.
    model: str
    #: OpenAI project id, or None when not grouped by project (or not known).
    project_id: str | None = None
    #: OpenAI API key id, or None when not grouped by API key.
    api_key_id: str | None = None
    #: Usage family (:data:`recon_job.families.FAMILIES`, or ``other`` for billed line items
    #: that map to none). Last, with a default, so a completions key reads as it always did.
    family: str = COMPLETIONS


def group_order(key: UsageKey) -> tuple[date, int, str, str, str, str]:
    """The one sort key of groups: by day, family, model, project and API key.

    Families sort in report order (completions first); a missing id sorts first: a dataclass
    ordering would compare None with a str id and fail, so None counts as ``""``.
    """
    return (
        key.day,
        family_rank(key.family),
        key.family,
        key.model,
        key.project_id or "",
        key.api_key_id or "",
    )


@dataclass(frozen=True, slots=True)
class Usage:
    """Additive usage counters for one group (or a total)."""

    #: Input (prompt) tokens, cached ones included, as OpenAI counts them.
    input_tokens: int = 0
    #: The part of ``input_tokens`` read from the prompt cache.
    cached_tokens: int = 0
    #: Output (completion) tokens, reasoning tokens included.
    output_tokens: int = 0
    #: Number of model requests.
    requests: int = 0
    #: USD. Local side: the logged or estimated cost. OpenAI side: as billed by the Costs API.
    cost: Decimal = ZERO
    # The classes inside input_tokens and output_tokens (OpenAI's identities, reference §1.5):
    # input = cached + cache_write + uncached; uncached = text + audio + image (uncached);
    # cached = cached text + cached audio + cached image; output = text + audio + image.
    #: Input tokens written to the prompt cache (priced apart; part of ``input_tokens``).
    cache_write_tokens: int = 0
    #: Uncached audio input tokens (part of ``input_tokens``).
    input_audio_tokens: int = 0
    #: Cached audio input tokens (part of ``cached_tokens``).
    cached_audio_tokens: int = 0
    #: Uncached image input tokens (part of ``input_tokens``).
    input_image_tokens: int = 0
    #: Cached image input tokens (part of ``cached_tokens``).
    cached_image_tokens: int = 0
    #: Audio output tokens (part of ``output_tokens``).
    output_audio_tokens: int = 0
    #: Image output tokens (part of ``output_tokens``).
    output_image_tokens: int = 0
    #: Images generated, edited or varied (images family).
    images: int = 0
    #: Characters of text turned into speech (audio_speeches).
    characters: int = 0
    #: Seconds of audio transcribed (audio_transcriptions).
    seconds: int = 0
    #: Code-interpreter sessions.
    sessions: int = 0
    #: Tool calls: file searches and web searches (their ``num_requests``).
    calls: int = 0
    #: Bytes held in vector stores on the day: a *level*, not a flow. Adding two groups of one
    #: day (two projects) is right; adding days is not, so window totals take the last day's.
    usage_bytes: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (cached tokens are inside input already)."""
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to the cache (OpenAI's ``input_uncached``)."""
        return self.input_tokens - self.cached_tokens - self.cache_write_tokens

    @property
    def input_text_tokens(self) -> int:
        """Uncached text input tokens."""
        return self.uncached_input_tokens - self.input_audio_tokens - self.input_image_tokens

    @property
    def cached_text_tokens(self) -> int:
        """Cached text input tokens."""
        return self.cached_tokens - self.cached_audio_tokens - self.cached_image_tokens

    @property
    def output_text_tokens(self) -> int:
        """Text output tokens (reasoning included)."""
        return self.output_tokens - self.output_audio_tokens - self.output_image_tokens

    def quantity(self, name: str) -> int | Decimal:
        """A quantity by name: a field, or ``tokens`` (input + output)."""
        if name == "tokens":
            return self.total_tokens
        value: int | Decimal = getattr(self, name)
        return value

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            requests=self.requests + other.requests,
            cost=MONEY.add(self.cost, other.cost),
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            input_audio_tokens=self.input_audio_tokens + other.input_audio_tokens,
            cached_audio_tokens=self.cached_audio_tokens + other.cached_audio_tokens,
            input_image_tokens=self.input_image_tokens + other.input_image_tokens,
            cached_image_tokens=self.cached_image_tokens + other.cached_image_tokens,
            output_audio_tokens=self.output_audio_tokens + other.output_audio_tokens,
            output_image_tokens=self.output_image_tokens + other.output_image_tokens,
            images=self.images + other.images,
            characters=self.characters + other.characters,
            seconds=self.seconds + other.seconds,
            sessions=self.sessions + other.sessions,
            calls=self.calls + other.calls,
            usage_bytes=self.usage_bytes + other.usage_bytes,
        )


EMPTY = Usage()


def sum_usage(items: Iterator[Usage] | list[Usage] | tuple[Usage, ...]) -> Usage:
    """The sum of several usages (``EMPTY`` for none)."""
    total = EMPTY
    for item in items:
        total = total + item
    return total


def window_total(groups: Iterable[tuple[UsageKey, Usage]]) -> Usage:
    """The total of some groups over a window: every flow summed, the bytes level not.

    ``usage_bytes`` is how much a vector store held on a day; a window's figure is the level of
    its last day that has one (all projects of that day summed), never the sum of its days.
    """
    total = EMPTY
    level_day: date | None = None
    level = 0
    for key, usage in groups:
        total = total + usage
        if usage.usage_bytes:
            if level_day is None or key.day > level_day:
                level_day, level = key.day, 0
            if key.day == level_day:
                level += usage.usage_bytes
    return replace(total, usage_bytes=level) if total.usage_bytes != level else total


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """OpenAI's usage of one group in one hourly or minute bucket (a diagnosis's series)."""

    #: Bucket start, aware UTC.
    start: datetime
    #: As OpenAI reports it (a dated snapshot), or the family's product name.
    model: str
    #: None when OpenAI reports none (usage outside any project, or not grouped by project).
    project_id: str | None
    usage: Usage


class UnpricedKey(NamedTuple):
    """What some local usage could not be priced as: a model at a billing tier.

    A tuple, so a mapping of them sorts and logs as plainly as model names did; use
    :func:`unpriced_order` to sort (it places a missing tier last).
    """

    #: The model as priced: as logged, with the user's ``[models.aliases]`` applied and any
    #: snapshot date kept (``gpt-4o-2024-05-13`` is priced apart from ``gpt-4o``).
    model: str
    #: The tier without a price. None only for runs stored before the tier was recorded.
    tier: Tier | None


def unpriced_order(key: UnpricedKey) -> tuple[str, int]:
    """The one sort key of unpriced entries: by model, then tier in :data:`TIERS` order."""
    return (key.model, TIERS.index(key.tier) if key.tier in TIERS else len(TIERS))


#: Skip reasons of local records without a usable date (none, or one that does not parse). Such
#: a record belongs to no day, so every window's fetch skips it again: it is reported once per
#: file, never as usage missing from the window at hand.
UNDATED_REASONS: frozenset[str] = frozenset({"missing_timestamp", "bad_timestamp"})


@dataclass(frozen=True)
class UsageTotals:
    """What one source reports for a window: usage per group plus what it could not count."""

    #: Usage per comparison group. Groups with no usage may be absent.
    groups: Mapping[UsageKey, Usage] = field(default_factory=dict)
    #: Local records skipped, by reason (``blank_line``, ``malformed_json`` ...).
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: Usage that could not be priced (no price, no logged cost), per model and tier: a model
    #: may be priced at one tier and not at another (``gpt-4o`` has no flex price). Its cost is
    #: *unknown*, not zero: ``Usage.cost`` of such groups leaves it out.
    unpriced: Mapping[UnpricedKey, Usage] = field(default_factory=dict)
    #: Free-form facts about the fetch worth reporting (files read, pages fetched ...).
    info: Mapping[str, int] = field(default_factory=dict)
    #: Where some skipped records are, by reason: ``file:line`` of the first few (a source of
    #: lines only; see :data:`UNDATED_REASONS` for the reasons named once per file).
    skipped_locations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Families this source was asked for but could not answer (an endpoint that answers 404).
    unavailable_families: tuple[str, ...] = ()
    #: Request ids logged more than once (counted once in ``groups``); None when the source
    #: does not dedupe (``logs.dedupe = false``, or no request ids).
    duplicates: Duplicates | None = None
    #: What OpenAI billed per day x model x piece x tier with its quantity (the Costs source
    #: only, for lines that carry one): the input of the stale-price check.
    billed_lines: tuple[BilledLine, ...] = ()

    @property
    def total(self) -> Usage:
        """The sum over every group (bytes stored: the last day's level; :func:`window_total`)."""
        return window_total(self.groups.items())


class Status(enum.StrEnum):
    """Outcome of a comparison, per group and per run."""

    RECONCILED = "reconciled"
    MISMATCH = "mismatch"
    PENDING = "pending"
    FAILED = "failed"
    #: A family OpenAI counts in the window while the local side has no record of it at all:
    #: listed with its cost, never a drift of the tracked families (``reconcile.untracked``).
    UNTRACKED = "untracked"


#: Default floors of the non-token quantities: a minute of audio, a thousand characters of
#: speech and a megabyte of storage are noise; one image, session or search call is not.
QUANTITY_FLOORS: Mapping[str, int] = {
    "images": 0,
    "characters": 1000,
    "seconds": 60,
    "sessions": 0,
    "calls": 0,
    "usage_bytes": 1_000_000,
}


@dataclass(frozen=True, slots=True)
class Tolerance:
    """When a difference counts as a mismatch: over ``threshold_pct`` AND over the floor."""

    #: Percent, relative to OpenAI's figure; a group is a mismatch only when |pct| is above it.
    threshold_pct: Decimal = Decimal(5)
    #: USD; cost differences at or below this never count as a mismatch.
    cost_floor: Decimal = Decimal("0.05")
    #: Tokens; token differences at or below this never count as a mismatch.
    token_floor: int = 1000
    #: Requests; request-count differences at or below this never count as a mismatch.
    request_floor: int = 0
    #: Floors of the other families' quantities (images, characters, seconds, sessions, calls,
    #: usage_bytes); a quantity not listed has floor 0.
    quantity_floors: Mapping[str, int] = field(default_factory=lambda: dict(QUANTITY_FLOORS))

    def floor(self, quantity: str) -> Decimal:
        """The absolute floor of ``quantity``: token classes share ``token_floor``."""
        if quantity == "cost":
            return self.cost_floor
        if quantity == "requests":
            return Decimal(self.request_floor)
        if quantity == "tokens" or quantity.endswith("_tokens"):
            return Decimal(self.token_floor)
        return Decimal(self.quantity_floors.get(quantity, 0))


@dataclass(frozen=True, slots=True)
class Metric:
    """One compared quantity: local vs OpenAI, their difference and its percentage."""

    local: Decimal
    openai: Decimal
    #: local - OpenAI (positive: local shows more).
    difference: Decimal
    #: Difference as a percent of OpenAI's figure; None when OpenAI's figure is zero.
    pct: Decimal | None
    #: True when this quantity is out of tolerance (over the threshold and over its floor).
    #: Only total tokens, requests and cost decide a group's status; the token classes show
    #: which kind of token drifted.
    exceeds: bool


_FIXED_METRICS = frozenset(
    {"input_tokens", "cached_tokens", "output_tokens", "tokens", "requests", "cost"}
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every compared quantity of one group (or of the totals)."""

    input_tokens: Metric
    cached_tokens: Metric
    output_tokens: Metric
    tokens: Metric
    requests: Metric
    cost: Metric
    #: The family's other quantities that apply (images, seconds, token classes ...), by name.
    extra: Mapping[str, Metric] = field(default_factory=dict)
    #: The quantities that decide (:func:`recon_job.families.deciding`).
    deciding: tuple[str, ...] = ("tokens", "requests", "cost")

    def metric(self, name: str) -> Metric | None:
        """The metric of quantity ``name``, or None when it does not apply here."""
        if name in _FIXED_METRICS:
            found: Metric = getattr(self, name)
            return found
        return self.extra.get(name)

    @property
    def exceeds(self) -> bool:
        """True when a deciding quantity (tokens, requests, cost ...) is out of tolerance."""
        return any(
            m is not None and m.exceeds for m in (self.metric(name) for name in self.deciding)
        )


@dataclass(frozen=True, slots=True)
class GroupResult:
    """The comparison of one day × model [× project] group."""

    key: UsageKey
    local: Usage
    openai: Usage
    comparison: Comparison
    status: Status


@dataclass(frozen=True)
class ReconResult:
    """The outcome of reconciling one window."""

    window: Window
    status: Status
    tolerance: Tolerance
    #: Totals over the whole window.
    local: Usage
    openai: Usage
    comparison: Comparison
    #: Every group, sorted by day, model, project.
    groups: tuple[GroupResult, ...]
    #: UTC days of the window not yet settled (OpenAI's figures may still change).
    pending_days: tuple[date, ...] = ()
    #: Local usage that could not be priced, per model (as priced) and tier, with that usage.
    unpriced: Mapping[UnpricedKey, Usage] = field(default_factory=dict)
    #: Skipped local records by reason.
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: Facts about the fetch (files read, pages fetched ...).
    info: Mapping[str, int] = field(default_factory=dict)
    #: ``file:line`` of the first few skipped local records, by reason (empty for a result read
    #: back from the history, and for sources that are not files of lines).
    skipped_locations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The local totals per named source, when several are combined (their sum is ``local``).
    local_sources: Mapping[str, Usage] = field(default_factory=dict)
    #: Families OpenAI counts in the window that the local side has no record of (and ``other``:
    #: billed line items that map to no family), with OpenAI's usage of each. Their groups are
    #: UNTRACKED and stay out of ``local``/``openai``/``comparison``.
    untracked: Mapping[str, Usage] = field(default_factory=dict)
    #: Families whose endpoint OpenAI did not know (404 on an older deployment): not compared.
    unavailable_families: tuple[str, ...] = ()
    #: Where and why the figures drift (issue 12): gaps, clock shift, the cost bridge, prices,
    #: shadow usage, duplicates, restatements. Empty until the run's diagnosis stage fills it.
    diagnosis: Diagnosis = NO_DIAGNOSIS

    @property
    def reconciled(self) -> bool:
        """True when every settled group is within tolerance and nothing is pending."""
        return self.status is Status.RECONCILED

    @property
    def mismatches(self) -> tuple[GroupResult, ...]:
        """The groups out of tolerance."""
        return tuple(g for g in self.groups if g.status is Status.MISMATCH)


#: The canonical fields of one logged request, as a log field mapping or a table's column
#: mapping names them, in the order messages list them. ``total_tokens`` is only checked
#: against input + output, never summed. From ``family`` on: the usage family (a ``family``
#: name or an API ``endpoint``), the token classes (audio and image input counted with their
#: cached part, as the APIs report them) and each family's own quantity; ``size`` and
#: ``quality`` of images choose their price.
RECORD_FIELD_NAMES: tuple[str, ...] = (
    "timestamp",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "total_tokens",
    "cost",
    "request_id",
    "project_id",
    "api_key_id",
    "batch",
    "service_tier",
    "family",
    "endpoint",
    *EXTRA_TOKEN_CLASSES,
    "images",
    "size",
    "quality",
    "characters",
    "seconds",
    "sessions",
    "calls",
    "usage_bytes",
)
#: The same names as a set, for membership checks.
RECORD_FIELDS: frozenset[str] = frozenset(RECORD_FIELD_NAMES)

#: How a request was billed. ``standard`` covers OpenAI's ``default``/``auto``/``scale`` tiers.
Tier = Literal["standard", "batch", "flex", "priority"]
TIERS: tuple[Tier, ...] = ("standard", "batch", "flex", "priority")
#: ``service_tier`` values billed at their own rates; every other value is ``standard``.
PRICED_SERVICE_TIERS: Mapping[str, Tier] = {"flex": "flex", "priority": "priority"}
#: Day zero of Unix epoch timestamps.
EPOCH = date(1970, 1, 1)


def tier_of(batch: bool, service_tier: object) -> Tier:
    """The billing tier of a request: ``batch`` first, else its ``service_tier`` (any case)."""
    if batch:
        return "batch"
    if isinstance(service_tier, str):
        return PRICED_SERVICE_TIERS.get(service_tier.strip().lower(), "standard")
    return "standard"


#: Why a notification is sent. ``opened``: a window starts drifting; ``updated``: more groups
#: drift; ``repeat``: still drifting after ``repeat_interval``; ``resolved``: all back in
#: tolerance; ``failed``: the run could not get OpenAI's figures; ``summary``: an all-clear report
#: (opt-in); ``channel_failing``: another channel keeps failing; ``test``:
#: ``recon-job alerts test``. Findings of the diagnosis, each sent once per subject:
#: ``price_changed`` (OpenAI bills a model x piece at another price than the table's),
#: ``restated`` (OpenAI revised a completed day), ``shadow_usage`` (opt-in: usage of a project
#: or key the logs never mention), ``trend`` (opt-in: a persistent shift of a model's drift).
AlertEvent = Literal[
    "opened",
    "updated",
    "repeat",
    "resolved",
    "failed",
    "summary",
    "channel_failing",
    "test",
    "price_changed",
    "restated",
    "shadow_usage",
    "trend",
]
#: The events about a finding rather than a window's verdict.
FINDING_EVENTS: tuple[str, ...] = ("price_changed", "restated", "shadow_usage", "trend")

#: The notification channels, in the order they are listed and built.
CHANNELS: tuple[str, ...] = ("email", "slack", "webhook")


@dataclass(frozen=True)
class Message:
    """A rendered notification: every part of it, for every channel. Holds no secret.

    Rendered once, from Jinja templates, when the run's result is committed; stored in the outbox
    as it is and sent later by the relay. Every channel gets the same message and picks the parts
    it needs.
    """

    #: Stable across retries and re-runs: the email ``Message-ID``, the webhook
    #: ``Idempotency-Key`` and the Slack footer, so a duplicate after a crash is recognisable.
    dedupe_key: str
    event: AlertEvent
    #: The alert group: the window's key (``daily:2026-03-14``, ``monthly:2026-02``).
    group_key: str
    #: One line, no CR/LF (an email header).
    subject: str
    #: Plain-text body (email text part).
    text: str
    #: HTML body (email HTML part), autoescaped.
    html: str
    #: Slack mrkdwn fallback text; the Slack channel builds Block Kit blocks around it.
    slack_text: str
    #: The generic webhook's JSON body (versioned, documented in the README).
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced: a result, or the error that stopped it. Never both."""

    #: The run's row id in the history database.
    run_id: int
    window: Window
    #: Aware UTC.
    started_at: datetime
    #: Aware UTC.
    finished_at: datetime
    result: ReconResult | None = None
    error: ReconError | None = None
    #: One ``{"channel", "event", "status"}`` per notification of the run.
    alerts: tuple[dict[str, Any], ...] = ()

    @property
    def status(self) -> Status:
        """The run's status; ``failed`` when it produced no result."""
        return self.result.status if self.result is not None else Status.FAILED
