"""How to reach OpenAI's organization Usage and Costs APIs, and what to ask them for.

The options carry validated data: the admin key (stripped, printable ASCII), the base URL, the
grouping and the limits are checked on the settings they are built from
(:class:`recon_job.config.OpenAISettings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from recon_job.families import FAMILIES

#: The ``group_by`` values recon-job understands (both endpoints also accept more).
GROUP_BY_KEYS: Final = frozenset({"model", "project_id", "api_key_id"})


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions:
    """How to reach OpenAI's organization Usage and Costs APIs, and what to ask for."""

    #: API root, without a trailing slash (``OPENAI_BASE_URL`` in tests and proxies).
    base_url: str = "https://api.openai.com/v1"
    #: Organization admin key (``sk-admin-…``) with ``api.usage.read``, without surrounding
    #: whitespace. Secret: left out of repr.
    admin_key: str = field(repr=False)
    #: Only count these projects (``project_ids[]`` filter); empty means the whole organization.
    project_ids: tuple[str, ...] = ()
    #: Only count these API key ids (``api_key_ids[]`` filter); empty means every key.
    api_key_ids: tuple[str, ...] = ()
    #: Dimensions to group by: ``model`` and optionally ``project_id``, ``api_key_id``.
    group_by: tuple[str, ...] = ("model",)
    #: Seconds to wait for a TCP connection.
    connect_timeout: float = 5.0
    #: Seconds to wait between bytes of the response (not a wall-clock limit).
    read_timeout: float = 30.0
    #: Refuse to fetch more pages than this for one window (a pagination loop guard).
    max_pages: int = 1000
    #: The usage families fetched, each from its own endpoint (``openai.families``).
    families: tuple[str, ...] = FAMILIES
    #: The user's ``[families.line_items]`` patterns: (regex, family), tried first, in order.
    line_items: tuple[tuple[str, str], ...] = ()
    #: The most distinct groups one window's answer may hold (``reconcile.max_groups``): more
    #: is a pathological answer, refused before it is held whole.
    max_groups: int = 10_000
