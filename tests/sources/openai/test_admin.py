"""AdminNames over the fake OpenAI server: project and API key names, best effort and bounded."""

from __future__ import annotations

import requests
from structlog.testing import capture_logs

from recon_job.sources.openai.admin import (
    BUDGET,
    ERROR,
    FORBIDDEN,
    NOT_FOUND,
    AdminNames,
    Names,
)
from recon_job.sources.openai.options import OpenAIOptions
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

SECRET_VALUE = "sk-proj-****Zq9X"


def reader(fake: FakeOpenAI, session: requests.Session, key: str | None = None) -> AdminNames:
    options = OpenAIOptions(base_url=fake.base_url, admin_key=key or fake.admin_key)
    return AdminNames(options, session)


def many_projects(fake: FakeOpenAI, n: int = 150) -> None:
    for index in range(n):
        fake.add_project(f"proj_{index:03}", f"Project {index}")


def test_it_pages_projects_with_after_and_stops_once_every_wanted_id_is_named(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    many_projects(fake_openai)
    fake_openai.add_project("proj_old", "Old one", archived=True)

    first = reader(fake_openai, fast_session).projects(wanted=["proj_003"])
    every = reader(fake_openai, fast_session).projects(wanted=["proj_old"])

    assert first == Names(projects=first.projects, requests=1)
    assert first.projects["proj_003"] == "Project 3"
    assert every.requests == 2
    assert every.projects["proj_old"] == "Old one"
    assert len(every.projects) == 151
    second_page = fake_openai.requests[-1]
    assert second_page.query["after"] == ["proj_099"]
    assert second_page.query["limit"] == ["100"]
    assert second_page.query["include_archived"] == ["true"]


def test_paging_is_bounded_by_max_requests(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    many_projects(fake_openai)

    names = reader(fake_openai, fast_session).projects(wanted=["proj_149"], max_requests=1)

    assert (len(names.projects), names.requests, names.missing) == (100, 1, BUDGET)
    assert len(fake_openai.requests) == 1


def test_key_names_come_from_the_projects_they_were_used_in_and_never_their_value(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_project("proj_a", "A")
    fake_openai.add_project("proj_b", "B")
    fake_openai.add_api_key("proj_a", "key_1", "web", redacted_value=SECRET_VALUE)
    fake_openai.add_api_key("proj_b", "key_2", "ci-bot", redacted_value=SECRET_VALUE)

    with capture_logs() as logs:
        names = reader(fake_openai, fast_session).names(
            ["proj_b"], ["key_2"], {"key_1": "proj_a", "key_2": "proj_b"}
        )

    assert names == Names(
        projects={"proj_a": "A", "proj_b": "B"}, api_keys={"key_2": "ci-bot"}, requests=2
    )
    assert [r.path for r in fake_openai.requests][-1] == "/v1/organization/projects/proj_b/api_keys"
    assert SECRET_VALUE not in repr(names) + repr(logs)
    assert fake_openai.admin_key not in repr(logs)


def test_forbidden_names_are_no_names_and_no_error(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_project("proj_a", "A")
    fake_openai.add_api_key("proj_a", "key_1", "web")
    fake_openai.fail_next(2, status=403)

    names = reader(fake_openai, fast_session).names(["proj_a"], ["key_1"], {"key_1": "proj_a"})

    assert names == Names(requests=2, missing=FORBIDDEN)


def test_a_refused_key_stops_at_the_first_project_and_reads_as_forbidden(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_project("proj_a", "A")
    fake_openai.add_project("proj_b", "B")

    names = reader(fake_openai, fast_session, key="sk-admin-wrong").api_keys(
        ["proj_a", "proj_b"], wanted=["key_1", "key_2"]
    )

    assert (names.api_keys, names.requests, names.missing) == ({}, 1, FORBIDDEN)


def test_a_missing_endpoint_or_a_broken_answer_gives_no_names(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    # The fake answers 404 for the keys of a project it does not know.
    unknown = reader(fake_openai, fast_session).api_keys(["proj_gone"])
    fake_openai.respond_next(status=200, body="<html>portal</html>")
    broken = reader(fake_openai, fast_session).projects()
    fake_openai.fail_next(3, status=500)
    failing = reader(fake_openai, fast_session).projects()

    assert (unknown.api_keys, unknown.missing) == ({}, NOT_FOUND)
    assert (broken.projects, broken.missing) == ({}, ERROR)
    assert (failing.projects, failing.requests, failing.missing) == ({}, 1, ERROR)


def test_nothing_to_name_asks_nothing(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    names = reader(fake_openai, fast_session).names([], ["key_x"], {})

    assert names == Names()
    assert fake_openai.requests == []
