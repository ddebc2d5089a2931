"""The web application on a real uvicorn server on 127.0.0.1, for the web tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from recon_job.runtime import Metrics
from recon_job.web import ServeProbes, WebContext, WebServer, create_app
from tests.web.history import KEY, NOW


@dataclass
class Running:
    """A running server: its base URL and context."""

    base: str
    ctx: WebContext

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return self.base + path

    def browser(self) -> requests.Session:
        """A client that asks for HTML, as a browser does."""
        session = requests.Session()
        session.headers["Accept"] = "text/html,application/xhtml+xml"
        return session

    def signed_in(self) -> requests.Session:
        """A browser session signed in through ``?key=``."""
        session = self.browser()
        answer = session.get(self.url(f"/usage-api?key={KEY}"), timeout=10)
        assert answer.status_code == 200, answer.text
        return session


@contextmanager
def serving(
    history_url: str, *, key: str | None = KEY, max_upload_bytes: int = 50 << 20, **extra: object
) -> Iterator[Running]:
    """The application over ``history_url`` on a free port."""
    ctx = WebContext(
        probes=ServeProbes(lambda: None),
        metrics=Metrics(),
        history_url=history_url,
        dashboard_key=key,
        max_upload_bytes=max_upload_bytes,
        **{"clock": lambda: NOW, **extra},  # type: ignore[arg-type]
    )
    server = WebServer(create_app(ctx), "127.0.0.1", 0).start()
    try:
        yield Running(f"http://127.0.0.1:{server.port}", ctx)
    finally:
        server.stop()
        ctx.close()
