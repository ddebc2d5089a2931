"""Per-request reconciliation: each billed request id against the record that logged it.

:mod:`.billing` reads the billing CSV, :mod:`.local` the logged requests (a database table or
NDJSON logs), :mod:`.classify` matches and judges them (pure), :mod:`.writeback` writes the
actual costs back to the table, and :mod:`.reconcile` runs the steps. The report's output forms
are :mod:`recon_job.report.requests`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The pure matcher is imported at once (it loads no database library); the rest on first use.
from recon_job.per_request.classify import (
    RequestReconReport,
    RequestRow,
    RequestRows,
    RequestStatus,
    classify,
    within,
)

if TYPE_CHECKING:
    from recon_job.per_request.billing import (
        BilledRequest,
        BillingIndex,
        index_billing,
        read_billing,
    )
    from recon_job.per_request.local import LocalRequest
    from recon_job.per_request.reconcile import RequestSource, TableSpec, reconcile_requests

#: Public name -> its module, imported on first use: importing this package or the pure
#: :mod:`.classify` loads no database library.
_WHERE = {
    "BilledRequest": "billing",
    "BillingIndex": "billing",
    "index_billing": "billing",
    "read_billing": "billing",
    "LocalRequest": "local",
    "RequestSource": "reconcile",
    "TableSpec": "reconcile",
    "reconcile_requests": "reconcile",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BilledRequest",
    "BillingIndex",
    "LocalRequest",
    "RequestReconReport",
    "RequestRow",
    "RequestRows",
    "RequestSource",
    "RequestStatus",
    "TableSpec",
    "classify",
    "index_billing",
    "read_billing",
    "reconcile_requests",
    "within",
]
