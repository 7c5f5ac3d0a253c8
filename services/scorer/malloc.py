"""Hand freed memory back to the OS (glibc's allocator; a no-op where there is none).

A worker's memory comes and goes in bursts (a tick's views, a batch's records, RocksDB's memtables), and glibc
keeps what was freed for the next burst: a small floor's worker held tens of MB it no longer used
(benchmarks/PROFILE.md, "A real worker's day"). `malloc_trim` gives the free pages back; it changes nothing the
worker computes. (Fewer arenas, MALLOC_ARENA_MAX=2, were measured too and did not lower the day.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> bool:
    """Return the free pages of every arena to the OS; whether any were (False without glibc)."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
