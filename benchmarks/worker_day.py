"""Memory of a real worker over a simulated day, on production's store (rocksdb://): RSS per simulated hour.

The events topic is pre-filled once with `hours` of floor x`scale` (the simulator's seeded day, as the memory
section's in-process day). For each setting, one worker (a fresh group; SCORER_CLOCK=event, as the integration
harness starts it) scores the topic as fast as it can, ticking every second of wall time (about a simulated
minute at floor x1, where the in-process day ticks every 30). Its RSS is sampled every second against the events
it has scored: an hour's figure is the first sample after the worker scored that hour's last event.

The in-process day measures memory://, where every table is a dict in the process. On rocksdb:// the tables
live in RocksDB: its memtables and block caches (one database per table partition) are in the RSS instead.

A worker catching up on a day also holds a backlog's buffers (Faust's producer buffer reached ~25,000 changelog
writes in such a run), which a live floor's worker does not. So `paced_hours` more hours are also fed as a live
floor would send them, `pace` times faster than live (20: a simulated minute every 3 s, ~330 events/s at floor
x1), into a fresh topic while one worker scores them: the small floor's figure is that run's. Each entry of
`paced_partitions` ((EVENT_PARTITIONS, QUEUE_PARTITIONS), besides the defaults') is fed the same hours at the same
time, into topics of its own, to another worker: what a deployment sized to its one worker holds (a worker keeps
buckets per scope and source partition, and a RocksDB database per table partition).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.core.config import DEFAULT_EVENT_PARTITIONS, DEFAULT_QUEUE_PARTITIONS

from .common import START_MS, Broker, log, prefill, proc_rss_bytes, records_of, rnd, scaled_floor

PARTITIONS = DEFAULT_EVENT_PARTITIONS
QUEUE_PARTITIONS = DEFAULT_QUEUE_PARTITIONS


def day_minutes(hours: int, scale: int) -> list[list[tuple[bytes, bytes]]]:
    """The day's records in event order, one list per simulated minute."""
    model = scaled_floor(scale, seed=17)
    return [records_of(model.events_until(START_MS + (m + 1) * 60_000)) for m in range(hours * 60)]


def by_hour_of(minutes: list[list[tuple[bytes, bytes]]]) -> list[int]:
    """How many records there are by the end of each hour."""
    return list(itertools.accumulate(len(recs) for recs in minutes))[59::60]


def day_records(hours: int, scale: int) -> tuple[list[tuple[bytes, bytes]], list[int]]:
    """The day's records in event order, and how many there are by the end of each hour."""
    minutes = day_minutes(hours, scale)
    return [r for recs in minutes for r in recs], by_hour_of(minutes)


async def feed_paced(bootstrap: str, topic: str, minutes: list[list[tuple[bytes, bytes]]], pace: float) -> None:
    """Each simulated minute's records once its time has come, `pace` times faster than live (acks=all)."""
    from aiokafka import AIOKafkaProducer

    from services.core.kafka_security import client_kwargs

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_kwargs())
    await producer.start()
    started = time.monotonic()
    try:
        for m, recs in enumerate(minutes):
            pending = [await producer.send(topic, key=k, value=v) for k, v in recs]
            await asyncio.gather(*pending)
            await asyncio.sleep(max(0.0, started + (m + 1) * 60 / pace - time.monotonic()))
    finally:
        await producer.stop()


def dir_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    return rnd(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20)


async def one_day(b: Broker, topic: str, by_hour: list[int], cap_s: float, env: dict[str, str],
                  partitions: tuple[int, int] = (PARTITIONS, QUEUE_PARTITIONS)) -> dict[str, Any]:
    """One worker scores the topic's first len(by_hour) hours (or until cap_s); `partitions`: the events topic's
    and the partials topic's (EVENT_PARTITIONS, QUEUE_PARTITIONS)."""
    from tests.integration.scorer_harness import ScorerRun

    from .throughput import scrape_events_total

    run = ScorerRun(kafka=b.kafka, prefix=f"bench-day-{uuid.uuid4().hex[:6]}", events_topic=topic,
                    event_partitions=partitions[0], queue_partitions=partitions[1],
                    extra_env={"SCORER_STORE": "rocksdb://", **env})
    await run.create_topics()
    run.start_worker(0)
    hourly: list[dict[str, Any]] = []
    peak = 0.0  # the largest RSS sampled, MB
    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient() as client:
            while time.monotonic() - t0 < cap_s and len(hourly) < len(by_hour):
                await asyncio.sleep(1)
                done = await scrape_events_total(client, run.ports[0])
                if done is None:
                    continue
                rss = proc_rss_bytes(run.procs[0].pid) / 2**20
                peak = max(peak, rss)
                while len(hourly) < len(by_hour) and done >= by_hour[len(hourly)]:
                    hourly.append({"hour": len(hourly) + 1, "rss_mb": rnd(rss), "events": int(done),
                                   "wall_s": rnd(time.monotonic() - t0)})
                    log(f"  worker day {env or 'defaults'}: {hourly[-1]}")
        store_mb = dir_mb(Path(run.env(0)["RUN_DIR"]))
    finally:
        run.stop()
    after_warmup = [x["rss_mb"] for x in hourly if x["hour"] >= 3]
    return {
        "env": env, "store": "rocksdb://", "hours_scored": len(hourly), "complete": len(hourly) == len(by_hour),
        "hourly": hourly,
        "rss_mb_after_warmup_min": min(after_warmup) if after_warmup else None,
        "rss_mb_after_warmup_max": max(after_warmup) if after_warmup else None,
        "rss_mb_peak_sampled": rnd(peak),
        "rss_growth_from_h3_mb": rnd(hourly[-1]["rss_mb"] - hourly[2]["rss_mb"]) if len(hourly) > 3 else None,
        "events_per_s": rnd(hourly[-1]["events"] / hourly[-1]["wall_s"]) if hourly else None,
        "rocksdb_dir_mb": store_mb,
        "event_partitions": partitions[0], "queue_partitions": partitions[1],
    }


