"""What a diagnosis found: where and why local and OpenAI figures drift (issue 12).

Plain frozen dataclasses with no dependency on the rest of the package, so that
:class:`recon_job.models.ReconResult` can carry a :class:`Diagnosis` and every stage (the run,
the report, the alerts, the dashboard, ``recon-job explain``) reads the same findings. The rules
that produce them are the pure functions of :mod:`recon_job.diagnosis`; what fetches the hourly
series they need is :mod:`recon_job.investigate`.

Money is ``Decimal`` USD; times are aware UTC; a group is named by its day, family, model and
project the way :class:`recon_job.models.UsageKey` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Context, Decimal

#: Sums of money parts: 96 digits like ``recon_job.models.MONEY`` (not imported: no dependency).
_EXACT_SUM = Context(prec=96)


@dataclass(frozen=True, slots=True)
class GroupRef:
    """The group a finding is about (the fields of ``UsageKey`` that name it)."""

    day: date
    family: str
    model: str
    project_id: str | None = None

    @property
    def label(self) -> str:
        """``2026-02-03 completions gpt-4o`` (``[proj_x]`` when per project)."""
        where = f" [{self.project_id}]" if self.project_id else ""
        return f"{self.day.isoformat()} {self.family} {self.model}{where}"


@dataclass(frozen=True, slots=True)
class Gap:
    """A contiguous UTC interval that holds part of a group's difference."""

    #: Aware UTC, inclusive.
    start: datetime
    #: Aware UTC, exclusive.
    end: datetime
    #: The quantity located (``requests``, ``tokens``, ``cost`` ...).
    quantity: str
    #: local - OpenAI over the interval (negative: the local side is missing usage).
    difference: Decimal
    #: The interval's share of the group's difference, percent (0-100, may exceed 100 when
    #: other hours drift the other way).
    share_pct: Decimal
    #: ``1h`` or ``1m``: the bucket width the interval was located with.
    resolution: str = "1h"


@dataclass(frozen=True, slots=True)
class BridgePart:
    """One named part of a cost difference (USD, signed like the difference: local - OpenAI)."""

    #: ``coverage``, ``token_mix``, ``price``, ``tier``, ``local_estimate``, ``unpriced``,
    #: ``untracked``, ``duplicates``, ``pending`` (see :data:`recon_job.diagnosis.bridge.PARTS`).
    name: str
    amount: Decimal
    #: One line saying what the part is, for reports and alerts.
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Bridge:
    """A cost difference split into named parts whose sum is the difference, exactly."""

    #: local - OpenAI, USD.
    difference: Decimal
    parts: tuple[BridgePart, ...] = ()

    @property
    def total(self) -> Decimal:
        """The sum of the parts (equal to ``difference`` by construction)."""
        total = Decimal(0)
        for part in self.parts:
            # Wide enough that adding parts never rounds (the default context keeps 28 digits).
            total = _EXACT_SUM.add(total, part.amount)
        return total


@dataclass(frozen=True, slots=True)
class PriceFinding:
    """OpenAI bills a price that differs from the price table's."""

    model: str
    #: The billed piece: ``input``, ``cached input``, ``output``, ``cache writes`` ...
    piece: str
    #: ``standard``, ``batch``, ``flex``, ``priority``.
    tier: str
    #: USD per unit as OpenAI billed it (amount / quantity).
    billed: Decimal
    #: USD per unit in the price table; None when the table has no rate for the piece.
    table: Decimal | None
    #: The unit of both prices (``1M tokens``, ``image``, ``minute`` ...).
    unit: str
    #: The first UTC day OpenAI billed ``billed`` (as far as the history or the window shows).
    since: date
    #: The last UTC day the data shows billed at ``billed`` (None: not known, take ``since``).
    last_day: date | None = None


