"""Hostile names: one sender tries 100,000 distinct queue names. Memory and scrape size stay flat.

Two places a name turns into state, both in process (no broker: what is measured is our state,
not Kafka's):
- ingest (services.ingest.service.Ingestor with an in-memory producer): the per-tenant budget
  refuses new names past LIMIT_QUEUES_PER_TENANT; counted: events accepted, names held;
- the scorer's three stages (InProcessScorer) fed the same stream straight, as a sender with write
  access to the events topic would: stage 1's budget refuses the names past the limit; counted:
  views held, the bytes of the views' part of /metrics (ViewsCollector.render).
Python heap growth (tracemalloc) is measured at each step, with the limits on, and with the limits
set out of reach for comparison (the figures before this change, to a smaller count: it grows).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import orjson

from .common import log

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
OPEN_LIMITS = {"tenants": 10**9, "queues": 10**9, "shops": 10**9, "agents": 10**9}


def _events(start: int, n: int) -> list[dict[str, Any]]:
    return [{"event_id": f"h{i}", "type": "conversation.opened", "ts": T0 + i, "tenant": "mallory",
             "shop_id": "s", "platform": "web", "conversation_id": f"c{i}", "queue": f"q{i}"}
            for i in range(start, start + n)]


class _Producer:
    connected = True

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send_batch(self, records: Sequence[tuple[bytes, bytes]], timeout_s: float) -> None:
        return None

    async def ping(self, timeout_s: float) -> bool:
        return True


def _ingest_curve(total: int, step: int, limits: dict[str, int] | None) -> list[dict[str, Any]]:
    from services.core.limits import TenantLimits
    from services.ingest.body import RawItem
    from services.ingest.dedupe import RecentIds
    from services.ingest.metrics import IngestMetrics
    from services.ingest.service import Ingestor
    from services.ingest.settings import IngestSettings

    settings = IngestSettings(token="x", max_past_s=0, max_future_s=0,
                              limits=TenantLimits() if limits is None else TenantLimits(**limits))
    ing = Ingestor(settings, _Producer(), RecentIds(10, 1.0), IngestMetrics(), wall_clock=lambda: T0 / 1000)
    out: list[dict[str, Any]] = []
    accepted = 0
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for start in range(0, total, step):
        for chunk in range(start, start + step, 1000):
            items = [RawItem(i, obj) for i, obj in enumerate(_events(chunk, 1000))]
            outcome = asyncio.run(ing.ingest_items(items, atomic=False))
            accepted += int(outcome.body["accepted"])
        out.append({"names_tried": start + step, "accepted": accepted,
                    "names_held": ing.names.in_use("mallory", "queue"),
                    "heap_growth_mb": round((tracemalloc.get_traced_memory()[0] - base) / 2**20, 2)})
    tracemalloc.stop()
    return out


def _scorer_curve(total: int, step: int, limits: dict[str, int] | None) -> list[dict[str, Any]]:
    from services.core.events import parse_event
    from services.core.limits import TenantLimits
    from services.scorer.inprocess import InProcessScorer
    from services.scorer.metrics import ViewsCollector

    s = InProcessScorer()
    if limits is not None:
        s.conversations.limits = TenantLimits(**limits)
    exported = ViewsCollector(s.queues.current_views)
    out: list[dict[str, Any]] = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for start in range(0, total, step):
        recs = []
        for obj in _events(start, step):
            ev = parse_event(obj)
            recs.append((ev.key.encode(), ev.to_json()))
        s.feed_records(recs)
        s.tick(T0 + start + step)
        scrape = exported.render()
        out.append({"names_tried": start + step, "views": len(s.queues.latest),
                    "dead_letters": len(s.dead_letters), "views_scrape_bytes": len(scrape),
                    "heap_growth_mb": round((tracemalloc.get_traced_memory()[0] - base) / 2**20, 2)})
        s.dead_letters.clear()
    tracemalloc.stop()
    return out


def run(names: int = 100_000, step: int = 10_000, open_names: int = 20_000) -> dict[str, Any]:
    from services.core.limits import TenantLimits

    started = time.monotonic()
    log(f"hostile names: ingest, {names} names with the default limits")
    ingest = _ingest_curve(names, step, None)
    log(f"hostile names: scorer, {names} names with the default limits")
    scorer = _scorer_curve(names, step, None)
    log(f"hostile names: scorer, {open_names} names with no limits (for comparison)")
    scorer_open = _scorer_curve(open_names, step, OPEN_LIMITS)
    lim = TenantLimits()
    res = {
        "limits": {"queues_per_tenant": lim.queues, "shops_per_tenant": lim.shops, "agents_per_tenant": lim.agents},
        "ingest": ingest, "scorer": scorer, "scorer_without_limits": scorer_open,
        "summary": {
            "ingest_accepted_of_tried": f"{ingest[-1]['accepted']} of {names}",
            "scorer_views_first_last": [scorer[0]["views"], scorer[-1]["views"]],
            "scorer_scrape_bytes_first_last": [scorer[0]["views_scrape_bytes"], scorer[-1]["views_scrape_bytes"]],
            "scorer_heap_mb_first_last": [scorer[0]["heap_growth_mb"], scorer[-1]["heap_growth_mb"]],
            "without_limits_views_per_10k_names": scorer_open[-1]["views"] * 10_000 // open_names,
            "without_limits_scrape_bytes_per_10k_names":
                scorer_open[-1]["views_scrape_bytes"] * 10_000 // open_names,
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    return res


if __name__ == "__main__":
    import sys
    from pathlib import Path

    result = run(**({"names": 20_000, "open_names": 10_000} if "--quick" in sys.argv else {}))
    out = Path(__file__).resolve().parent / "results" / "hostile_names.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result["summary"], option=orjson.OPT_INDENT_2).decode())
