"""The scorer's per-tick cost in process, on a large floor: `python -m benchmarks.tick_cost [--scale 61]`.

Feeds a floor of `scale` x the simulator's default (x61: ~3,500 agents, ~1,000 events/s) in event time at
a worker's cadence (`measure`), with agent views taking turns as in a worker (AGENT_VIEW_REFRESH_S / TICK_S),
and reports the mean milliseconds per simulated second of each step over the last two simulated minutes.
Writes benchmarks/results/tick_cost.json. No broker, no Faust.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import time
import timeit
from collections.abc import Callable

from services.scorer import collector
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import AGENT_FAMILIES, FLOOR_FAMILIES, ScorecardCollector, ViewsCollector
from services.scorer.settings import ScorerSettings

from .__main__ import git_commit
from .common import RESULTS, START_MS, dump_json, log, records_of, rnd, scaled_floor


def measure(scale: int, minutes: int, measured_s: int = 120) -> dict[str, object]:
    """Milliseconds per simulated second of each step, at a worker's cadence: every PARTIALS_TICK_S a quarter
    second's events are fed and stage 1 hands on its partials (all of them once a second, the queues' in
    between), and stage 2 builds the views they changed (the fast step), every view on the tick half a second
    in. The sum of the steps is the share of a core the floor costs before Kafka and Faust; Python's cyclic
    collector runs as in a worker (SCORER_GC_THRESHOLDS), and its share of the steps is `gc_ms_per_s`."""
    settings = ScorerSettings()
    gc_spent: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}  # generation: [runs, seconds]
    longest = [0.0]
    measuring = [False]

    def collected(generation: int, seconds: float) -> None:
        if measuring[0]:
            gc_spent[generation][0] += 1
            gc_spent[generation][1] += seconds
            longest[0] = max(longest[0], seconds)

    collector.configure(settings.gc_thresholds, collected)
    steps = max(1, round(settings.tick_s / settings.partials_tick_s))
    floor = scaled_floor(scale)
    scorer = InProcessScorer()
    scorer.queues.agent_refresh_ticks = settings.agent_refresh_ticks
    scorer.queues.merger = scorer.queues.new_merger()  # nothing fed yet
    names = ("feed", "partials", "partials_fast", "views", "views_fast")
    spent = dict.fromkeys(names, 0.0)
    events = seconds = published = 0
    for second in range(1, minutes * 60 + 1):
        measured = measuring[0] = second > minutes * 60 - measured_s
        for step in range(steps):
            now = START_MS + (second - 1) * 1000 + (step + 1) * 1000 // steps
            records = records_of(floor.events_until(now))
            events += len(records)
            t0 = time.perf_counter()
            scorer.feed_records(records)
            t1 = time.perf_counter()
            fast_partials = step != 0
            scorer._route(scorer.conversations.tick(now, fast=fast_partials) + scorer.agents.tick(fast=fast_partials))
            t2 = time.perf_counter()
            fast_views = step != steps // 2
            scorer.queues.tick(now, fast=fast_views)
            t3 = time.perf_counter()
            if measured:
                spent["feed"] += t1 - t0
                spent["partials_fast" if fast_partials else "partials"] += t2 - t1
                spent["views_fast" if fast_views else "views"] += t3 - t2
                published += len(scorer.queues.merger.rebuilt)
        seconds += measured
    return {
        "floor_scale": scale, "simulated_minutes": minutes, "events": events, "measured_seconds": seconds,
        "steps_per_second": steps, "views_in_scope": len(scorer.queues.latest),
        "views_built_per_second": rnd(published / seconds),
        **{f"{k}_ms_per_s": rnd(v / seconds * 1000) for k, v in spent.items()},
        "total_ms_per_s": rnd(sum(spent.values()) / seconds * 1000),
        "gc_thresholds": list(settings.gc_thresholds),
        "gc_ms_per_s": rnd(sum(s for _n, s in gc_spent.values()) / seconds * 1000),
        "gc_full_collections": int(gc_spent[2][0]),
        "gc_longest_ms": rnd(longest[0] * 1000),
        **scrape_cost(scorer, settings),
    }


def scrape_cost(scorer: InProcessScorer, settings: ScorerSettings) -> dict[str, object]:
    """A whole /metrics scrape of the floor as it stands: the views' series (rendered in a thread) and the
    scorecard's (in the event loop), best of 5 each, with the collector on as in a worker (timeit turns it off
    unless told). And the two parts Prometheus asks for (deploy/prometheus): the views' series without the agents'
    every 5 s, the agents' every 15 s (with the scorecard's, `?agents=only`)."""
    views = ViewsCollector(scorer.queues.current_views)
    scores = ScorecardCollector(lambda: list(scorer.queues.today_scores(settings.scorecard)))

    def best_ms(step: Callable[[], object]) -> float | None:
        return rnd(min(timeit.repeat(step, setup=gc.enable, number=1, repeat=5)) * 1000)

    body = views.render()
    return {"scrape_views_ms": best_ms(views.render), "scrape_bytes": len(body),
            "scrape_views_without_agents_ms": best_ms(lambda: views.render(FLOOR_FAMILIES)),
            "scrape_views_agents_only_ms": best_ms(lambda: views.render(AGENT_FAMILIES)),
            "scrape_series": body.count(b"\n") - 2 * body.count(b"# TYPE"),
            "scrape_scorecard_ms": best_ms(lambda: list(scores.collect()))}


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
