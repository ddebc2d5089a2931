"""The usage dashboard's CSV exports (Cost and Activity) in place of OpenAI's APIs (offline)."""

from recon_job.sources.exports.rows import detect_export_kind
from recon_job.sources.exports.source import CsvActivitySource, CsvCostSource

__all__ = ["CsvActivitySource", "CsvCostSource", "detect_export_kind"]
