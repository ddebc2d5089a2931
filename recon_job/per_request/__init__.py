"""Per-request reconciliation: each billed request id against the record that logged it.

:mod:`.billing` reads the billing CSV, :mod:`.local` the logged requests (a database table or
NDJSON logs), :mod:`.classify` matches and judges them (pure), :mod:`.writeback` writes the
actual costs back to the table, and :mod:`.reconcile` runs the steps. The report's output forms
are :mod:`recon_job.report.requests`.
"""

from recon_job.per_request.billing import BilledRequest, read_billing
from recon_job.per_request.classify import (
    RequestReconReport,
    RequestRow,
    RequestStatus,
    classify,
    within,
)
from recon_job.per_request.local import LocalRequest
from recon_job.per_request.reconcile import RequestSource, TableSpec, reconcile_requests

__all__ = [
    "BilledRequest",
    "LocalRequest",
    "RequestReconReport",
    "RequestRow",
    "RequestSource",
    "RequestStatus",
    "TableSpec",
    "classify",
    "read_billing",
    "reconcile_requests",
    "within",
]
