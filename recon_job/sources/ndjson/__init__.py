"""The application's own NDJSON request logs as a usage source.

:mod:`.files` finds and streams the files (globs, directories, rotated and ``.gz`` files, split
across worker processes when large), :mod:`.records` says what one line means, and
:mod:`.source` counts them into usage per UTC day and group; :mod:`.skips` keeps where the
lines it skips are; :mod:`.cache` keeps each file's findings between runs (a :class:`LogCache`).
"""

from recon_job.sources.ndjson.cache import CachedNdjsonLogSource, LogCache
from recon_job.sources.ndjson.files import resolve_log_files
from recon_job.sources.ndjson.records import LogRecord, NdjsonOptions
from recon_job.sources.ndjson.source import NdjsonLogSource, iter_records

__all__ = [
    "CachedNdjsonLogSource",
    "LogCache",
    "LogRecord",
    "NdjsonLogSource",
    "NdjsonOptions",
    "iter_records",
    "resolve_log_files",
]
