"""recon-job: reconcile your own OpenAI usage logs against OpenAI's Usage and Costs APIs.

The public Python API (see ``recon_job.api`` for the shapes)::

    fetch_openai_usage(api_key, start_date, end_date, bucket_width="1d")
    fetch_openai_costs(api_key, start_date, end_date)
    parse_openai_usage_response(response, costs=None)
    parse_openai_costs_response(response)
    parse_usage_logs(log_dir, start_date=None, end_date=None)
    calculate_usage_stats(records)
    compare_usage(local_stats, openai_stats)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recon_job.version import __version__

__all__ = [
    "__version__",
    "calculate_usage_stats",
    "compare_usage",
    "fetch_openai_costs",
    "fetch_openai_usage",
    "parse_openai_costs_response",
    "parse_openai_usage_response",
    "parse_usage_logs",
]

if TYPE_CHECKING:
    from recon_job.api import (
        calculate_usage_stats,
        compare_usage,
        fetch_openai_costs,
        fetch_openai_usage,
        parse_openai_costs_response,
        parse_openai_usage_response,
        parse_usage_logs,
    )


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import recon_job.models` stays free of HTTP and SQL.
    if name in __all__ and name != "__version__":
        from recon_job import api

        return getattr(api, name)
    raise AttributeError(f"module 'recon_job' has no attribute {name!r}")
