"""Model-name normalisation, so ``gpt-4o-mini-2024-07-18`` and ``gpt-4o-mini`` compare as one.

OpenAI's Usage API and Costs line items name dated snapshots; applications usually log the alias
they asked for. Both sides go through the same :class:`ModelNamer` before they are compared.

Stripping the snapshot date is for *comparison* only: a snapshot may cost more than its alias
(``gpt-4o-2024-05-13`` is USD 5/15 per 1M, ``gpt-4o`` 2.50/10), so prices are looked up under
:meth:`ModelNamer.aliased` — the user's aliases applied, the date kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ModelNamer:
    """Maps a reported model name to the name both sides are compared under."""

    #: Exact names (as logged or as reported) mapped to the name to compare under. Wins over the
    #: date-suffix rule, and is applied after it too, so an alias may name either form.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Strip a trailing ``-YYYY-MM-DD`` snapshot date.
    strip_date_suffix: bool = True

    def normalize(self, name: str) -> str:
        """The comparison name of ``name``."""
        name = name.strip()
        if name in self.aliases:
            return self.aliases[name]
        if self.strip_date_suffix:
            name = _DATE_SUFFIX.sub("", name)
        return self.aliases.get(name, name)

    def aliased(self, name: str) -> str:
        """``name`` with the user's alias applied but its snapshot date kept: the price name.

        ``prod-4o`` aliased to ``gpt-4o`` prices as ``gpt-4o``; ``gpt-4o-2024-05-13`` stays
        itself, since a snapshot is priced at its own entry unless the table says it shares its
        alias's price.
        """
        name = name.strip()
        return self.aliases.get(name, name)


def snapshot_base(name: str) -> str | None:
    """The alias a dated snapshot name belongs to (``gpt-4o`` for ``gpt-4o-2024-05-13``).

    None when ``name`` does not end in a ``-YYYY-MM-DD`` snapshot date.
    """
    name = name.strip()
    base = _DATE_SUFFIX.sub("", name)
    return base if base != name and base else None
