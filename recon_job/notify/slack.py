"""Slack incoming webhooks: a Block Kit message with the rendered mrkdwn text as its fallback.

The body is ``{"text": <Message.slack_text>, "blocks": [...]}``: a header (the subject), a
section with the rendered Slack text, a section of summary fields (status, window, tokens,
requests, cost), a section listing the top drifting groups, and a context footer
``recon-job · <dedupe_key>`` so a duplicate after a crash is recognisable (reliability.md
§4.1). Blocks are built from ``Message.payload`` (schema ``recon-job.alert/v1``), so they stay
in step with the webhook. Block Kit limits are respected: at most 50 blocks, header text ≤ 150
characters, section text ≤ 3000, at most 10 fields of ≤ 2000 characters each; longer lists end
in "…and N more". The fallback ``text`` is the rendered Slack text, which lists only the top
entries (:mod:`recon_job.notify.detail`), and is cut by whole lines to at most 40,000
characters, where Slack would truncate it. Figures read like the email's (``$1,234.56``,
``1,529 local vs 1,778 OpenAI``, :mod:`recon_job.notify.figures`). Data (model names, project
ids) is mrkdwn-escaped, so it cannot form links or ``<!channel>`` mentions.

Outcomes (reliability.md §4.2, Alertmanager ``slack.go``): 200 with body ``ok`` → delivered; 200
with any other body → permanent; 429 → transient with ``retry_after`` from ``Retry-After``
(default 30 s) — never slept here, the relay waits, since "continuing to send messages after
being rate limited runs the risk of having your application permanently disabled"; 400, 403,
404, 410 and other 4xx → permanent with Slack's error text (``invalid_payload``,
``channel_not_found``, ``channel_is_archived`` …); 5xx, timeouts and connection errors →
transient.

The webhook URL is a secret (its path is the token): it never appears in a message, an
exception or a log line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import structlog

from recon_job.errors import NotifyError
from recon_job.families import COMPLETIONS
from recon_job.models import Message
from recon_job.notify import figures
from recon_job.notify.base import HttpTransport, Wording, mrkdwn_escape
from recon_job.notify.figures import decimal_or_none, main_quantity
from recon_job.report.formats import count_text, pct_text, quantity_label

log = structlog.get_logger(__name__)

#: Logged (debug) after Slack answered ``ok``.
EVENT_SENT: Final = "notify.slack.sent"

#: Block Kit limits (api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS: Final = 50
MAX_HEADER: Final = 150
MAX_SECTION: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD: Final = 2000
#: The fallback ``text``: Slack truncates a message's text beyond 40,000 characters
#: (api.slack.com/changelog/2018-04-truncating-really-long-messages); cut it ourselves, by
#: whole lines, saying so.
MAX_TEXT: Final = 40_000
#: Lines offered to one section (a section holds 3,000 characters: fewer ever fit).
MAX_LINES: Final = 100
#: Seconds to wait after a 429 that names no ``Retry-After``.
DEFAULT_RETRY_AFTER: Final = 30.0

_ERROR_CODE = re.compile(r"^[a-z_]{1,60}$")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines_within(lines: Sequence[str], limit: int, *, hidden: int = 0) -> str:
    """``lines`` joined, as many as fit in ``limit`` characters with a "…and N more" line."""
    shown: list[str] = []
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1 + hidden
        tail = f"\n…and {rest:,} more" if rest else ""
        candidate = "\n".join([*shown, line])
        if len(candidate) + len(tail) > limit:
            more = len(lines) - len(shown) + hidden
            return _cut("\n".join([*shown, f"…and {more:,} more"]), limit)
        shown.append(line)
    text = "\n".join(shown)
    if hidden:
        text += f"\n…and {hidden:,} more"
    return _cut(text, limit)


def _pct(value: object) -> str:
    return pct_text(decimal_or_none(value))


def _money(value: object) -> str:
    amount = decimal_or_none(value)
    return "n/a" if amount is None else figures.money(amount)


def _count(value: object) -> str:
    return count_text(value) if isinstance(value, int) else "n/a"


def _side(totals: Mapping[str, Any], name: str) -> str:
    local, openai, diff = totals["local"], totals["openai"], totals["difference"]
    shown = _money if name == "cost" else _count
    return (
        f"{shown(local.get(name))} local vs {shown(openai.get(name))} OpenAI "
        f"({_pct(diff.get(f'{name}_pct'))})"
    )


def _group_line(group: Mapping[str, Any]) -> str:
    # A project or key id is present only when the result is grouped by it.
    where = " ".join(
        f"{label} {mrkdwn_escape(part)}"
        for label, part in (("project", group.get("project_id")), ("key", group.get("api_key_id")))
        if part
    )
    local, openai, diff = group["local"], group["openai"], group["difference"]
    family = str(group.get("family") or COMPLETIONS)
    # Each family by its own count: tokens, images, characters, seconds of audio ...
    main = main_quantity(family)
    return (
        f"• {mrkdwn_escape(group['date'])}"
        + ("" if family == COMPLETIONS else f" {mrkdwn_escape(family)}")
        + f" `{mrkdwn_escape(group['model'])}`"
        + (f" {where}" if where else "")
        + f": cost {_money(local.get('cost'))} local vs {_money(openai.get('cost'))} OpenAI "
        f"({_pct(diff.get('cost_pct'))}), "
        f"{quantity_label(main)} {_count(local.get(main))} vs {_count(openai.get(main))}, "
        f"requests {_count(local.get('requests'))} local vs "
        f"{_count(openai.get('requests'))} OpenAI"
    )


def _omitted(payload: Mapping[str, Any], name: str) -> int:
    omitted = payload.get("omitted")
    value = omitted.get(name) if isinstance(omitted, Mapping) else None
    return value if isinstance(value, int) else 0


def build_blocks(message: Message) -> list[dict[str, Any]]:
    """The Block Kit blocks for ``message``, within Slack's limits."""
    payload = message.payload
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(message.subject or "recon-job", MAX_HEADER),
            },
        }
    ]
    if message.slack_text.strip():
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(message.slack_text, MAX_SECTION)},
            }
        )
    fields: list[str] = []
    if payload.get("status"):
        fields.append(f"*Status*\n{mrkdwn_escape(payload['status'])}")
    window = payload.get("window")
    if isinstance(window, Mapping) and window.get("key"):
        fields.append(f"*Window*\n{mrkdwn_escape(window['key'])}")
    totals = payload.get("totals")
    if isinstance(totals, Mapping):
        for name, label in (("cost", "Cost (USD)"), ("tokens", "Tokens"), ("requests", "Requests")):
            fields.append(f"*{label}*\n{_side(totals, name)}")
    if fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f, MAX_FIELD)} for f in fields[:MAX_FIELDS]
                ],
            }
        )
    # At most a section's worth of lines: the payload lists the top groups only (detail.py).
    groups = [g for g in (payload.get("groups") or ())[:MAX_LINES] if isinstance(g, Mapping)]
    if groups:
        total = int(payload.get("groups_total") or len(groups))
        header = f"*{total:,} group{'s' if total != 1 else ''} out of tolerance*"
        body = _lines_within(
            [_group_line(g) for g in groups],
            MAX_SECTION - len(header) - 1,
            hidden=max(0, total - len(groups)),
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{header}\n{body}"}})
    resolved = [str(r) for r in (payload.get("resolved") or ())[:MAX_LINES]]
    if resolved:
        header = "*Back within tolerance*"
        hidden = len(payload.get("resolved") or ()) - len(resolved) + _omitted(payload, "resolved")
        body = _lines_within(
            [f"• {mrkdwn_escape(r)}" for r in resolved], MAX_SECTION - 30, hidden=hidden
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{header}\n{body}"}})
    footer = {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": _cut(f"recon-job · {mrkdwn_escape(message.dedupe_key)}", 3000),
            }
        ],
    }
    return [*blocks[: MAX_BLOCKS - 1], footer]


