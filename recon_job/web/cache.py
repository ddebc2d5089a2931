"""A small thread-safe LRU cache of what the dashboard computes from the history.

Keys carry the history's state (:meth:`~recon_job.store.HistoryStore.history_state`), so a new
or newly finished run changes the key and the stale entry is never read again (it ages out).
The first request for a key computes under that key's lock: twenty simultaneous views of the
same range compute it once, and the others wait for that result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final

#: Entries kept, the least recently used dropped first. An overview of 90 days of 50 models holds
#: ~7 MB (400 days: ~28 MB), so 16 entries bound the cache to a few hundred MB at worst.
DEFAULT_SIZE: Final = 16


class ComputeCache:
    """``get(key, compute)``: the cached value of ``key``, computed once when missing."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._computing: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of ``key``; ``compute()`` once if it is missing (an error is not cached)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    self._computing.pop(key, None)
                raise
            with self._lock:
                self._computing.pop(key, None)
                self._entries[key] = value
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
