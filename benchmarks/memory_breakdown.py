"""What holds a small floor's memory: tracemalloc of InProcessScorer fed a floor for some simulated minutes.

    python -m benchmarks.memory_breakdown [--scale 1] [--minutes 90]

Writes benchmarks/results/memory_breakdown.json (MB traced per file and per line) and prints the top lines.
Not a `make bench` section: it explains the `memory` section's day figure (benchmarks/PROFILE.md).
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from typing import Any

from .common import RESULTS, START_MS, dump_json, records_of, rnd, scaled_floor


def fed_floor(scale: int, minutes: int, tick_every_min: int) -> tuple[Any, Any]:
    """(the floor's model, an InProcessScorer) fed `minutes` of floor x`scale` (seed 17) a minute at a time, ticking
    every `tick_every_min` minutes (the `bucket_census` too)."""
    from services.scorer.inprocess import InProcessScorer

    model = scaled_floor(scale, seed=17)
    s = InProcessScorer()
    for minute in range(minutes):
        t_ms = START_MS + (minute + 1) * 60_000
        s.feed_records(records_of(model.events_until(t_ms)))
        if minute % tick_every_min == tick_every_min - 1:
            s.tick(t_ms)
    return model, s


def breakdown(scale: int, minutes: int, tick_every_min: int = 30) -> dict[str, Any]:
    tracemalloc.start(1)
    model, s = fed_floor(scale, minutes, tick_every_min)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()

    def where(stat: Any, line: bool) -> str:
        frame = stat.traceback[0]
        name = frame.filename.split("/site-packages/")[-1].split("/services/")[-1]
        return f"{name}:{frame.lineno}" if line else name

    by_file = snap.statistics("filename")
    return {
        "floor_scale": scale, "simulated_minutes": minutes, "open": model.stats().open,
        "traced_mb": rnd(sum(st.size for st in by_file) / 2**20),
        "by_file_mb": {where(st, False): rnd(st.size / 2**20) for st in by_file[:15]},
        "by_line_mb": {where(st, True): rnd(st.size / 2**20) for st in snap.statistics("lineno")[:25]},
        "entries": {"conversations": len(s.conv_table), "agents": len(s.agent_table),
                    "partials": len(s.partials_table)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--minutes", type=int, default=90)
    a = p.parse_args()
    out = breakdown(a.scale, a.minutes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    dump_json(RESULTS / "memory_breakdown.json", out)
    print(f"{out['traced_mb']} MB traced, {out['open']} open conversations, entries {out['entries']}")
    for name, mb in out["by_file_mb"].items():
        print(f"{mb:8.1f} MB  {name}")


if __name__ == "__main__":
    main()
