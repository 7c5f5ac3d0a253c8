"""Recovery: a real worker holding 100k open conversations is SIGKILLed and restarted; time to correct figures.

One worker (SCORER_CLOCK=event, SCORER_STORE=memory://, as tests/integration/scorer_harness.py runs it, and
again with rocksdb://, production's store, whose restart reads only the changelogs' tail)
scores N `conversation.opened` events (N conversations open), and the per-queue `open` figures it exports
are recorded. Then, `cycles` times: SIGKILL, start again, and time until /healthz answers 200 and until
/metrics shows every queue's open figure equal to the one before the kill (the restarted worker rebuilds
the tables from their changelogs). The worker's RSS at N open conversations is the real-worker memory point.

Takeover: two workers share the N conversations; the one whose /metrics shows the queue views (stage 2's
partitions) is SIGKILLed and never comes back, and the time is until the survivor's /metrics shows every
figure the two showed before (it must first notice the loss: the group's session timeout,
SCORER_SESSION_TIMEOUT_S, 6 s by default and 10 s in the harness; then it takes the lost partitions over: with a
standby it reads only the changelogs' tail, without one it restores them whole). Each row of TAKEOVER_SETTINGS
is one setting.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson

from .common import START_MS, Broker, log, median, prefill, proc_rss_bytes, rnd

SHOPS = (("acme", "acme-tmall", "tmall"), ("acme", "acme-jd", "jd"), ("acme", "acme-pdd", "pdd"),
         ("acme", "acme-douyin", "douyin"), ("lumi", "lumi-taobao", "taobao"), ("lumi", "lumi-web", "web"))


def opened_records(n: int, span_ms: int = 1_800_000) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        tenant, shop, platform = SHOPS[i % len(SHOPS)]
        cid = f"rec-{shop}-{i:07d}"
        out.append((cid.encode(), orjson.dumps({
            "event_id": f"{cid}-001", "type": "conversation.opened", "ts": START_MS + i * span_ms // n,
            "tenant": tenant, "shop_id": shop, "platform": platform, "conversation_id": cid,
            "queue": "presales" if i % 5 < 3 else "aftersales", "customer_id": f"c{i}", "channel": "web"})))
    return out


async def open_figures(client: httpx.AsyncClient, port: int) -> dict[str, float] | None:
    try:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    except httpx.HTTPError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("floorwatch_queue_open_conversations{"):
            labels, value = line.rsplit(" ", 1)
            out[labels] = float(value)
    return out


async def scenario(b: Broker, n: int, cycles: int, fill_timeout_s: float, cycle_timeout_s: float,
                   store: str = "memory://") -> dict[str, Any]:
    from tests.integration.scorer_harness import ScorerRun

    from .throughput import scrape_events_total

    topic = f"bench.recovery.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, 6)
    await prefill(b.bootstrap, topic, opened_records(n))
    run = ScorerRun(kafka=b.kafka, prefix=f"bench-rec-{uuid.uuid4().hex[:6]}", events_topic=topic,
                    extra_env={"SCORER_STORE": store})
    await run.create_topics()
    run.start_worker(0)
    out: dict[str, Any] = {"open_conversations": n, "store": store, "cycles": []}
    try:
        async with httpx.AsyncClient() as client:
            port = run.ports[0]
            t0 = time.monotonic()
            want: dict[str, float] | None = None
            while time.monotonic() - t0 < fill_timeout_s:
                await asyncio.sleep(2)
                done = await scrape_events_total(client, port) or 0
                figs = await open_figures(client, port)
                if done >= n and queue_totals(figs) >= n:
                    want = figs
                    break
            out["fill_s"] = rnd(time.monotonic() - t0, 1)
            if want is None:
                out["not_measured"] = f"the worker did not score {n:,} events within {fill_timeout_s:.0f} s"
                return out
            out["worker_rss_mb"] = rnd(proc_rss_bytes(run.procs[0].pid) / 2**20)
            out["fill_events_per_s"] = rnd(n / (time.monotonic() - t0))
            await asyncio.sleep(3)  # past Faust's commit interval (1 s): the state to recover is committed
            for i in range(cycles):
                run.kill_worker(0)
                run.start_worker(0)
                started = time.monotonic()
                healthy_s = correct_s = None
                while time.monotonic() - started < cycle_timeout_s:
                    await asyncio.sleep(0.5)
                    if healthy_s is None:
                        try:
                            r = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                            if r.status_code == 200:
                                healthy_s = time.monotonic() - started
                        except httpx.HTTPError:
                            pass
                    if await open_figures(client, port) == want:
                        correct_s = time.monotonic() - started
                        break
                cyc = {"healthy_s": rnd(healthy_s, 2), "correct_s": rnd(correct_s, 2),
                       "rss_mb_after": rnd(proc_rss_bytes(run.procs[0].pid) / 2**20)}
                log(f"  recovery cycle {i + 1}: {cyc}")
                out["cycles"].append(cyc)
    finally:
        run.stop()
    out["median_correct_s"] = median([c["correct_s"] for c in out["cycles"]])
    out["median_healthy_s"] = median([c["healthy_s"] for c in out["cycles"]])
    out["figures_compared"] = len(want or {})
    return out


def queue_totals(figs: dict[str, float] | None) -> float:
    return sum(v for k, v in (figs or {}).items() if 'shop="*"' in k and 'tenant="*"' in k and 'platform="*"' in k)


# The takeover under each setting: (what the row is, the workers' environment over the harness's). The harness's
# workers keep their tables in memory:// with a 10 s session timeout; an empty value gives the worker's own
# default (production's defaults: rocksdb://, SCORER_STANDBY_REPLICAS=auto, i.e. one standby there, and a 6 s
# session timeout, the least a broker allows by default: group.min.session.timeout.ms).
TAKEOVER_SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "memory": ("memory://, no standby, 10 s session timeout: the test harness's", {}),
    "rocksdb_10s": ("rocksdb://, no standby, 10 s session timeout: the defaults until 2026-12-03",
                    {"SCORER_STORE": "rocksdb://", "SCORER_STANDBY_REPLICAS": "0"}),
    # "" is the setting's default: these undo what the test harness sets (its purge every 2 s among them).
    "defaults": ("today's defaults: rocksdb://, one standby, 6 s session timeout",
                 {"SCORER_STORE": "rocksdb://", "SCORER_STANDBY_REPLICAS": "", "SCORER_SESSION_TIMEOUT_S": "",
                  "SCORER_PARTIALS_PURGE_S": ""}),
}


async def takeover(b: Broker, n: int, fill_timeout_s: float, cycle_timeout_s: float,
                   env: dict[str, str] | None = None, label: str = "") -> dict[str, Any]:
    """Two workers, the one showing the views SIGKILLed for good: time until the other shows every figure."""
    from tests.integration.scorer_harness import ScorerRun

    topic = f"bench.takeover.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, 6)
    await prefill(b.bootstrap, topic, opened_records(n))
    run = ScorerRun(kafka=b.kafka, prefix=f"bench-take-{uuid.uuid4().hex[:6]}", events_topic=topic,
                    extra_env=dict(env or {}))
    await run.create_topics()
    run.start_worker(0)
    run.start_worker(1)
    out: dict[str, Any] = {"open_conversations": n, "workers": 2, "env": dict(env or {}), "setting": label}
    try:
        async with httpx.AsyncClient() as client:
            t0 = time.monotonic()
            want: dict[str, float] | None = None
            while time.monotonic() - t0 < fill_timeout_s:
                await asyncio.sleep(2)
                both = [await open_figures(client, run.ports[i]) for i in (0, 1)]
                merged = {**(both[0] or {}), **(both[1] or {})}
                if queue_totals(merged) >= n and None not in both:
                    want = merged
                    break
            out["fill_s"] = rnd(time.monotonic() - t0, 1)
            if want is None:
                out["not_measured"] = f"two workers did not show {n:,} open conversations within {fill_timeout_s:.0f} s"
                return out
            await asyncio.sleep(3)  # past the commit interval
            victim = 1 if queue_totals(both[1]) >= queue_totals(both[0]) else 0
            survivor = 1 - victim
            out["survivor_showed_before"] = len(both[survivor] or {})
            run.kill_worker(victim)
            started = time.monotonic()
            while time.monotonic() - started < cycle_timeout_s:
                await asyncio.sleep(0.5)
                if await open_figures(client, run.ports[survivor]) == want:
                    out["correct_s"] = rnd(time.monotonic() - started, 2)
                    break
            else:
                out["correct_s"] = None
                out["not_within_s"] = cycle_timeout_s
            log(f"  takeover: {out}")
    finally:
        run.stop()
    return out


def run(b: Broker, *, n: int, cycles: int, fill_timeout_s: float, cycle_timeout_s: float) -> dict[str, Any]:
    log(f"recovery: {n:,} open conversations in a real worker, {cycles} SIGKILL/restart cycles")
    out = asyncio.run(scenario(b, n, cycles, fill_timeout_s, cycle_timeout_s))
    log("recovery: the same with SCORER_STORE=rocksdb:// (production's store: tables stay on disk)")
    out["rocksdb"] = asyncio.run(scenario(b, n, cycles, fill_timeout_s, cycle_timeout_s, store="rocksdb://"))
    return out


def run_takeovers(b: Broker, *, n: int, fill_timeout_s: float, cycle_timeout_s: float) -> dict[str, Any]:
    """The `takeover` section: one takeover under each of TAKEOVER_SETTINGS."""
    out: dict[str, Any] = {"open_conversations": n, "by_setting": {}}
    for name, (label, env) in TAKEOVER_SETTINGS.items():
        log(f"takeover: a worker that never returns, {n:,} open conversations on two workers ({label}: {env})")
        out["by_setting"][name] = asyncio.run(takeover(b, n, fill_timeout_s, cycle_timeout_s, env, label))
    return out
