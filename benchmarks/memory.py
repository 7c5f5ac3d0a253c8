"""Memory: RSS against open conversations (in-process points, each in a fresh process) and over a simulated day.

The real-worker point is measured by the recovery section (a worker holding 100k open conversations).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from .common import REPO, log


def child(args: list[str], timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        out = Path(tmp) / "out.json"
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.memory_child", *args, "--out", str(out)],
                                  cwd=REPO, timeout=timeout_s, capture_output=True, text=True, check=False)
        except subprocess.TimeoutExpired:
            partial: dict[str, Any] = orjson.loads(out.read_bytes()) if out.exists() else {}
            return {**partial, "stopped": f"stopped by its time limit ({timeout_s:.0f} s)"}
        if proc.returncode != 0 or not out.exists():
            return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
        res: dict[str, Any] = orjson.loads(out.read_bytes())
        return res


def run(*, open_points: list[int], day_scale: int, point_timeout_s: float, day_timeout_s: float) -> dict[str, Any]:
    points = []
    for n in open_points:
        log(f"memory: {n:,} open conversations (in-process)")
        res = child(["open", "--n", str(n)], point_timeout_s)
        log(f"  {res}")
        points.append({"open_conversations": n, **res})
    log(f"memory: a simulated day of floor x{day_scale} into the in-process scorer")
    day = child(["day", "--scale", str(day_scale)], day_timeout_s)
    log(f"  day: { {k: v for k, v in day.items() if k != 'hourly'} }")
    return {"inprocess_open": points, "day": day}
