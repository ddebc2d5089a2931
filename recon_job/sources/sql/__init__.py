"""The application's own database table of requests as a usage source, aggregated in SQL."""

from recon_job.sources.sql.options import SqlTableOptions
from recon_job.sources.sql.source import SqlTableSource

__all__ = ["SqlTableOptions", "SqlTableSource"]
