"""Render a notification from Jinja templates: one context, one file per message part.

The templates live in ``recon_job/notify/templates/`` and each renders one part of a
:class:`~recon_job.models.Message`:

=================  ==========================================================================
``subject.txt.j2``  the email subject and Slack header; one line (CR/LF are removed afterwards)
``body.txt.j2``     the plain-text email part
``body.html.j2``    the HTML email part: **autoescaped**, inline styles, tables, no scripts
``slack.txt.j2``    the Slack mrkdwn fallback text (use the ``mrkdwn`` filter on data)
=================  ==========================================================================

A user's ``templates_dir`` is searched first, then the package, so a user overrides any single
file and keeps the others. Every template sees the same context, built from one
:class:`~recon_job.notify.context.Notice` by :func:`~recon_job.notify.context.build_context`:

* ``event`` (``opened`` … ``test``), ``event_title``, ``group_key``, ``dedupe_key``, ``run_id``
* ``window``: ``kind``, ``key``, ``start``, ``end`` (exclusive), ``first_day``, ``last_day``
* ``status`` (``mismatch``, ``reconciled``, ``pending``, ``failed``), ``threshold_pct``
* ``verdict``: one sentence — how many groups drift against which rule, and that the window's
  totals are within tolerance when only groups drift (empty for a failed run)
* ``totals``: ``tokens``, ``requests``, ``cost``, each with ``label``, ``local``, ``openai``,
  ``difference``, ``pct`` (display strings: ``$1,234.56``, ``1,529``, ``+5.00%``; see
  :mod:`recon_job.notify.figures`) and ``exceeds``; empty when there is no result.
  ``totals_lines``: the same as an aligned plain-text table (header first)
* ``groups``: the top drifting groups (largest |cost difference| first, then |token
  difference|), each with ``title`` (day · model, plus the project and API key only when the
  result is grouped by them), ``name``, ``day``, ``model``, ``project_id``, ``api_key_id``,
  ``status``, ``tokens``/``requests``/``cost`` rows like the totals and ``lines`` (its aligned
  plain-text rows under ``groups_header``); ``groups_total`` and ``groups_more``;
  ``by_project``/``by_api_key``: whether the result is grouped by them
* ``resolved`` (group names; ``resolved_total``, ``resolved_more``), ``unpriced`` (``model``,
  ``service_tier``, ``requests``, ``tokens``; ``unpriced_more``), ``skipped`` (``reason``,
  ``count``), ``skipped_total``, ``pending_days``, ``likely_causes`` (sentences;
  ``likely_causes_more``), ``error`` (``reason``, ``message``) for ``failed``
* ``diagnosis`` (issue 12): empty (false) when the run's diagnosis has nothing to show; else
  ``summary`` (its first sentences; ``summary_more``) and ``bridge`` (None, or the window's cost
  difference in parts: ``difference``, ``parts`` — the largest by |amount|, each with ``name``,
  ``label``, ``amount`` and ``detail`` — ``parts_more`` and ``lines``, the parts as aligned
  text)

Every list is bounded (:mod:`recon_job.notify.detail`): a template shows what it is given and
says how many more there are; the email attaches every drifting group as CSV when it lists only
some, so its text says so.

Autoescaping: ``select_autoescape()``'s defaults match only ``.html``/``.htm``/``.xml`` and do
**not** escape ``alert.html.j2`` (reliability.md §8, verified), so ``html.j2`` is named
explicitly and everything else (text, subject, Slack) is left raw. Model names and project ids
come from logs and from OpenAI: untrusted data. ``StrictUndefined`` turns a typo in a user
template into an error at render time instead of a silently empty field.

The context and the webhook payload (schema ``recon-job.alert/v1``) are built in
:mod:`recon_job.notify.context`, the likely causes in :mod:`recon_job.causes`.

The relay's ``channel_failing`` notice has its own four templates in ``templates/channel_failing/``
(context: ``channel``, ``reason``, ``error``), rendered through the same environment by
:func:`render_parts`; they are not overridable: the notice says a channel's settings are broken,
so it does not depend on the user's templates.

A finding notice (``price_changed``, ``restated``, ``shadow_usage``, ``trend``:
:class:`~recon_job.notify.findings.FindingNotice`) has its four templates in ``templates/finding/``
(context: ``event``, ``event_title``, ``title``, ``lines``, ``subject_key``, ``group_key``,
``dedupe_key``, ``run_id``), rendered by :func:`render_finding`; a user's ``templates_dir`` may
override them as ``finding/<file>``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from recon_job.errors import ConfigError
from recon_job.models import Message, ReconResult, Usage, UsageKey, Window
from recon_job.notify.base import mrkdwn_escape
from recon_job.notify.context import EVENT_TITLES, Notice, build_context, build_payload
from recon_job.notify.findings import FindingNotice, finding_context, finding_payload

if TYPE_CHECKING:
    # Jinja2 is imported when a message is rendered: a run with no channel renders none.
    from jinja2 import Environment

SUBJECT_TEMPLATE: Final = "subject.txt.j2"
TEXT_TEMPLATE: Final = "body.txt.j2"
HTML_TEMPLATE: Final = "body.html.j2"
SLACK_TEMPLATE: Final = "slack.txt.j2"
#: Every template file of an alert, one per message part (a user may override each).
TEMPLATES: Final = (SUBJECT_TEMPLATE, TEXT_TEMPLATE, HTML_TEMPLATE, SLACK_TEMPLATE)

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    """``text`` with every line break (CR, LF and Unicode ones) and run of spaces made one space.

    A subject is an email header: a CR/LF in it would start a new header (``Bcc:``); the
    ``email`` package refuses it with ``ValueError`` (reliability.md §8), so it is removed here.
    """
    return _SPACES.sub(" ", _LINE_BREAKS.sub(" ", text)).strip()


@dataclass(frozen=True)
class TemplateSet:
    """The template file of each part of one kind of message."""

    subject: str
    text: str
    #: Autoescaped: its name ends in ``.html.j2``.
    html: str
    slack: str


#: An alert's templates (:data:`TEMPLATES`).
ALERT_TEMPLATES: Final = TemplateSet(SUBJECT_TEMPLATE, TEXT_TEMPLATE, HTML_TEMPLATE, SLACK_TEMPLATE)
#: The relay's notice that a channel is failing; context ``channel``, ``reason``, ``error``.
CHANNEL_FAILING_TEMPLATES: Final = TemplateSet(
    "channel_failing/subject.txt.j2",
    "channel_failing/body.txt.j2",
    "channel_failing/body.html.j2",
    "channel_failing/slack.txt.j2",
)
#: A finding notice's templates (:func:`render_finding`).
FINDING_TEMPLATES: Final = TemplateSet(
    "finding/subject.txt.j2",
    "finding/body.txt.j2",
    "finding/body.html.j2",
    "finding/slack.txt.j2",
)


@dataclass(frozen=True)
class Parts:
    """Every rendered part of one message."""

    #: One line, no CR/LF (an email header).
    subject: str
    text: str
    html: str
    #: Leading and trailing blank lines removed.
    slack_text: str


@functools.lru_cache(maxsize=16)
def _environment(templates_dir: str | None) -> Environment:
    from jinja2 import (
        BaseLoader,
        ChoiceLoader,
        Environment,
        FileSystemLoader,
        PackageLoader,
        StrictUndefined,
        select_autoescape,
    )

    loaders: list[BaseLoader] = []
    if templates_dir is not None:
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(PackageLoader("recon_job.notify", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mrkdwn"] = mrkdwn_escape
    return env


def environment(templates_dir: Path | None = None) -> Environment:
    """The (cached) Jinja environment for ``templates_dir`` (None: the package's templates)."""
    return _environment(None if templates_dir is None else str(templates_dir))


def _render(env: Environment, name: str, context: Mapping[str, Any], where: Path | None) -> str:
    import jinja2

    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"template {e.filename or name}, line {e.lineno}: {e.message}") from e
    except jinja2.TemplateError as e:
        origin = f" (looked in {where} and the built-in templates)" if where else ""
        raise ConfigError(f"template {name}{origin}: {e.message or type(e).__name__}") from e


