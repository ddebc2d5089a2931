"""The request-side of :mod:`recon_job.web.auth`: who is asking, and may they change things."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from recon_job.web.auth import COOKIE, Auth, Session, WebError

#: The form field and header carrying the CSRF token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Redirect(Exception):
    """Answer with ``response`` instead (the ``?key=`` exchange)."""

    def __init__(self, response: Response) -> None:
        super().__init__("redirect")
        self.response = response


def auth_of(request: Request) -> Auth:
    """The application's :class:`Auth`."""
    auth: Auth = request.app.state.auth
    return auth


def client_of(request: Request) -> str:
    """The client address failures are counted against."""
    return request.client.host if request.client else "unknown"


def secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: configured, or the request came over https."""
    return bool(request.app.state.ctx.secure_cookies) or request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure behind https."""
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/",
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise WebError(401, "the Authorization header must be 'Bearer <dashboard key>'")
    return value.strip()


def require(request: Request) -> Session | None:
    """Let the request pass, or raise WebError (or Redirect for a good ``?key=``).

    Returns the browser session (None for a bearer request); stores it on ``request.state``.
    """
    auth = auth_of(request)
    auth.require_enabled()
    request.state.bearer = False
    request.state.session = None
    key = _bearer(request)
    client = client_of(request)
    if key is not None:
        if not auth.check_key(key, client):
            raise WebError(401, "wrong dashboard key")
        request.state.bearer = True
        return None
    query_key = request.query_params.get("key")
    if query_key is not None:
        if not auth.check_key(query_key, client):
            raise WebError(401, "wrong dashboard key")
        session = auth.new_session()
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(response, request, session)
        raise Redirect(response)
    found = auth.session(request.cookies.get(COOKIE))
    if found is None:
        raise WebError(401, "sign in with the dashboard key")
    request.state.session = found
    return found


def require_write(request: Request, form_token: str | None = None) -> None:
    """A state-changing request: the bearer header, or a session with its CSRF token."""
    session = require(request)
    if request.state.bearer:
        return
    token = request.headers.get(CSRF_HEADER) or form_token
    if session is None or not Auth.csrf_ok(session, token):
        raise WebError(403, "missing or wrong CSRF token; reload the page and try again")
