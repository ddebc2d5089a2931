"""Shadow usage: projects, API keys and users OpenAI counts that the local records never mention.

OpenAI's usage of a window per id (:class:`Scope`, fetched by
:func:`recon_job.sources.openai.scope.fetch_scope`) is set against the ids the local side
mentions (:class:`LocalIds`); every id OpenAI counts usage or cost for that the local side never
names is a :class:`~recon_job.findings.ShadowEntry`, with its share of the window's tokens and
cost. Pure: no I/O, no clock.

Two rules keep it from crying wolf:

* A null id (OpenAI's "no project", usage of a key it does not attribute) is never shadow: it is
  in the totals the shares are taken of, never an entry.
* A kind is checked only when the local side mentions at least one id of that kind. Local
  records rarely carry a user id, and a log without project or key ids says nothing about
  them: without this rule every project, key and user would be "shadow".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from recon_job.diagnosis.words import dollars
from recon_job.findings import ShadowEntry
from recon_job.models import UsageKey

#: The kinds of id, in report order.
PROJECT: Final = "project"
API_KEY: Final = "api_key"
USER: Final = "user"
KINDS: Final = (PROJECT, API_KEY, USER)

#: Shares are kept to two decimals of a percent.
_SHARE_QUANTUM: Final = Decimal("0.01")
#: A name from the Admin API is printed at most this long (it is free text someone typed).
_NAME_MAX: Final = 60
#: How each kind reads in a sentence.
_NOUN: Final = {PROJECT: "project", API_KEY: "key", USER: "user"}


@dataclass(frozen=True, slots=True)
class IdTotals:
    """What OpenAI counted for one project, API key or user over the window."""

    #: Input + output tokens of the token-counting families fetched.
    tokens: int = 0
    #: Model requests of those families.
    requests: int = 0
    #: USD billed (Costs API); None when not known for this kind (users) or not fetched.
    cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """OpenAI's usage of one window per project, API key and user, and what fetching it cost.

    The per-id maps leave null ids out; the totals include them (they are the whole window, of
    which the shares are taken).
    """

    projects: Mapping[str, IdTotals] = field(default_factory=dict)
    api_keys: Mapping[str, IdTotals] = field(default_factory=dict)
    users: Mapping[str, IdTotals] = field(default_factory=dict)
    #: Tokens and requests of the whole window (null ids included).
    total_tokens: int = 0
    total_requests: int = 0
    #: USD of the whole window; None when the Costs API was not fetched.
    total_cost: Decimal | None = None
    #: The project each API key's usage was counted under (to look up the key's name).
    key_projects: Mapping[str, str] = field(default_factory=dict)
    #: The usage families whose figures are in the totals, in fetch order.
    families: tuple[str, ...] = ()
    #: HTTP requests made to fetch it (pages; the HTTP layer's retries not counted).
    requests: int = 0
    #: Endpoints not fetched, with why (``embeddings: HTTP 404``, ``costs: budget``).
    skipped: tuple[str, ...] = ()
    #: The error that stopped the fetch, if one did (already free of secrets).
    error: str | None = None

    def by_kind(self, kind: str) -> Mapping[str, IdTotals]:
        """The per-id totals of ``kind`` (``project``, ``api_key`` or ``user``)."""
        return {PROJECT: self.projects, API_KEY: self.api_keys, USER: self.users}[kind]


@dataclass(frozen=True, slots=True)
class LocalIds:
    """The project, API key and user ids the local records mention."""

    projects: frozenset[str] = frozenset()
    api_keys: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @classmethod
    def from_keys(cls, keys: Iterable[UsageKey], users: Iterable[str | None] = ()) -> LocalIds:
        """The ids of the local side's groups (``UsageKey`` carries project and key), plus the
        user ids its records carry, if any; null and blank ids are no mention."""
        projects: set[str] = set()
        api_keys: set[str] = set()
        for key in keys:
            if key.project_id and key.project_id.strip():
                projects.add(key.project_id)
            if key.api_key_id and key.api_key_id.strip():
                api_keys.add(key.api_key_id)
        return cls(
            projects=frozenset(projects),
            api_keys=frozenset(api_keys),
            users=frozenset(u for u in users if u and u.strip()),
        )

    def of(self, kind: str) -> frozenset[str]:
        """The ids of ``kind``."""
        return {PROJECT: self.projects, API_KEY: self.api_keys, USER: self.users}[kind]


def shadow(
    scope: Scope,
    local: LocalIds,
    *,
    project_names: Mapping[str, str] | None = None,
    key_names: Mapping[str, str] | None = None,
) -> tuple[ShadowEntry, ...]:
    """Every id OpenAI counted in ``scope`` that ``local`` never mentions, largest share first.

    A kind is only checked when ``local`` mentions at least one id of it (module docstring); an
    id with no tokens, requests or cost is no usage. Names come from the Admin API when it could
    be read (:mod:`recon_job.sources.openai.admin`); users have none.
    """
    names: dict[str, Mapping[str, str]] = {
        PROJECT: project_names or {},
        API_KEY: key_names or {},
        USER: {},
    }
    entries: list[ShadowEntry] = []
    for kind in KINDS:
        known = local.of(kind)
        if not known:
            continue
        for ident, totals in scope.by_kind(kind).items():
            if not ident or ident in known or not _used(totals):
                continue
            entries.append(
                ShadowEntry(
                    kind=kind,
                    id=ident,
                    name=_clean_name(names[kind].get(ident)),
                    tokens=totals.tokens,
                    requests=totals.requests,
                    cost=totals.cost,
                    token_share_pct=share_pct(Decimal(totals.tokens), Decimal(scope.total_tokens))
                    or Decimal(0),
                    cost_share_pct=(
                        None
                        if totals.cost is None or scope.total_cost is None
                        else share_pct(totals.cost, scope.total_cost)
                    ),
                )
            )
    return tuple(sorted(entries, key=_order))


def shadow_alerts(
    entries: Iterable[ShadowEntry], share_pct: Decimal | None
) -> tuple[ShadowEntry, ...]:
    """The entries holding at least ``share_pct`` percent of the window's tokens or cost
    (``diagnosis.shadow_alert_pct``; None: the alert is off, nothing)."""
    if share_pct is None:
        return ()
    return tuple(
        e
        for e in entries
        if e.token_share_pct >= share_pct
        or (e.cost_share_pct is not None and e.cost_share_pct >= share_pct)
    )


def shadow_sentence(entry: ShadowEntry, period: str = "the window's") -> str:
    """One line a finance reader can act on.

    ``key `key_abc` (name 'ci-bot') that your logs never mention used 12% of this month's
    tokens ($41.20)``; ``period`` is the possessive that names the window (``this month's``).
    Ids are printed whole (they are no secret); a key's value never is (it is never read).
    """
    who = f"{_NOUN.get(entry.kind, entry.kind)} `{entry.id}`"
    if entry.name:
        who += f" (name {entry.name!r})"
    # Under a cent two significant digits ($0.0027): "$0.00" would say the key cost nothing.
    money = f" ({dollars(entry.cost)})" if entry.cost else ""
    if entry.tokens:
        what = f"used {_pct(entry.token_share_pct)} of {period} tokens{money}"
    elif entry.cost and entry.cost_share_pct is not None:
        what = f"cost {_pct(entry.cost_share_pct)} of {period} spend{money}"
    else:
        what = f"made {entry.requests:,} requests{money}"
    return f"{who} that your logs never mention {what}"


def share_pct(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percent of ``whole``, to two decimals; None when ``whole`` is not positive."""
    if whole <= 0:
        return None
    return (part * 100 / whole).quantize(_SHARE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _used(totals: IdTotals) -> bool:
    return bool(totals.tokens or totals.requests or totals.cost)


def _order(entry: ShadowEntry) -> tuple[Decimal, int, str]:
    # Largest share first (tokens or cost, whichever is larger), then kind, then id: stable.
    largest = max(entry.token_share_pct, entry.cost_share_pct or Decimal(0))
    return (-largest, KINDS.index(entry.kind), entry.id)


def _pct(value: Decimal) -> str:
    """``12%``, ``0.5%``, ``<0.01%``: the fewest digits that say it."""
    if value == 0:
        return "0%"
    if 0 < value < _SHARE_QUANTUM:
        return "<0.01%"
    places = (
        Decimal(1) if abs(value) >= 10 else Decimal("0.1") if abs(value) >= 1 else _SHARE_QUANTUM
    )
    text = f"{value.quantize(places, rounding=ROUND_HALF_EVEN):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def _clean_name(name: str | None) -> str | None:
    """A name fit to print on one line: control characters dropped, bounded; None when blank."""
    if name is None:
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in name).split())
    if not text:
        return None
    return text if len(text) <= _NAME_MAX else text[: _NAME_MAX - 1] + "…"
