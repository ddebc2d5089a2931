"""Model-name normalisation, so ``gpt-4o-mini-2024-07-18`` and ``gpt-4o-mini`` compare as one.

OpenAI's Usage API and Costs line items name dated snapshots; applications usually log the alias
they asked for. Both sides go through the same :class:`ModelNamer` before they are compared.
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
