"""Hand freed memory back to the OS (glibc's allocator; a no-op where there is none).

A worker's memory comes and goes in bursts (a tick's views, a batch's records, RocksDB's memtables), and glibc
keeps what was freed for the next burst: a small floor's worker held tens of MB it no longer used
(benchmarks/PROFILE.md, "A real worker's day"). `malloc_trim` gives the free pages back; it changes nothing the
worker computes. (Fewer arenas, MALLOC_ARENA_MAX=2, were measured too and did not lower the day.)

A trim's cost grows with the heap: 2-5 ms on a small floor's worker, 25-38 ms on a fragmented 1.6 GB heap
(PROFILE.md, "Trimming as often as it is cheap"). So the worker trims in a thread (ctypes lets go of the GIL:
the event loop goes on), as often as every SCORER_MALLOC_TRIM_S, and never more than TRIM_CPU_SHARE of a core.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from functools import lru_cache
from typing import Any, Final

TRIM_CPU_SHARE: Final = 0.005  # at most 0.5 % of a core spent trimming: a 30 ms trim waits 6 s for the next


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


def timed_trim() -> float:
    """Trim, and return the CPU seconds it took this thread."""
    start = time.thread_time()
    trim()
    return time.thread_time() - start


def next_trim_in(took_s: float, every_s: float) -> float:
    """Seconds until the next trim: `every_s`, or longer when the last one took more than its share of a core."""
    return max(every_s, took_s / TRIM_CPU_SHARE)
