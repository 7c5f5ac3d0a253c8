"""Throughput: one real scorer worker, the bare-consumer ceiling and the Quix Streams peer on one topic.

The topic is pre-filled once with the simulator's seeded mix (a scaled floor: same events per
conversation, more shops' agents and arrivals). Each round runs, one after the other so they never
share the 2 cores: the scorer (a fresh consumer group and internal topics, SCORER_CLOCK=event, as
tests/integration/scorer_harness.py starts it), the ceiling, and the peer. Every run is capped in
time; its rate is measured over the events it processed after its first one (startup excluded),
and how many that was is recorded with it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from .common import (
    REPO,
    Broker,
    end_offsets_total,
    log,
    median,
    prefill,
    proc_cpu_s,
    proc_rss_bytes,
    rnd,
    sim_records,
)

PARTITIONS = 6


async def scrape_events_total(client: httpx.AsyncClient, port: int) -> float | None:
    """Sum of floorwatch_scorer_events_total over its results (every record the worker consumed)."""
    try:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("floorwatch_scorer_events_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def committed(admin: Any, group: str, topic: str) -> int | None:
    """Offsets the group committed on `topic` (Faust commits every second): records fully processed."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except Exception:
        return None
    return int(sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset >= 0))


async def run_scorer(b: Broker, topic: str, expect: int, cap_s: float, extra_env: dict[str, str] | None = None,
                     on_running: Any = None) -> dict[str, Any]:
    """One real worker over the whole topic; samples its committed offsets and /proc CPU once a second.

    Progress is read from the broker (the group's committed offsets), not from the worker's /metrics:
    a scrape renders every view and agent series in the worker's event loop, which would slow what
    is measured (py-spy saw scrapes take 8% of a worker's busy time at one scrape a second).
    """
    from aiokafka.admin import AIOKafkaAdminClient

    from tests.integration.scorer_harness import ScorerRun

    run = ScorerRun(kafka=b.kafka, prefix=f"bench-tp-{uuid.uuid4().hex[:8]}", events_topic=topic,
                    extra_env=extra_env or {})
    await run.create_topics()
    run.start_worker(0)
    pid, port = run.procs[0].pid, run.ports[0]
    from deploy.local.processes import running_pid

    broker_pid = running_pid(b.cfg, "kafka")
    started = time.monotonic()
    samples: list[tuple[float, float, float, float]] = []  # (t, events, worker cpu_s, broker cpu_s)
    profiled: Any = None
    group = run.env(0)["SCORER_APP_ID"]
    admin = AIOKafkaAdminClient(bootstrap_servers=b.bootstrap)
    await admin.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() - started < cap_s + 60:
                await asyncio.sleep(1.0)
                if run.procs[0].poll() is not None:
                    raise RuntimeError(f"scorer exited with {run.procs[0].returncode}")
                n = await committed(admin, group, topic)
                if n is None:
                    continue
                samples.append((time.monotonic(), n, proc_cpu_s(pid), proc_cpu_s(broker_pid) if broker_pid else 0.0))
                if on_running is not None and profiled is None and n > 0:
                    profiled = await on_running(pid)
                first = next((s for s in samples if s[1] > 0), None)
                if n >= expect or (first and time.monotonic() - first[0] >= cap_s):
                    break
            rss = proc_rss_bytes(pid)
            scraped = await scrape_events_total(client, port) if run.procs[0].poll() is None else None
    finally:
        await admin.close()
        run.stop()
    first = next((s for s in samples if s[1] > 0), None)
    last = samples[-1] if samples else None
    if not first or not last or last[1] <= first[1]:
        return {"events": int(last[1]) if last else 0, "events_per_s": None, "cpu_us_per_event": None}
    dn, dt, dcpu = last[1] - first[1], last[0] - first[0], last[2] - first[2]
    out = {
        "events": int(last[1]), "measured_events": int(dn), "seconds": rnd(dt, 2),
        "events_per_s": rnd(dn / dt), "cpu_us_per_event": rnd(dcpu / dn * 1e6),
        "cpu_share_of_one_core": rnd(dcpu / dt, 3),
        "broker_cpu_share_of_one_core": rnd((last[3] - first[3]) / dt, 3), "startup_s": rnd(first[0] - started, 1),
        "completed": last[1] >= expect, "rss_mb_at_end": rnd(rss / 2**20),
        "progress_from": "committed offsets", "events_total_at_end": scraped,
    }
    if profiled is not None:
        out["profile"] = profiled
    return out