def render_parts(
    templates: TemplateSet, context: Mapping[str, Any], templates_dir: Path | None = None
) -> Parts:
    """Render every part of one message from ``templates`` with ``context``.

    ``templates_dir`` overrides the package's templates file by file. Raises
    :class:`~recon_job.errors.ConfigError` when a template is broken (a syntax error, an
    undefined variable), naming the template.
    """
    env = environment(templates_dir)
    return Parts(
        subject=one_line(_render(env, templates.subject, context, templates_dir)),
        text=_render(env, templates.text, context, templates_dir),
        html=_render(env, templates.html, context, templates_dir),
        slack_text=_render(env, templates.slack, context, templates_dir).strip(),
    )


def render_message(
    notice: Notice, *, templates_dir: Path | None = None, max_groups: int = 10
) -> Message:
    """Render every part of the notification ``notice`` describes, and its webhook payload.

    At most ``max_groups`` drifting groups are listed. Raises
    :class:`~recon_job.errors.ConfigError` when a template is broken (a syntax error, an
    undefined variable), naming the template.
    """
    context = build_context(notice, max_groups=max_groups)
    parts = render_parts(ALERT_TEMPLATES, context, templates_dir)
    return _message(notice, parts, build_payload(context, summary=parts.subject))


def render_finding(
    notice: FindingNotice, *, run_id: int | None = None, templates_dir: Path | None = None
) -> Message:
    """Render every part of a finding notice and its webhook payload (schema
    ``recon-job.finding/v1``). Its dedupe key and group key are the notice's own.

    Raises :class:`~recon_job.errors.ConfigError` when a template is broken.
    """
    context = finding_context(
        notice, run_id=run_id, event_title=EVENT_TITLES.get(notice.event, notice.event)
    )
    parts = render_parts(FINDING_TEMPLATES, context, templates_dir)
    return _message(notice, parts, finding_payload(notice, summary=parts.subject, run_id=run_id))


