"""Names of OpenAI projects and API keys from the Admin API, best effort.

``GET {base_url}/organization/projects`` and ``GET {base_url}/organization/projects/{id}/api_keys``
return list objects (``data``, ``has_more``, ``first_id``, ``last_id``) paged with ``after`` (the
last id seen) and ``limit``. The shadow-usage finding prints these names next to the ids; they
are a courtesy, so nothing here fails: an admin key that may not read them (401, 403), an
endpoint that is not there (404), any other error, a page that makes no sense or the deadline
all give fewer names, never an exception. Pages are bounded (``max_requests``), and paging
stops as soon as every wanted id is named.

Only ``id`` and ``name`` are read from each object: a key's ``redacted_value`` (and its owner)
is never read, kept, logged or returned, and the admin key is never logged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import requests
import structlog

from recon_job.errors import DeadlineExceeded, UsageApiError
from recon_job.http import Deadline
from recon_job.sources.openai.client import OpenAIClient
from recon_job.sources.openai.options import OpenAIOptions

log = structlog.get_logger(__name__)

#: Logged when names could not (all) be read, with why.
EVENT_NAMES_MISSING: Final = "openai.admin.names_missing"

#: Path of the projects list under the base URL.
PROJECTS_PATH: Final = "/organization/projects"
#: Objects per page asked for (the Admin API's largest).
PAGE_LIMIT: Final = 100
#: Default bound on the requests one lookup makes.
DEFAULT_MAX_REQUESTS: Final = 10

#: Why names are missing: the admin key may not read them; the endpoint is not there; another
#: failure; the request bound was reached.
FORBIDDEN: Final = "forbidden"
NOT_FOUND: Final = "not_found"
ERROR: Final = "error"
BUDGET: Final = "budget"
#: A 401 (the key itself refused): stops a lookup over several projects; reported as forbidden.
_UNAUTHORIZED: Final = "unauthorized"


@dataclass(frozen=True, slots=True)
class Names:
    """Names of projects and API keys, by id, as far as the admin key could read them."""

    projects: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    #: HTTP requests made.
    requests: int = 0
    #: Why some names could not be read (``forbidden``, ``not_found``, ``error``, ``budget``);
    #: None when every list asked for was read.
    missing: str | None = None


class AdminNames:
    """Reads project and API key names with the admin key, over the run's session and deadline.

    Every method is best effort (module docstring) and returns :class:`Names`.
    """

    def __init__(
        self,
        options: OpenAIOptions,
        session: requests.Session,
        deadline: Deadline | None = None,
    ) -> None:
        self.options = options
        self._client = OpenAIClient(options, session, deadline)

    def projects(
        self, *, wanted: Collection[str] | None = None, max_requests: int = DEFAULT_MAX_REQUESTS
    ) -> Names:
        """Names of the organization's projects (archived ones too), by id.

        Stops paging once every id of ``wanted`` is named (None: read every page, up to
        ``max_requests``).
        """
        found, used, missing = self._list(
            PROJECTS_PATH, [("include_archived", "true")], wanted, max_requests
        )
        return Names(projects=found, requests=used, missing=_public(missing))

    def api_keys(
        self,
        project_ids: Iterable[str],
        *,
        wanted: Collection[str] | None = None,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> Names:
        """Names of the API keys of ``project_ids``, by key id, within ``max_requests`` in all.

        Stops once every id of ``wanted`` is named. A project whose keys cannot be read is
        skipped; a 401 stops the lookup (the admin key itself is refused: so would every
        project be).
        """
        names: dict[str, str] = {}
        used = 0
        missing: str | None = None
        for project_id in dict.fromkeys(project_ids):
            if wanted is not None and all(k in names for k in wanted):
                break
            if used >= max_requests:
                missing = missing or BUDGET
                break
            path = f"{PROJECTS_PATH}/{quote(project_id, safe='')}/api_keys"
            left = None if wanted is None else [k for k in wanted if k not in names]
            found, spent, why = self._list(path, [], left, max_requests - used)
            names.update(found)
            used += spent
            missing = missing or why
            if why == _UNAUTHORIZED:
                break
        return Names(api_keys=names, requests=used, missing=_public(missing))

    def names(
        self,
        project_ids: Collection[str],
        api_key_ids: Collection[str],
        key_projects: Mapping[str, str],
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> Names:
        """Names of ``project_ids`` and of ``api_key_ids``, within ``max_requests`` in all.

        A key's name is looked up in the project it was used under (``key_projects``, as
        :class:`~recon_job.diagnosis.shadow.Scope` has it); a key of no known project gets
        none. Asks nothing when there is nothing to name.
        """
        projects = Names()
        if project_ids:
            projects = self.projects(wanted=project_ids, max_requests=max_requests)
        homes = [key_projects[k] for k in sorted(api_key_ids) if k in key_projects]
        left = max_requests - projects.requests
        keys = Names()
        if homes and left > 0:
            keys = self.api_keys(homes, wanted=api_key_ids, max_requests=left)
        elif homes:
            keys = Names(missing=BUDGET)
        return Names(
            projects=projects.projects,
            api_keys=keys.api_keys,
            requests=projects.requests + keys.requests,
            missing=projects.missing or keys.missing,
        )

    def _list(
        self,
        path: str,
        params: list[tuple[str, str]],
        wanted: Collection[str] | None,
        max_requests: int,
    ) -> tuple[dict[str, str], int, str | None]:
        """``id -> name`` of every object of a list endpoint, the requests made, and why the
        list is incomplete (None: it is not; ``unauthorized`` for a 401)."""
        names: dict[str, str] = {}
        used = 0
        after: str | None = None
        while True:
            if wanted is not None and all(i in names for i in wanted):
                return names, used, None
            if used >= max_requests:
                return names, used, _missing(path, BUDGET)
            query = [*params, ("limit", str(PAGE_LIMIT))]
            if after is not None:
                query.append(("after", after))
            used += 1
            status, body = self._get(path, query)
            if status in (401, 403):
                return names, used, _missing(path, _UNAUTHORIZED if status == 401 else FORBIDDEN)
            if status == 404:
                return names, used, _missing(path, NOT_FOUND)
            page = _page(body) if status == 200 else None
            if page is None:
                return names, used, _missing(path, ERROR, status)
            items, has_more, last_id = page
            names.update(items)
            if not has_more:
                return names, used, None
            if not last_id or last_id == after:
                # A list that says it has more but gives no new cursor would loop.
                return names, used, _missing(path, ERROR, status)
            after = last_id

    def _get(self, path: str, query: list[tuple[str, str]]) -> tuple[int, Any]:
        """The status and JSON body of one GET; status 0 (no body) when there is no answer."""
        try:
            return 200, self._client.get_json(path, query, endpoint="Admin")
        except UsageApiError as e:
            if e.status in (401, 403, 404):
                return e.status, None
            failure = e.reason
        except DeadlineExceeded:
            failure = "deadline"
        # Names are a courtesy: say what kind of failure, never its text.
        log.info(EVENT_NAMES_MISSING, path=path, reason=ERROR, failure=failure)
        return 0, None


def _public(reason: str | None) -> str | None:
    """A 401 is reported like a 403: the admin key may not read the names."""
    return FORBIDDEN if reason == _UNAUTHORIZED else reason


def _missing(path: str, reason: str, status: int | None = None) -> str:
    # The path holds ids only (no secret); the admin key is never in a log line.
    log.info(EVENT_NAMES_MISSING, path=path, reason=reason, status=status)
    return reason


def _page(body: Any) -> tuple[dict[str, str], bool, str | None] | None:
    """``id -> name`` of a list page, its ``has_more`` and ``last_id``; None when it is not one.

    Objects without a string id, or without a string name, are left out; nothing else of an
    object is read.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    names: dict[str, str] = {}
    last: str | None = None
    for item in body["data"]:
        if not isinstance(item, dict):
            continue
        ident, name = item.get("id"), item.get("name")
        if isinstance(ident, str) and ident:
            last = ident
            if isinstance(name, str) and name.strip():
                names[ident] = name
    has_more = body.get("has_more") is True
    last_id = body.get("last_id")
    return names, has_more, last_id if isinstance(last_id, str) and last_id else last
