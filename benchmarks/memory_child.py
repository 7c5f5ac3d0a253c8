"""Memory measurements that need a clean process: run by benchmarks/memory.py, one point per process.

    python -m benchmarks.memory_child open --n 100000 --out r.json   # RSS with n open conversations
    python -m benchmarks.memory_child day --scale 2 --out r.json     # RSS every simulated hour of a day

Both feed the real stages through InProcessScorer (the same state a worker holds with SCORER_STORE=memory://:
the conversations table as bytes, the conversation cache, per-partition partials, the queue merger).
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

import orjson

from services.core.events import state_key
from services.core.scope import queue_total
from services.core.wire import kept

from .common import START_MS, dump_json, records_of, rnd, scaled_floor, self_peak_rss_bytes, self_rss_bytes

SHOPS = (("acme", "acme-tmall", "tmall"), ("acme", "acme-jd", "jd"), ("acme", "acme-pdd", "pdd"),
         ("acme", "acme-douyin", "douyin"), ("lumi", "lumi-taobao", "taobao"), ("lumi", "lumi-web", "web"))


def open_records(n: int, span_ms: int = 1_800_000) -> Any:
    """n conversations, each opened and then a customer message (unanswered, open), spread over span_ms.

    Values are exact-size bytes, as a worker gets them from Kafka: an `orjson.dumps` result keeps a ~4 KiB
    buffer, and 100k of them in a batch left ~600 MB that the allocator kept after the batch was freed, so
    the benchmark measured its own input rather than the scorer (found in the memory work of 2026-11-26).
    """
    step = span_ms / n
    for i in range(n):
        tenant, shop, platform = SHOPS[i % len(SHOPS)]
        queue = "presales" if i % 5 < 3 else "aftersales"
        cid = f"mem-{shop}-{i:07d}"
        ts = START_MS + int(i * step)
        key = state_key(tenant, cid).encode()  # as ingest keys it (per tenant)
        base = {"tenant": tenant, "shop_id": shop, "platform": platform, "conversation_id": cid}
        yield key, kept({"event_id": f"{cid}-001", "type": "conversation.opened", "ts": ts, **base,
                                 "queue": queue, "customer_id": f"c{i}", "channel": "web"})
        yield key, kept({"event_id": f"{cid}-002", "type": "message", "ts": ts + 1500, **base,
                                 "sender": "customer", "chars": 24})


def measure_open(n: int, batch_max: int | None = None) -> dict[str, Any]:
    """RSS with n open conversations, fed in batches of a worker's (SCORER_BATCH_MAX: what one stage takes at
    once), a tick every 100,000 events. Batches of 100,000 (until 2026-12-06) left the allocator holding what a
    batch's work had allocated: at b35401e 1,018-1,055 bytes per conversation, against 888 fed as a worker is
    (benchmarks/PROFILE.md, "One run of every section at b35401e, and open conversations fed as a worker
    takes them")."""
    from services.scorer.inprocess import InProcessScorer
    from services.scorer.settings import ScorerSettings

    size = batch_max or ScorerSettings().batch_max
    s = InProcessScorer()
    gc.collect()
    base = self_rss_bytes()  # interpreter, modules and an empty scorer
    t0 = time.monotonic()
    batch: list[tuple[bytes, bytes]] = []
    fed = 0
    for rec in open_records(n):
        batch.append(rec)
        if len(batch) == size:
            s.feed_records(batch)
            fed += size
            if fed % 100_000 < size:
                s.tick(orjson.loads(rec[1])["ts"])
            batch = []
    if batch:
        s.feed_records(batch)
    views = s.tick(START_MS + 1_800_000)
    feed_s = time.monotonic() - t0
    gc.collect()
    rss = self_rss_bytes()
    total = sum(v["live"]["open"] for key in (queue_total("presales"), queue_total("aftersales"))
                if (v := views.get(key)) is not None)
    table_bytes = sum(len(k) + len(v) for k, v in s.conv_table.items())
    return {
        "open_conversations": n, "open_in_views": total, "rss_mb": rnd(rss / 2**20),
        "baseline_rss_mb": rnd(base / 2**20),
        "bytes_per_conversation": int((rss - base) / n), "table_entries": len(s.conv_table),
        "table_payload_mb": rnd(table_bytes / 2**20), "cached_conversations": len(s.conversations.cache),
        "feed_s": rnd(feed_s), "peak_rss_mb": rnd(self_peak_rss_bytes() / 2**20), "batch_max": size,
    }


def measure_day(scale: int, out: Path, hours: int = 24, tick_every_min: int = 30) -> dict[str, Any]:
    """A day fed at max speed; every stage ticks once per `tick_every_min` simulated minutes.

    A worker ticks once a second of wall time: fed a day at full speed it would tick every ~1,000
    events. The tick (views over every 5 s bucket of the last hour) costs far more than the events at
    a small floor, so this ticks less often to finish in minutes; eviction happens on events, pruning
    of buckets at ticks, so memory stays as bounded as in a worker.
    """
    from services.scorer import malloc
    from services.scorer.inprocess import InProcessScorer

    model = scaled_floor(scale, seed=17)
    s = InProcessScorer()
    gc.collect()
    hourly: list[dict[str, Any]] = [{"hour": 0, "rss_mb": rnd(self_rss_bytes() / 2**20), "open": 0, "table": 0}]
    events = 0
    t0 = time.monotonic()
    for h in range(1, hours + 1):
        for minute in range(60):
            t_ms = START_MS + ((h - 1) * 60 + minute + 1) * 60_000
            recs = records_of(model.events_until(t_ms))
            s.feed_records(recs)
            if minute % tick_every_min == tick_every_min - 1:
                s.tick(t_ms)
                malloc.trim()  # as the worker does every SCORER_MALLOC_TRIM_S (10 s of wall time)
            events += len(recs)
        del recs
        gc.collect()
        st = model.stats()
        hourly.append({
            "hour": h, "rss_mb": rnd(self_rss_bytes() / 2**20), "events": events, "open": st.open,
            "table": len(s.conv_table), "cached": len(s.conversations.cache),
            "evicted": int(s.metrics.evicted._value.get()), "feed_s": rnd(time.monotonic() - t0),
        })
        # Written every hour: a run stopped by its time limit still leaves the hours it did.
        dump_json(out, day_summary(scale, hourly, complete=h == hours, tick_every_min=tick_every_min))
    return day_summary(scale, hourly, complete=True, tick_every_min=tick_every_min)


def day_summary(scale: int, hourly: list[dict[str, Any]], complete: bool, tick_every_min: int = 30) -> dict[str, Any]:
    last = hourly[-1]
    after_warmup = [x["rss_mb"] for x in hourly if x["hour"] >= 3]
    return {
        "floor_scale": scale, "events": last.get("events", 0), "simulated_hours": last["hour"],
        "complete": complete, "tick_every_simulated_min": tick_every_min, "feed_s": last.get("feed_s"),
        "hourly": hourly,
        "rss_mb_after_warmup_min": min(after_warmup) if after_warmup else None,
        "rss_mb_after_warmup_max": max(after_warmup) if after_warmup else None,
        "rss_growth_from_h3_mb": rnd(last["rss_mb"] - hourly[3]["rss_mb"]) if len(hourly) > 3 else None,
        "table_h3": hourly[3]["table"] if len(hourly) > 3 else None, "table_last": last["table"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["open", "day"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=None, help="open: events per feed (default SCORER_BATCH_MAX)")
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--hours", type=int, default=24)
    p.add_argument("--tick-every-min", type=int, default=30, help="day: simulated minutes between ticks")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    res = measure_open(a.n, a.batch) if a.mode == "open" else measure_day(a.scale, a.out, a.hours, a.tick_every_min)
    dump_json(a.out, res)


if __name__ == "__main__":
    main()