def run_child(module: str, b: Broker, topic: str, expect: int, cap_s: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-W", "ignore", "-m", module, "--bootstrap", b.bootstrap, "--topic", topic,
               "--expect", str(expect), "--deadline-s", str(cap_s), "--out", str(out)]
        log_path = REPO / "benchmarks" / "results" / f"{module.rsplit('.', 1)[1]}.log"
        with log_path.open("ab") as fh:
            proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=cap_s + 120, check=False)
        if proc.returncode != 0 or not out.exists():
            return {"error": f"{module} exited with {proc.returncode}; see {log_path.relative_to(REPO)}"}
        res: dict[str, Any] = orjson.loads(out.read_bytes())
    n = res["events"]
    if "forwarded" in res and res["forwarded"] and res["stage2"] < res["forwarded"]:
        # Timed out with stage 2 behind: count the input whose output stage 2 has caught up with.
        n = int(n * res["stage2"] / res["forwarded"])
    res["measured_events"] = n
    res["events_per_s"] = rnd(n / res["seconds"]) if res["seconds"] else None
    res["cpu_us_per_event"] = rnd(res["cpu_s"] / n * 1e6) if n else None
    return res


def quix_available() -> str | None:
    """None when Quix Streams imports here, else why not."""
    try:
        import confluent_kafka  # noqa: F401
        import quixstreams  # noqa: F401
    except Exception as exc:
        return f"quixstreams/confluent-kafka do not import: {exc!r} (install the `bench` extra)"
    return None


def run(b: Broker, *, events: int, scale: int, rounds: int, scorer_cap_s: float, ceiling_cap_s: float,
        peer_cap_s: float) -> dict[str, Any]:
    topic = f"bench.chat-events.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, PARTITIONS)
    t0 = time.monotonic()
    records, span_ms = sim_records(events, scale)
    gen_s = time.monotonic() - t0
    log(f"throughput: generated {len(records):,} events ({span_ms / 60000:.0f} simulated minutes) in {gen_s:.0f} s")
    fill_s = asyncio.run(prefill(b.bootstrap, topic, records))
    total = asyncio.run(end_offsets_total(b.bootstrap, topic, PARTITIONS))
    types: dict[str, int] = {}
    for _k, v in records:
        t = orjson.loads(v)["type"]
        types[t] = types.get(t, 0) + 1
    del records
    log(f"throughput: topic {topic} holds {total:,} records (written in {fill_s:.0f} s)")
    quix_missing = quix_available()
    peers = {"peer": {"QUIX_STEP_MS": "5000"}, "peer_coarse": {"QUIX_STEP_MS": "60000"}}
    runs: dict[str, list[dict[str, Any]]] = {"scorer": [], "ceiling": [], **{k: [] for k in peers}}
    for i in range(rounds):
        log(f"throughput round {i + 1}/{rounds}: scorer (cap {scorer_cap_s:.0f} s)")
        runs["scorer"].append(asyncio.run(run_scorer(b, topic, total, scorer_cap_s)))
        log(f"  scorer: {runs['scorer'][-1]}")
        runs["ceiling"].append(run_child("benchmarks.ceiling", b, topic, total, ceiling_cap_s))
        log(f"  ceiling: {runs['ceiling'][-1]}")
        if quix_missing is None:
            for name, env in peers.items():
                runs[name].append(run_child("benchmarks.quix_peer", b, topic, total, peer_cap_s, env))
                log(f"  {name}: {runs[name][-1]}")
    med = {k: {"events_per_s": median([r.get("events_per_s") for r in v]),
               "cpu_us_per_event": median([r.get("cpu_us_per_event") for r in v])} for k, v in runs.items() if v}
    scorer_eps = med["scorer"]["events_per_s"]

    def ratio(name: str) -> float | None:
        other = med.get(name, {}).get("events_per_s")
        return rnd(scorer_eps / other, 4) if scorer_eps and other else None

    return {
        "topic_events": total, "events_requested": events, "floor_scale": scale,
        "simulated_minutes": rnd(span_ms / 60000, 1), "event_types": types, "partitions": PARTITIONS,
        "prefill_s": rnd(fill_s, 1), "rounds": rounds,
        "caps_s": {"scorer": scorer_cap_s, "ceiling": ceiling_cap_s, "peer": peer_cap_s},
        "median": med,
        "ratio_scorer_to_ceiling": ratio("ceiling"),
        "ratio_scorer_to_peer": ratio("peer"),
        "ratio_scorer_to_peer_coarse": ratio("peer_coarse"),
        "peer_not_measured": quix_missing,
        "peer_shape": ("Quix Streams 5-minute hopping window, step 5 s (the scorer's bucket), per queue after "
                       "group_by; arrivals, FRT mean and p90 only"),
        "peer_coarse_shape": "the same with a 60 s step (12x fewer window updates per record)",
        "runs": runs,
    }

