"""The application's own NDJSON request logs as a usage source.

:mod:`.files` finds and streams the files (globs, directories, rotated and ``.gz`` files, split
across worker processes when large), :mod:`.records` says what one line means, and
:mod:`.source` counts them into usage per UTC day and group (with the C fast path of
``_fastscan.c`` when it is built); :mod:`.skips` keeps where the lines it skips are;
:mod:`.cache` keeps each file's findings between runs (a :class:`LogCache`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recon_job.sources.ndjson.cache import CachedNdjsonLogSource, LogCache
    from recon_job.sources.ndjson.files import resolve_log_files
    from recon_job.sources.ndjson.records import LogRecord, NdjsonOptions
    from recon_job.sources.ndjson.source import NdjsonLogSource, iter_records

#: Where each public name is: loaded on first use, so that a worker process, which imports
#: ``source`` only, does not load the cache (hashlib, the store's protocol) for nothing.
_MODULES = {
    "CachedNdjsonLogSource": "cache",
    "LogCache": "cache",
    "LogRecord": "records",
    "NdjsonLogSource": "source",
    "NdjsonOptions": "records",
    "iter_records": "source",
    "resolve_log_files": "files",
}

__all__ = [
    "CachedNdjsonLogSource",
    "LogCache",
    "LogRecord",
    "NdjsonLogSource",
    "NdjsonOptions",
    "iter_records",
    "resolve_log_files",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
