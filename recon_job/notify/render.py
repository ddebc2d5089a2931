"""Render a notification from Jinja templates: one context, one file per message part.

The templates live in ``recon_job/notify/templates/`` and each renders one part of a
:class:`~recon_job.notify.base.Message`:

=================  ==========================================================================
``subject.txt.j2``  the email subject and Slack header; one line (CR/LF are removed afterwards)
``body.txt.j2``     the plain-text email part
``body.html.j2``    the HTML email part: **autoescaped**, inline styles, tables, no scripts
``slack.txt.j2``    the Slack mrkdwn fallback text (use the ``mrkdwn`` filter on data)
=================  ==========================================================================

A user's ``templates_dir`` is searched first, then the package, so a user overrides any single
file and keeps the others. Every template sees the same context (:func:`build_context`):

* ``event`` (``opened`` … ``test``), ``event_title``, ``group_key``, ``dedupe_key``, ``run_id``
* ``window``: ``kind``, ``key``, ``start``, ``end`` (exclusive), ``first_day``, ``last_day``
* ``status`` (``mismatch``, ``reconciled``, ``pending``, ``failed``), ``threshold_pct``
* ``totals``: ``tokens``, ``requests``, ``cost``, each with ``label``, ``local``, ``openai``,
  ``difference``, ``pct`` (display strings) and ``exceeds``; empty when there is no result
* ``groups``: the top drifting groups (largest |cost difference| first, then |token
  difference|), each with ``day``, ``model``, ``project_id``, ``api_key_id``, ``status`` and
  ``tokens``/``requests``/``cost`` rows like the totals; ``groups_total`` and ``groups_more``
* ``resolved`` (group names), ``unpriced`` (``model``, ``requests``, ``tokens``), ``skipped``
  (``reason``, ``count``), ``skipped_total``, ``pending_days``, ``likely_causes`` (sentences),
  ``error`` (``reason``, ``message``) for ``failed``

Autoescaping: ``select_autoescape()``'s defaults match only ``.html``/``.htm``/``.xml`` and do
**not** escape ``alert.html.j2`` (reliability.md §8, verified), so ``html.j2`` is named
explicitly and everything else (text, subject, Slack) is left raw. Model names and project ids
come from logs and from OpenAI: untrusted data. ``StrictUndefined`` turns a typo in a user
template into an error at render time instead of a silently empty field.

The context and the webhook payload (schema ``recon-job.alert/v1``) are built in
:mod:`recon_job.notify.context`, the likely causes in :mod:`recon_job.causes`; their
names are re-exported here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from recon_job.causes import likely_causes
from recon_job.errors import ConfigError
from recon_job.models import AlertEvent, GroupResult, Message, ReconResult, Usage, UsageKey, Window
from recon_job.notify.context import (
    EVENT_TITLES,
    PAYLOAD_SCHEMA,
    build_context,
    build_payload,
    group_name,
    top_groups,
)

SUBJECT_TEMPLATE: Final = "subject.txt.j2"
TEXT_TEMPLATE: Final = "body.txt.j2"
HTML_TEMPLATE: Final = "body.html.j2"
SLACK_TEMPLATE: Final = "slack.txt.j2"
#: Every template file, one per message part.
TEMPLATES: Final = (SUBJECT_TEMPLATE, TEXT_TEMPLATE, HTML_TEMPLATE, SLACK_TEMPLATE)

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    """``text`` with every line break (CR, LF and Unicode ones) and run of spaces made one space.

    A subject is an email header: a CR/LF in it would start a new header (``Bcc:``); the
    ``email`` package refuses it with ``ValueError`` (reliability.md §8), so it is removed here.
    """
    return _SPACES.sub(" ", _LINE_BREAKS.sub(" ", text)).strip()


def mrkdwn_escape(value: object) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn, so data can't form links or @mentions.

    Slack reads ``<!channel>`` and ``<https://x|text>`` as control sequences; its docs ask for
    exactly these three characters to be escaped in message text.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@functools.lru_cache(maxsize=16)
def _environment(templates_dir: str | None) -> Environment:
    loaders: list[jinja2.BaseLoader] = []
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
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"template {e.filename or name}, line {e.lineno}: {e.message}") from e
    except jinja2.TemplateError as e:
        origin = f" (looked in {where} and the built-in templates)" if where else ""
        raise ConfigError(f"template {name}{origin}: {e.message or type(e).__name__}") from e


def render_message(
    *,
    event: AlertEvent,
    group_key: str,
    dedupe_key: str,
    window: Window,
    result: ReconResult | None,
    error: tuple[str, str] | None = None,
    firing: Sequence[GroupResult] = (),
    resolved: Sequence[str] = (),
    run_id: int | None = None,
    templates_dir: Path | None = None,
    max_groups: int = 10,
) -> Message:
    """Render every part of one notification.

    ``result`` is None when the run failed; then ``error`` is ``(reason, message)``.
    ``firing`` are the groups to report as drifting (default: the result's mismatches);
    ``resolved`` names the groups back within tolerance. At most ``max_groups`` groups are
    listed. Raises :class:`~recon_job.errors.ConfigError` when a template is broken (a syntax
    error, an undefined variable), naming the template.
    """
    context = build_context(
        event=event,
        group_key=group_key,
        dedupe_key=dedupe_key,
        window=window,
        result=result,
        error=error,
        firing=firing,
        resolved=resolved,
        run_id=run_id,
        max_groups=max_groups,
    )
    env = environment(templates_dir)
    subject = one_line(_render(env, SUBJECT_TEMPLATE, context, templates_dir))
    return Message(
        dedupe_key=dedupe_key,
        event=event,
        group_key=group_key,
        subject=subject,
        text=_render(env, TEXT_TEMPLATE, context, templates_dir),
        html=_render(env, HTML_TEMPLATE, context, templates_dir),
        slack_text=_render(env, SLACK_TEMPLATE, context, templates_dir).strip(),
        payload=build_payload(context, summary=subject),
    )


def sample_result() -> ReconResult:
    """A realistic drifting day: missing requests, a stale price, an unlogged and an unpriced
    model, skipped log lines."""
    # compare is pure (no I/O); using it keeps the sample consistent with real results.
    from recon_job.compare import reconcile
    from recon_job.models import Tolerance, UsageTotals

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
        unpriced={"ft:gpt-4o-mini:acme": Usage(50_000, 0, 10_000, 40)},
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
    return render_message(
        event="test",
        group_key=result.window.key,
        dedupe_key=dedupe_key,
        window=result.window,
        result=result,
        templates_dir=templates_dir,
    )


def check_templates(templates_dir: Path | None) -> list[str]:
    """Problems rendering the sample message with ``templates_dir`` (empty: all fine).

    Meant for config load / ``check-config``: a broken user template is found before an alert
    needs it.
    """
    if templates_dir is not None and not templates_dir.is_dir():
        return [f"templates directory {templates_dir} does not exist"]
    try:
        sample_message(templates_dir=templates_dir)
        render_message(
            event="failed",
            group_key="daily:2026-03-14",
            dedupe_key="check",
            window=Window("daily", date(2026, 3, 14), date(2026, 3, 15)),
            result=None,
            error=("sample", "a sample failure"),
            templates_dir=templates_dir,
        )
    except ConfigError as e:
        return list(e.problems)
    return []


__all__ = [
    "EVENT_TITLES",
    "HTML_TEMPLATE",
    "PAYLOAD_SCHEMA",
    "SLACK_TEMPLATE",
    "SUBJECT_TEMPLATE",
    "TEMPLATES",
    "TEXT_TEMPLATE",
    "build_context",
    "build_payload",
    "check_templates",
    "environment",
    "group_name",
    "likely_causes",
    "mrkdwn_escape",
    "one_line",
    "render_message",
    "sample_message",
    "sample_result",
    "top_groups",
]
