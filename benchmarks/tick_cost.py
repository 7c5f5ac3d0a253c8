"""The scorer's per-tick cost in process, on a large floor: `python -m benchmarks.tick_cost [--scale 61]`.

Feeds a floor of `scale` x the simulator's default (x61: ~3,500 agents, ~1,000 events/s) second by
second of event time, ticks every stage once a simulated second as a worker does, and reports the
mean milliseconds per tick of the last two simulated minutes: feeding that second's events, stage 1's
tick (partials) and stage 2's tick (views and alerts), with agent views taking turns as in a worker
(AGENT_VIEW_REFRESH_S / TICK_S). Writes benchmarks/results/tick_cost.json. No broker, no Faust.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from services.scorer.inprocess import InProcessScorer
from services.scorer.settings import ScorerSettings

from .__main__ import git_commit
from .common import RESULTS, START_MS, dump_json, log, records_of, rnd, scaled_floor


def measure(scale: int, minutes: int, measured_s: int = 120) -> dict[str, object]:
    floor = scaled_floor(scale)
    scorer = InProcessScorer()
    scorer.queues.agent_refresh_ticks = ScorerSettings().agent_refresh_ticks
    scorer.queues.merger = scorer.queues.new_merger()  # nothing fed yet
    spent = {"feed": 0.0, "partials": 0.0, "views": 0.0}
    events = ticks = published = 0
    for second in range(1, minutes * 60 + 1):
        now = START_MS + second * 1000
        records = records_of(floor.events_until(now))
        events += len(records)
        t0 = time.perf_counter()
        scorer.feed_records(records)
        t1 = time.perf_counter()
        scorer._route(scorer.conversations.tick(now) + scorer.agents.tick())
        t2 = time.perf_counter()
        views, _alerts = scorer.queues.tick(now)
        t3 = time.perf_counter()
        if second > minutes * 60 - measured_s:
            spent["feed"] += t1 - t0
            spent["partials"] += t2 - t1
            spent["views"] += t3 - t2
            ticks += 1
            published += len(views)
    return {
        "floor_scale": scale, "simulated_minutes": minutes, "events": events, "measured_ticks": ticks,
        "views_in_scope": len(scorer.queues.latest), "views_published_per_tick": rnd(published / ticks),
        **{f"{k}_ms_per_tick": rnd(v / ticks * 1000) for k, v in spent.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=int, default=61)
    p.add_argument("--minutes", type=int, default=6)
    args = p.parse_args()
    log(f"tick cost: floor x{args.scale}, {args.minutes} simulated minutes")
    res = {"measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "git_commit": git_commit(),
           **measure(args.scale, args.minutes)}
    dump_json(RESULTS / "tick_cost.json", res)
    log(f"  {res}")


if __name__ == "__main__":
    main()
