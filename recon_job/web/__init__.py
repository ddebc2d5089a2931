"""The dashboard and the admin API: one ASGI application (FastAPI on uvicorn).

:func:`create_app` builds it over a :class:`WebContext` (probes, metrics, history, key);
:class:`WebServer` serves it. ``recon-job serve`` runs it alone; ``recon-job daemon`` beside its
scheduler. Pages read the history only and never call OpenAI. Templates and assets ship inside
the package; nothing is loaded from a CDN.
"""

from recon_job.web.app import WebContext, create_app
from recon_job.web.probes import Probes, ServeProbes
from recon_job.web.server import WebServer, bind

__all__ = ["Probes", "ServeProbes", "WebContext", "WebServer", "bind", "create_app"]