@dataclass(frozen=True, slots=True)
class BilledLine:
    """What OpenAI billed for one piece of one model on one UTC day, with its quantity.

    The Costs API's ``quantity`` / ``quantity_unit`` (reference §1.5) summed per day x model x
    piece x tier x unit: what :func:`recon_job.diagnosis.prices.price_findings` divides to find
    the unit price OpenAI billed.
    """

    day: date
    #: The model as billed (a dated snapshot, ``gpt-4o-2024-08-06``).
    model: str
    #: The billed piece, its modality first when not text: ``input``, ``cached input``,
    #: ``audio input``, ``output, long context``, ``1024x1024, hd`` ...
    piece: str
    #: ``standard``, ``batch``, ``flex`` or ``priority`` (the line item's ``<tier> |`` prefix).
    tier: str
    #: USD billed.
    amount: Decimal
    #: How much was billed, in ``unit``.
    quantity: Decimal
    #: OpenAI's ``quantity_unit``: ``tokens``, ``1000_tokens``, ``duration_seconds``,
    #: ``duration_minutes``, ``duration_hours``, ``gibibyte_hours``, ``images``, ``characters``.
    unit: str
    #: The usage family the line item belongs to (``completions``, ``images`` ...).
    family: str = ""


@dataclass(frozen=True, slots=True)
class ShadowEntry:
    """A project, API key or user OpenAI counts in the window that local records never mention."""

    #: ``project``, ``api_key`` or ``user``.
    kind: str
    id: str
    #: The name from the Admin API when the admin key may read it.
    name: str | None
    tokens: int
    requests: int
    #: USD; ``None`` when OpenAI's costs are not grouped that way (users).
    cost: Decimal | None
    #: Share of the window's OpenAI tokens (and of its cost when known), percent.
    token_share_pct: Decimal
    cost_share_pct: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Request ids logged more than once: counted once, reported here."""

    #: Extra records dropped (a request logged three times counts 2).
    count: int
    #: Distinct request ids seen more than once.
    request_ids: int
    #: USD the extra records would have added.
    cost: Decimal
    #: ``file:line`` (or ``table:key``) of the first few extra records.
    locations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Restatement:
    """OpenAI changed a figure of an already completed day."""

    group: GroupRef
    quantity: str
    before: Decimal
    after: Decimal
    #: Aware UTC: when the new figure was first fetched.
    seen_at: datetime
    #: The earlier run the old figure came from.
    previous_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A persistent shift of a model's daily drift %, found by a CUSUM rule."""

    family: str
    model: str
    #: The first day of the new level.
    day: date
    #: Mean drift % before and after the change.
    before_pct: Decimal
    after_pct: Decimal


@dataclass(frozen=True, slots=True)
class GroupDiagnosis:
    """What the diagnosis found about one drifting group."""

    group: GroupRef
    #: Intervals holding the gap, largest share first (empty when not located).
    gaps: tuple[Gap, ...] = ()
    #: Whole hours the local side is shifted by (local time = OpenAI time + shift); None when no
    #: shift explains the drift better than none.
    shift_hours: int | None = None
    bridge: Bridge | None = None
    price_findings: tuple[PriceFinding, ...] = ()
    #: Why the group was not located (``budget``, ``no_local_series`` ...), when it was not.
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Every finding of one window: per drifting group, and for the window as a whole."""

    groups: tuple[GroupDiagnosis, ...] = ()
    #: The window's cost difference (local - every OpenAI dollar, untracked families included)
    #: in named parts.
    bridge: Bridge | None = None
    shadow: tuple[ShadowEntry, ...] = ()
    duplicates: Duplicates | None = None
    restatements: tuple[Restatement, ...] = ()
    price_findings: tuple[PriceFinding, ...] = ()
    change_points: tuple[ChangePoint, ...] = ()
    #: Extra API requests the diagnosis made (never above ``diagnosis.max_requests``).
    requests_used: int = 0
    #: One sentence per finding, most important first: what the text report, the alerts and the
    #: dashboard print.
    summary: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        """True when nothing was found."""
        return not (
            self.groups
            or self.shadow
            or self.duplicates
            or self.restatements
            or self.price_findings
            or self.change_points
            or (self.bridge is not None and self.bridge.parts)
        )


#: The diagnosis of a window nothing was diagnosed for.
NO_DIAGNOSIS = Diagnosis()
