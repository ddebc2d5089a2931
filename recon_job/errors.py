"""The errors recon-job raises, one per boundary.

Every error is a :class:`ReconError`. ``permanent`` is data, not a subclass: a permanent error
(bad key, unreadable input, a malformed config value) will fail again on retry, a transient one
(API down, deadline hit, database locked) is worth retrying. Only ``cli.py`` maps them to exit
codes: permanent -> 2, transient -> 3.

Messages are written for the person running the job: they name the thing that is wrong and how to
fix it, and they never contain a secret.
"""

from __future__ import annotations


class ReconError(Exception):
    """Base of every error recon-job raises on purpose."""

    #: True when retrying cannot help (a bad key, bad input); False for transient faults.
    permanent: bool = True

    def __init__(self, message: str, *, permanent: bool | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent
        #: A short machine-readable reason (``quota_exhausted``, ``deadline`` ...) for history.
        self.reason = reason or type(self).__name__

    def __str__(self) -> str:
        return self.message


class ConfigError(ReconError):
    """The configuration is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = (
            self.problems[0]
            if len(self.problems) == 1
            else "configuration has {} problems:\n{}".format(
                len(self.problems), "\n".join(f"  - {p}" for p in self.problems)
            )
        )
        super().__init__(text, permanent=True, reason="config")


class SourceError(ReconError):
    """A usage source could not deliver its figures. Never to be read as zero usage."""


class UsageApiError(SourceError):
    """OpenAI's Usage or Costs API failed (HTTP error, bad body, pagination loop, deadline)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        reason: str,
        status: int | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent, reason=reason)
        #: HTTP status of the failing response, when there was one.
        self.status = status


class DeadlineExceeded(SourceError):
    """A fetch ran out of the run's time budget (transient, reason ``deadline``).

    Raised by the generic HTTP layer; each API client reports it as its own error type."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False, reason="deadline")


class LogSourceError(SourceError):
    """Local logs (files, a database table, a CSV export) could not be read at all."""


class StoreError(ReconError):
    """The history database failed."""


class Interrupted(ReconError):
    """A shutdown was requested (SIGTERM): the run stopped at a checkpoint, marked interrupted.

    Transient: the period stays due and the next run redoes it. The CLI exits 143 (128 +
    SIGTERM), as Kubernetes expects of a terminated container (reliability.md §0 rule 9).
    """

    def __init__(self, message: str = "interrupted: shutdown requested") -> None:
        super().__init__(message, permanent=False, reason="interrupted")
        #: The run marked ``interrupted``, once ``job.run_once`` has recorded it.
        self.run_id: int | None = None


class NotifyError(ReconError):
    """A notification channel failed; ``permanent`` stops retries (a 404 webhook, a bad login)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent, reason=reason)
        #: Seconds the receiver asked us to wait (Slack's 429 ``Retry-After``), if any.
        self.retry_after = retry_after