def build_body(message: Message) -> dict[str, Any]:
    """The JSON body posted to Slack: fallback ``text`` (at most :data:`MAX_TEXT` characters)
    plus ``blocks``."""
    text = message.slack_text or message.subject
    if len(text) > MAX_TEXT:
        text = _lines_within(text.splitlines(), MAX_TEXT)
    return {"text": text, "blocks": build_blocks(message)}


def _error_code(text: str) -> str:
    """``text`` when it is one of Slack's error codes (``channel_not_found``), else ``""``."""
    return text if _ERROR_CODE.match(text) else ""


class SlackTransport(HttpTransport):
    """Post a :class:`Message` to a Slack incoming webhook."""

    channel = "slack"
    wording = Wording(
        receiver="Slack webhook",
        rate_limited="Slack is rate limiting this webhook (429); retry after {seconds:g} s",
        server_error="Slack failed ({status}){detail}",
        redirect="Slack webhook answered {status} (a redirect, not followed); check the URL",
        rejected="Slack rejected the message ({status}){detail}",
    )
    # Never slept here: the relay defers the channel. "Continuing to send messages after being
    # rate limited runs the risk of having your application permanently disabled" (Slack).
    default_retry_after = DEFAULT_RETRY_AFTER

    def reason(self, status: int, excerpt: str) -> str:
        """Slack's error code (``channel_not_found`` …) when it sent one, else ``http_<status>``."""
        return _error_code(excerpt) or super().reason(status, excerpt)

    def notify(self, message: Message) -> None:
        """POST once; raise ``NotifyError`` unless Slack answers 200 ``ok``."""
        body = json.dumps(build_body(message), ensure_ascii=False).encode("utf-8")
        started = time.monotonic()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with self.post(body, headers) as response:
            text = self.excerpt(response)
            if response.status_code != 200:
                raise self.failure(response, text)
            if text != "ok":
                raise NotifyError(
                    "Slack answered 200 but not 'ok'" + (f": {text}" if text else ""),
                    permanent=True,
                    reason=_error_code(text) or "unexpected_response",
                )
            log.debug(
                EVENT_SENT,
                dedupe_key=message.dedupe_key,
                seconds=round(time.monotonic() - started, 3),
            )


__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_BLOCKS",
    "MAX_SECTION",
    "MAX_TEXT",
    "SlackTransport",
    "build_blocks",
    "build_body",
]
