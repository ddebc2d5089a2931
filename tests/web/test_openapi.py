"""The API against its own OpenAPI document (schemathesis): no input makes it answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.web.history import KEY, seed
from tests.web.server import Running, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('api')) / 'history.db'}"
    seed(url)
    with serving(url) as app:
        yield app


def test_no_request_makes_the_api_fail(running: Running) -> None:
    schema = schemathesis.openapi.from_url(running.url("/api/openapi.json"))
    headers = {"Authorization": f"Bearer {KEY}"}
    checked = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=running.base, headers=headers)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.status_code,
                response.text[:300],
            )

        no_server_error()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/admin/reconcile-openai-costs" in checked
    assert "GET /api/v1/reconciliations" in checked
