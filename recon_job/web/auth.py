"""Who may see the dashboard and call the admin API: one key, sessions, CSRF, a failure limit.

* The key is ``RECON_DASHBOARD_KEY`` (or its ``_FILE``); without it :class:`Auth` is off and
  every protected path answers 404, as if it did not exist.
* ``Authorization: Bearer KEY`` on any request; or the seed-compatible ``?key=KEY`` on a GET,
  exchanged for a session cookie (HttpOnly, SameSite=Strict, Secure behind https) and a redirect
  to the same address without the key, so it leaves the address bar, the history and the access
  log; or the login form (``POST /login``).
* Keys are compared in constant time (:func:`hmac.compare_digest` on their SHA-256 digests, so
  the length leaks nothing either).
* Failed attempts are counted per client address; past :data:`MAX_FAILURES` in
  :data:`FAILURE_WINDOW` seconds every attempt is 429 until the window passes.
* A state-changing request needs the bearer header or the session's CSRF token (form field
  ``csrf_token`` or header ``X-CSRF-Token``): a cookie alone never changes anything.

Nothing here logs or returns the key, a session id or a token other than the caller's own CSRF
token in its own page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: The session cookie's name.
COOKIE: Final = "recon_session"
#: Seconds a session lasts.
SESSION_SECONDS: Final = 8 * 3600
#: Failed attempts per client address allowed within :data:`FAILURE_WINDOW`.
MAX_FAILURES: Final = 10
#: Seconds over which failures are counted.
FAILURE_WINDOW: Final = 300.0
#: The most sessions kept (oldest dropped first): a bound on memory.
MAX_SESSIONS: Final = 10_000


class WebError(Exception):
    """A request answered with an error: 401, 403 (CSRF), 404, 429, or 400/413/422/503 for
    what the request asks; ``message`` is shown as is (it never holds a secret)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its id (the cookie) and its CSRF token."""

    id: str
    csrf: str


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class Auth:
    """The key check, the sessions and the failure limit of one web application.

    ``clock`` is monotonic seconds (passed in so tests can move it).
    """

    def __init__(self, key: str | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._key = None if key is None else _digest(key)
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        """True when a key is configured."""
        return self._key is not None

    def require_enabled(self) -> None:
        """404 when no key is configured: the dashboard and admin API do not exist."""
        if self._key is None:
            raise WebError(404, "not found")

    def check_key(self, candidate: str, client: str) -> bool:
        """Whether ``candidate`` is the key; a wrong one counts against ``client``.

        Raises WebError 429 when ``client`` failed too often lately.
        """
        self.require_enabled()
        self._check_limit(client)
        assert self._key is not None
        if hmac.compare_digest(_digest(candidate), self._key):
            return True
        self._fail(client)
        return False

    def _check_limit(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            recent = self._failures.get(client)
            while recent and recent[0] <= now - FAILURE_WINDOW:
                recent.popleft()
            if recent is not None and len(recent) >= MAX_FAILURES:
                wait = int(recent[0] + FAILURE_WINDOW - now) + 1
                raise WebError(
                    429, f"too many failed attempts; try again in {wait} s", retry_after=wait
                )

    def _fail(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(self._clock())

    def new_session(self) -> Session:
        """A new signed-in session."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=self._sessions.__getitem__)
                del self._sessions[oldest]
            self._sessions[session_id] = now + SESSION_SECONDS
        return Session(session_id, self.csrf_for(session_id))

    def session(self, session_id: str | None) -> Session | None:
        """The live session of that cookie value, or None."""
        if not session_id or self._key is None:
            return None
        now = self._clock()
        with self._lock:
            expires = self._sessions.get(session_id)
            if expires is None:
                return None
            if expires <= now:
                del self._sessions[session_id]
                return None
        return Session(session_id, self.csrf_for(session_id))

    def end_session(self, session_id: str) -> None:
        """Sign out."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def csrf_for(self, session_id: str) -> str:
        """The CSRF token of a session: an HMAC of its id under this process's secret."""
        return hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        """Whether ``token`` is the session's CSRF token (constant time)."""
        return token is not None and hmac.compare_digest(session.csrf, token)