async def paced_day(b: Broker, minutes: list[list[tuple[bytes, bytes]]], pace: float, cap_s: float,
                    partitions: tuple[int, int] = (PARTITIONS, QUEUE_PARTITIONS)) -> dict[str, Any]:
    """One worker (today's defaults, on topics of `partitions`) scores `minutes` (`day_minutes`) fed `pace` times
    faster than live."""
    hours = len(minutes) // 60
    topic = f"bench.paced.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, partitions[0])
    log(f"worker day: {hours} simulated hours fed {pace:g}x faster than live, partitions {partitions}")
    feeder = asyncio.create_task(feed_paced(b.bootstrap, topic, minutes, pace))
    try:
        out = await one_day(b, topic, by_hour_of(minutes), cap_s, {}, partitions)
    finally:
        feeder.cancel()
    return {**out, "hours": hours, "pace": pace}


async def paced_days(b: Broker, hours: int, scale: int, pace: float, cap_s: float,
                     partitions: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """`paced_day` for each partition sizing, at the same time (each worker keeps up with a live pace). The day is
    simulated once, before any feed starts: every worker gets the same records from the same moment."""
    minutes = day_minutes(hours, scale)
    return list(await asyncio.gather(*(paced_day(b, minutes, pace, cap_s, p) for p in partitions)))


def run(b: Broker, *, hours: int, scale: int, cap_s: float, settings: dict[str, dict[str, str]],
        hours_of: dict[str, int] | None = None, paced_hours: int = 0, pace: float = 20,
        paced_partitions: list[list[int]] | None = None) -> dict[str, Any]:
    """`hours_of`: settings scored over fewer hours than the day (a comparison that need not take as long);
    `paced_hours`: hours also fed at `pace` times live to one worker at today's defaults (0: none), and at the
    same time to one more worker for each (EVENT_PARTITIONS, QUEUE_PARTITIONS) in `paced_partitions`."""
    records, by_hour = day_records(hours, scale)
    topic = f"bench.day.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, PARTITIONS)
    log(f"worker day: {len(records):,} events of {hours} simulated hours at floor x{scale}, prefilling")
    prefill_s = asyncio.run(prefill(b.bootstrap, topic, records))
    del records
    out: dict[str, Any] = {"hours": hours, "floor_scale": scale, "events": by_hour[-1], "prefill_s": rnd(prefill_s),
                           "by_setting": {}}
    for name, env in settings.items():
        log(f"worker day: one worker on rocksdb:// ({name}: {env})")
        upto = by_hour[:(hours_of or {}).get(name, hours)]
        out["by_setting"][name] = {**asyncio.run(one_day(b, topic, upto, cap_s, env)), "hours": len(upto)}
    if paced_hours:
        sizings = [(PARTITIONS, QUEUE_PARTITIONS)] + [(int(e), int(q)) for e, q in paced_partitions or []]
        out["paced"], *others = asyncio.run(paced_days(b, paced_hours, scale, pace, cap_s, sizings))
        out["paced_by_partitions"] = others
    return out


def main() -> None:
    """`python -m benchmarks.worker_day [--hours 24] [--pace 20]`: the paced day alone, as README's small-floor rows
    are measured: one worker on the default partitions and one on 1 and 1, fed the same live day at the same time
    (72 minutes for 24 hours at 20x). Writes benchmarks/results/worker_day_paced.json."""
    from .__main__ import git_commit
    from .common import RESULTS, broker, dump_json

    p = argparse.ArgumentParser(description="A small floor's live day on the default partitions and on 1 and 1.")
    p.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    p.add_argument("--pace", type=float, default=20.0, help="times faster than live (default 20)")
    a = p.parse_args()
    cap_s = a.hours * 3600 / a.pace * 1.2 + 60  # the day's wall time and a margin
    with broker() as b:
        days = asyncio.run(paced_days(b, a.hours, 1, a.pace, cap_s, [(PARTITIONS, QUEUE_PARTITIONS), (1, 1)]))
    dump_json(RESULTS / "worker_day_paced.json", {"git_commit": git_commit(), "days": days})
    for day in days:
        log(f"partitions {day['event_partitions']} and {day['queue_partitions']}: "
            f"{' / '.join(str(h['rss_mb']) for h in day['hourly'])} MB, sampled peak {day['rss_mb_peak_sampled']} MB")


if __name__ == "__main__":
    main()
