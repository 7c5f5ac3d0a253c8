"""What a small floor's window buckets hold, by kind of object: `python -m benchmarks.bucket_census [--minutes 90]`.

InProcessScorer fed floor x1 (seed 17) for some simulated minutes, a tick a minute; then `sys.getsizeof` of every
`Bucket` alive and of what it holds: its counters (a Counter, or a frozen bucket's bytes), its own Dists, their
bins and kept values, and the ints over 256 they hold (smaller ones are shared). Each object is counted once,
however many stores share it. Writes benchmarks/results/bucket_census.json. Not a `make bench` section: it
explains the `worker_day` rows (benchmarks/PROFILE.md, "Old buckets packed").
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections import Counter
from typing import Any

from services.core.buckets import Bucket
from services.core.dist import Dist

from .__main__ import git_commit
from .common import RESULTS, dump_json, rnd
from .memory_breakdown import fed_floor


def census(minutes: int) -> dict[str, Any]:
    model, scorer = fed_floor(1, minutes, tick_every_min=1)  # (held to the end: its buckets are among the live objects)
    gc.collect()
    seen: set[int] = set()
    size: Counter[str] = Counter()
    count: Counter[str] = Counter()

    def add(obj: object, kind: str) -> None:
        if id(obj) not in seen:
            seen.add(id(obj))
            size[kind] += sys.getsizeof(obj)
            count[kind] += 1

    def add_ints(values: Any, kind: str) -> None:
        for v in values:
            if not -5 <= v <= 256:
                add(v, kind)

    buckets = [o for o in gc.get_objects() if isinstance(o, Bucket)]
    for b in buckets:
        add(b, "bucket_objects")
        c = b._c
        if isinstance(c, bytes):
            add(c, "frozen_bytes")  # the frozen form holds its counters and Dists in these bytes
            continue
        add(c, "counters")
        add_ints(c.values(), "ints_over_256")
        dists: list[Dist] = [d for d in (b._frt, b._reply) if d.count or d.max_ms or d.bins]
        for d in dists:
            add(d, "dists")
            add(d.bins, "bins")
            add_ints((d.total_ms, d.max_ms, *d.bins, *d.bins.values()), "ints_over_256")
            values = getattr(d, "_values", None)
            if values is not None:
                add(values, "kept_values")
    return {
        "floor_scale": 1, "simulated_minutes": minutes, "tick_every_s": 60, "open": model.stats().open,
        "conversations": len(scorer.conv_table),
        "buckets": len(buckets), "frozen": sum(b.frozen for b in buckets),
        "mb": rnd(sum(size.values()) / 2**20, 2),
        "by_kind": {k: {"objects": count[k], "mb": rnd(n / 2**20, 2)} for k, n in size.most_common()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=int, default=90)
    out = {**census(p.parse_args().minutes), "git_commit": git_commit()}
    dump_json(RESULTS / "bucket_census.json", out)
    print(f"{out['mb']} MB in {out['buckets']:,} buckets ({out['frozen']:,} frozen)")
    for kind, row in out["by_kind"].items():
        print(f"{row['mb']:8.2f} MB  {row['objects']:>7,}  {kind}")


if __name__ == "__main__":
    main()
