"""The ``[families]`` section: how billed line items the built-in rules do not know are mapped.

``[families.line_items]`` maps a regular expression (searched, case-insensitive, in the Costs
API's ``line_item`` text) to a usage family, e.g. ``"^Text tokens$" = "completions"``. Patterns
are tried in file order before the built-in rules; a named group ``model`` picks the model.
Every pattern must compile and name a known family (or ``other``); all problems are listed at
once, by ``check-config`` and every run alike.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recon_job.config.load import Problem, rule_errors
from recon_job.families import FAMILIES, OTHER


class FamiliesSettings(BaseModel):
    """How billed line items map to usage families (section ``[families]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Regular expression -> family, tried before the built-in line-item rules.
    line_items: dict[str, str] = Field(default_factory=dict)

    @field_validator("line_items")
    @classmethod
    def _check_line_items(cls, value: dict[str, str]) -> dict[str, str]:
        found = line_item_problems(value)
        if found:
            raise rule_errors(cls.__name__, found)
        return value


def line_item_problems(patterns: dict[str, str]) -> list[Problem]:
    """Every pattern that does not compile or names no family, located by the pattern."""
    known = (*FAMILIES, OTHER)
    found: list[Problem] = []
    for pattern, family in patterns.items():
        try:
            re.compile(pattern)
        except re.error as e:
            found.append(((pattern,), f"{pattern!r} is not a regular expression ({e})", pattern))
        if family not in known:
            found.append(
                (
                    (pattern,),
                    f"{pattern!r} maps to unknown family {family!r}; known: {', '.join(known)}",
                    family,
                )
            )
    return found
