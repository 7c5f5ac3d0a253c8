"""The peer: per-queue rolling figures (arrivals, FRT mean and p90 over 5 minutes) in Quix Streams.

    python -m benchmarks.quix_peer --bootstrap HOST:PORT --topic T --expect N --deadline-s S --out result.json

The idiomatic Quix Streams shape of the same two stages as the scorer:
1. keyed by conversation (the topic's key): a stateful function keeps each conversation's FRT start,
   queue (transfers move it) and whether a human replied, and emits an arrival at `conversation.opened`
   and an FRT sample at the first human reply, in the conversation's queue at that moment
   (shared/METRICS.md: the handoff restarts the FRT clock for bot-served chats);
2. `group_by(queue)` (a repartition topic), then a 5-minute sliding window on event time (`ts`),
   aggregating the arrival count, the FRT mean and a log-bucket histogram (2% wide) for the p90.

Much less than the scorer computes (one window of three figures, no dedupe, no out-of-order replay,
no live gauges, no roll-ups, no alert rules), so scorer ÷ peer is conservative for the scorer.
Stops by itself once every input record and every forwarded record has been processed, or at the
deadline; state in a temporary directory with changelog topics (the scorer's tables have them too).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

BUCKET = math.log(1.02)
# After group_by, one queue's records come from all six input partitions, consumed unevenly: with the
# scorer's 60 s grace, Quix saw records ~80 s behind its stream time and dropped them. 10 minutes of
# grace keeps (nearly) all of them; what is still late is counted in late_window_updates.
GRACE_MS = 600_000


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def p90_of(hist: dict[str, int]) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank = 0.9 * total
    seen = 0
    for b in sorted(hist, key=int):
        seen += hist[b]
        if seen >= rank:
            return math.exp((int(b) + 0.5) * BUCKET)
    return None


def run(bootstrap: str, topic: str, expect: int, deadline_s: float) -> dict[str, Any]:
    from quixstreams import Application
    from quixstreams.dataframe.windows.aggregations import Mean, Reduce, Sum

    counts = {"in": 0, "forwarded": 0, "stage2": 0, "windowed": 0, "late_window_updates": 0}
    marks: dict[str, float] = {}
    state_dir = tempfile.mkdtemp(prefix="bench-quix-")
    app = Application(
        broker_address=bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
    )
    events = app.topic(
        topic, key_deserializer="bytes", value_deserializer="json",
        timestamp_extractor=lambda value, headers, ts, ts_type: int(value["ts"]),
    )

    def maybe_stop() -> None:
        if counts["in"] >= expect and counts["stage2"] >= counts["forwarded"]:
            marks.setdefault("done", time.monotonic())
            marks.setdefault("done_cpu", cpu_s())
            app.stop()

    def per_conversation(ev: dict[str, Any], state: Any) -> dict[str, Any] | None:
        if not counts["in"]:
            marks["first"], marks["first_cpu"] = time.monotonic(), cpu_s()
        counts["in"] += 1
        out: dict[str, Any] | None = None
        t = ev["type"]
        if t == "agent.status":
            pass
        elif t == "conversation.opened":
            q = ev.get("queue") or "unknown"
            state.set("q", q)
            out = {"queue": q, "arr": 1, "ts": ev["ts"]}
        elif t == "conversation.transferred":
            state.set("q", ev.get("to_queue") or state.get("q", "unknown"))
        elif t == "conversation.handoff":
            if not state.get("answered", False):
                state.set("start", ev["ts"])
        elif t == "message":
            sender = ev.get("sender")
            if sender == "customer":
                if state.get("start") is None:
                    state.set("start", ev["ts"])
            elif sender == "agent" and not state.get("answered", False):
                state.set("answered", True)
                start = state.get("start")
                if start is not None:
                    frt_s = max(0.0, (ev["ts"] - start) / 1000)
                    out = {"queue": state.get("q", "unknown"), "frt": frt_s,
                           "b": str(int(math.log(max(frt_s, 0.001)) / BUCKET)), "ts": ev["ts"]}
        if out is not None:
            counts["forwarded"] += 1
        if counts["in"] >= expect:
            maybe_stop()
        return out

    def add_hist(acc: dict[str, int], value: dict[str, Any]) -> dict[str, int]:
        b = value.get("b")
        if b is not None:
            acc[b] = acc.get(b, 0) + 1
        return acc

    def stage2(value: dict[str, Any]) -> None:
        counts["stage2"] += 1
        maybe_stop()

    def figures(window: dict[str, Any]) -> dict[str, Any]:
        counts["windowed"] += 1
        return {"arrivals": window["arrivals"], "frt_mean_s": window["frt_mean"], "frt_p90_s": p90_of(window["hist"]),
                "start": window["start"], "end": window["end"]}

    def late(*_args: Any, **_kwargs: Any) -> bool:
        counts["late_window_updates"] += 1
        return False  # counted, not logged (a log line per late window update costs the peer CPU)

    sdf = app.dataframe(events)
    sdf = sdf.apply(per_conversation, stateful=True).filter(lambda v: v is not None)
    sdf = sdf.group_by(lambda v: v["queue"], name="queue")
    sdf = sdf.update(stage2)
    sdf = (
        sdf.hopping_window(duration_ms=300_000, step_ms=int(os.environ.get("QUIX_STEP_MS", "5000")),
                           grace_ms=GRACE_MS, on_late=late)
        .agg(arrivals=Sum("arr"), frt_mean=Mean("frt"), hist=Reduce(add_hist, lambda v: add_hist({}, v)))
        .current()
    )
    sdf = sdf.apply(figures)

    timer = threading.Timer(deadline_s, app.stop)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    app.run()
    timer.cancel()
    end = marks.get("done", time.monotonic())
    end_cpu = marks.get("done_cpu", cpu_s())
    first = marks.get("first", end)
    return {
        "events": counts["in"], "forwarded": counts["forwarded"], "stage2": counts["stage2"],
        "windowed": counts["windowed"], "late_window_updates": counts["late_window_updates"], "grace_ms": GRACE_MS,
        "seconds": end - first, "cpu_s": end_cpu - marks.get("first_cpu", end_cpu),
        "startup_s": first - started, "timed_out": "done" not in marks,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--deadline-s", type=float, default=300)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    res = run(a.bootstrap, a.topic, a.expect, a.deadline_s)
    a.out.write_bytes(orjson.dumps(res))


if __name__ == "__main__":
    main()
