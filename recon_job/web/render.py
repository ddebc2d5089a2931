"""Rendering pages: one Jinja ``Environment`` (autoescape on, ``StrictUndefined``) over the
templates shipped in the package, and the number formats and colours the pages share."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from recon_job.report.formats import count_text, money_text, pct_text, signed_money_text


def wants_json(request: Request) -> bool:
    """API clients get JSON errors: ``/api/`` paths, or no ``text/html`` in ``Accept``."""
    if request.url.path.startswith("/api/"):
        return True
    return "text/html" not in request.headers.get("accept", "")


def side(difference: Decimal | int | None) -> str:
    """The colour class of a difference: local higher, OpenAI higher, or none."""
    if difference is None or difference == 0:
        return "same"
    return "local-higher" if difference > 0 else "openai-higher"


def signed_count(value: int | Decimal) -> str:
    """A count with its sign and thousands separators; a plain ``0`` for no difference."""
    return "0" if value == 0 else count_text(value, signed=True)


def pct_shown(value: Decimal | None) -> str:
    """A percentage with its sign; a plain ``0.00%`` for no difference."""
    return "0.00%" if value is not None and value == 0 else pct_text(value)


@cache
def environment() -> Environment:
    """The pages' Jinja environment."""
    env = Environment(
        loader=PackageLoader("recon_job.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        # The templates ship in the package and never change under a running process: no stat
        # of the file on every page.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=money_text,
        signed_money=signed_money_text,
        count=count_text,
        signed_count=signed_count,
        pct=pct_shown,
        side=side,
        pct_plain=lambda v: f"{Decimal(v).normalize():f}%",
    )
    return env


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """``template`` rendered with ``context`` and what every page has (the CSRF token)."""
    session = getattr(request.state, "session", None)
    body = render_page(
        template,
        context,
        csrf=session.csrf if session is not None else None,
        path=request.url.path,
    )
    return HTMLResponse(body, status_code=status, headers=dict(headers or {}))


def render_page(template: str, context: Mapping[str, Any], *, csrf: str | None, path: str) -> str:
    """``template`` rendered with ``context``, the CSRF token (None: no forms) and the path."""
    return environment().get_template(template).render(csrf=csrf, path=path, **context)


def error_page(
    request: Request,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    login: bool = False,
) -> HTMLResponse:
    """An error for people: what is wrong, and the sign-in form when that is what helps."""
    target = request.url.path
    return page(
        request,
        "error.html.j2",
        {"status": status, "message": message, "login": login, "next": target},
        status=status,
        headers=headers,
    )
