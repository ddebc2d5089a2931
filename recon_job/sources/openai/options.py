"""How to reach OpenAI's organization Usage and Costs APIs, and what to ask them for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from recon_job.errors import ConfigError

#: The ``group_by`` values recon-job understands (both endpoints also accept more).
GROUP_BY_KEYS: Final = frozenset({"model", "project_id", "api_key_id"})


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions:
    """How to reach OpenAI's organization Usage and Costs APIs, and what to ask for."""

    #: API root, without a trailing slash (``OPENAI_BASE_URL`` in tests and proxies).
    base_url: str = "https://api.openai.com/v1"
    #: Organization admin key (``sk-admin-…``) with ``api.usage.read``. Secret: left out of repr.
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

    def __post_init__(self) -> None:
        problems = []
        # Secret files usually end in a newline; anything else odd would make requests reject
        # the header with the key quoted in its message, so refuse it here without echoing it.
        key = self.admin_key.strip()
        if not key:
            problems.append("the OpenAI admin key is empty; set OPENAI_ADMIN_KEY")
        elif not all("!" <= char <= "~" for char in key):
            problems.append(
                "the OpenAI admin key contains spaces or non-ASCII characters; "
                "check OPENAI_ADMIN_KEY"
            )
        unknown = sorted(set(self.group_by) - GROUP_BY_KEYS)
        if unknown:
            problems.append(
                f"unknown OpenAI group_by value(s) {unknown}; use {sorted(GROUP_BY_KEYS)}"
            )
        if not (self.connect_timeout > 0 and self.read_timeout > 0):
            problems.append("OpenAI connect and read timeouts must be positive")
        if self.max_pages < 1:
            problems.append("OpenAI max_pages must be at least 1")
        if not self.base_url.startswith(("https://", "http://")):
            problems.append(f"OpenAI base_url must be an http(s) URL, got {self.base_url!r}")
        if problems:
            raise ConfigError(problems)
        # Config loaders may hand over lists; keep the dataclass hashable and immutable.
        object.__setattr__(self, "admin_key", key)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "project_ids", tuple(self.project_ids))
        object.__setattr__(self, "api_key_ids", tuple(self.api_key_ids))
        object.__setattr__(self, "group_by", tuple(self.group_by))
