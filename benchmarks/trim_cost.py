"""What a malloc_trim costs on a large, fragmented heap (in process, synthetic; results/trim_cost.json).

A worker trims freed memory every SCORER_MALLOC_TRIM_S (services/scorer/malloc.py). On a small floor's ~140 MB a
trim takes a few ms; this sizes it on a heap like a large floor's: `n` blocks of 600-5,000 bytes (above pymalloc's
512, so in glibc's arenas) and four small dicts per block, half the blocks then freed at random (holes that no
trim at the heap's top can return), then ten trims each after a churn of 2 % of the blocks, as between two ticks.

    .venv/bin/python -m benchmarks.trim_cost [n]     # n = 400,000 by default: ~1.6 GB
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from services.scorer import malloc

from .common import RESULTS, dump_json, rnd, self_rss_bytes


def rss_mb() -> float:
    return self_rss_bytes() / 2**20


def measure(n: int = 400_000, trims: int = 10, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    held: list[bytes | None] = [bytes(rng.randint(600, 5000)) for _ in range(n)]
    small = [{"a": i, "b": [i] * 5} for i in range(n * 4)]
    built = rss_mb()
    for i in range(0, n, 2):
        held[i] = None
    first = malloc.timed_trim()
    after_first = rss_mb()
    steady: list[float] = []
    for _ in range(trims):
        for _ in range(n // 50):
            j = rng.randrange(n)
            held[j] = bytes(rng.randint(600, 5000)) if held[j] is None else None
        steady.append(malloc.timed_trim())
    assert len(small) == 4 * n
    return {
        "blocks": n, "rss_mb_built": rnd(built, 1), "rss_mb_after_first_trim": rnd(after_first, 1),
        "rss_mb_end": rnd(rss_mb(), 1), "first_trim_cpu_ms": rnd(first * 1000, 1),
        "steady_trim_cpu_ms": [rnd(t * 1000, 1) for t in steady],
        "next_trim_in_s": rnd(malloc.next_trim_in(max(steady), 10.0), 1),
        "trim_cpu_share": malloc.TRIM_CPU_SHARE,
    }


def main() -> None:
    started = time.time()
    out = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
    out["duration_s"] = rnd(time.time() - started, 1)
    dump_json(RESULTS / "trim_cost.json", out)
    print(out)


if __name__ == "__main__":
    main()