def _message(notice: Notice | FindingNotice, parts: Parts, payload: Mapping[str, Any]) -> Message:
    """The stored message of ``notice``: its keys, every rendered part and the payload."""
    return Message(
        dedupe_key=notice.dedupe_key,
        event=notice.event,
        group_key=notice.group_key,
        subject=parts.subject,
        text=parts.text,
        html=parts.html,
        slack_text=parts.slack_text,
        payload=payload,
    )


def sample_finding() -> FindingNotice:
    """A sample ``price_changed`` notice (for checking the ``finding/`` templates)."""
    return FindingNotice(
        event="price_changed",
        subject_key="price:gpt-5:cached input:standard:0.125",
        title="gpt-5 cached input: $0.125/1M billed, $0.25/1M in your table",
        lines=("OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25",),
    )


def sample_result() -> ReconResult:
    """A realistic drifting day: missing requests, a stale price, an unlogged and an unpriced
    model, skipped log lines."""
    # compare is pure (no I/O); using it keeps the sample consistent with real results.
    from recon_job.compare import reconcile
    from recon_job.models import Tolerance, UnpricedKey, UsageTotals

    day = date(2026, 3, 14)
    window = Window("daily", day, date(2026, 3, 15))
    local = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o", "proj_app"): Usage(
                4_100_000, 1_200_000, 820_000, 3_900, Decimal("17.450000")
            ),
            UsageKey(day, "gpt-4o-mini", "proj_app"): Usage(
                9_000_000, 0, 2_000_000, 12_000, Decimal("1.800000")
            ),
        },
        skipped={"malformed_json": 3, "missing_usage": 12},
        unpriced={UnpricedKey("ft:gpt-4o-mini:acme", "standard"): Usage(50_000, 0, 10_000, 40)},
    )
    official = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o", "proj_app"): Usage(
                4_600_000, 1_200_000, 910_000, 4_400, Decimal("19.820000")
            ),
            UsageKey(day, "gpt-4o-mini", "proj_app"): Usage(
                9_000_000, 0, 2_000_000, 12_000, Decimal("2.550000")
            ),
            UsageKey(day, "o3-mini", "proj_batch"): Usage(
                300_000, 0, 150_000, 220, Decimal("0.990000")
            ),
        }
    )
    return reconcile(local, official, window=window, tolerance=Tolerance())


def sample_message(dedupe_key: str = "test", *, templates_dir: Path | None = None) -> Message:
    """A sample drift alert for ``recon-job alerts test``, rendered with the real templates."""
    result = sample_result()
    notice = Notice("test", result.window.key, dedupe_key, result.window, result)
    return render_message(notice, templates_dir=templates_dir)


def check_templates(templates_dir: Path | None) -> list[str]:
    """Problems rendering the sample message with ``templates_dir`` (empty: all fine).

    Meant for config load / ``check-config``: a broken user template is found before an alert
    needs it.
    """
    if templates_dir is not None and not templates_dir.is_dir():
        return [f"templates directory {templates_dir} does not exist"]
    try:
        sample_message(templates_dir=templates_dir)
        window = Window("daily", date(2026, 3, 14), date(2026, 3, 15))
        failed = Notice(
            "failed", window.key, "check", window, None, error=("sample", "a sample failure")
        )
        render_message(failed, templates_dir=templates_dir)
        render_finding(sample_finding(), templates_dir=templates_dir)
    except ConfigError as e:
        return list(e.problems)
    return []


__all__ = [
    "ALERT_TEMPLATES",
    "CHANNEL_FAILING_TEMPLATES",
    "FINDING_TEMPLATES",
    "HTML_TEMPLATE",
    "SLACK_TEMPLATE",
    "SUBJECT_TEMPLATE",
    "TEMPLATES",
    "TEXT_TEMPLATE",
    "Parts",
    "TemplateSet",
    "check_templates",
    "environment",
    "one_line",
    "render_finding",
    "render_message",
    "render_parts",
    "sample_finding",
    "sample_message",
    "sample_result",
]
