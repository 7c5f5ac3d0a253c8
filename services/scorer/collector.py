"""CPython's cyclic garbage collector in a worker that holds a floor's state as Python objects.

The collector walks every object of the generations it collects. A worker holds millions (conversations, buckets,
counters), and with Python's thresholds (700, 10, 10) it walks all of them whenever the long-lived ones grew by a
quarter: in process at floor x61 (`python -m benchmarks.tick_cost`), 165 ms of every second went to collecting and
one stop lasted 1.7 s. The state needs no collector: reference counting frees it as it goes (a full collection after
three simulated minutes of floor x10 in process, collector off, found nothing to free). At 10000, 10, 100 the same
floor spent 35-60 ms a second in it, the young collections stopped the loop for 7 ms (p50) to 28 ms, the middle ones
for up to 143 ms, and no full one ran in three minutes (50000, 20, 100 collected as rarely but stopped for up to 1.1
s: the middle generation grew large). Cycles (asyncio's, mostly young) are still collected.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

PYTHON_DEFAULT = (700, 10, 10)


def parse_thresholds(raw: str) -> tuple[int, int, int]:
    """SCORER_GC_THRESHOLDS: "gen0,gen1,gen2" (gc.set_threshold's three), or "python" for Python's own."""
    if raw.strip().lower() == "python":
        return PYTHON_DEFAULT
    parts = raw.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"SCORER_GC_THRESHOLDS must be three whole numbers of 1 or more, or 'python'; got {raw!r}")
    return values[0], values[1], values[2]


_timers: list[Callable[[str, dict[str, Any]], None]] = []  # the callback this module put in gc.callbacks


def configure(thresholds: tuple[int, int, int], on_collected: Callable[[int, float], None] | None = None) -> None:
    """Set the thresholds; `on_collected(generation, seconds)` after each collection (the worker's metric), in
    place of the one an earlier call gave."""
    gc.set_threshold(*thresholds)
    for old in _timers:
        gc.callbacks.remove(old)
    _timers.clear()
    if on_collected is None:
        return
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            on_collected(int(info["generation"]), time.perf_counter() - started[0])

    gc.callbacks.append(timed)
    _timers.append(timed)
