"""Types of the C fast path of the NDJSON scan (``_fastscan.c``)."""

from array import array
from collections.abc import Sequence
from typing import Any

def repeats(buffers: Sequence[bytes | array[int]], /) -> list[int]: ...
def scan_block(
    block: bytes, count: int, config: tuple[Any, ...], /
) -> tuple[
    list[tuple[Any, ...]],
    list[int],
    list[bytes],
    int,
    int,
    dict[int, bytes],
    dict[int, int],
    list[bytes],
]: ...
