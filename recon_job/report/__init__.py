"""Every output form: money and percentages, the run report (JSON and text), past runs, and the
per-request report. A figure reads the same wherever it appears, because only this package
formats one; the JSON documents are documented in the README and only ever gain fields.
"""

from recon_job.report.diagnosis import (
    bridge_dict,
    bridge_from_dict,
    diagnosis_dict,
    diagnosis_from_dict,
    diagnosis_lines,
)
from recon_job.report.formats import money, pct, pct_text, totals, usage_counts

__all__ = [
    "bridge_dict",
    "bridge_from_dict",
    "diagnosis_dict",
    "diagnosis_from_dict",
    "diagnosis_lines",
    "money",
    "pct",
    "pct_text",
    "totals",
    "usage_counts",
]
