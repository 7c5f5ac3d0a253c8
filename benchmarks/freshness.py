"""Freshness: from ingest's 202 to the figure changing at the API, its SSE stream and the scorer's /metrics.

The stack's services (ingest, one scorer worker on the wall clock, api) run on TEST_PORT_OFFSET ports.
Background traffic is a scaled simulator floor in real time (event ts = now), posted to ingest in
JSON arrays every 50 ms at the offered rate. Probes are single `conversation.opened` events of a
queue only probes use (`bench-probe`): the queue's 1h arrivals count is watched at GET
/v1/queues/bench-probe (polled every 10 ms), on GET /v1/stream?queues=bench-probe (each frame as it
comes) and at the worker's /metrics?name[]=floorwatch_queue_arrivals (polled every 100 ms); probe k's
delay at each is the first time the count reaches k, minus probe k's 202. A probe not seen within
PROBE_TIMEOUT_S is counted as censored (its delay is at least that), never dropped. The worker's
counters give the records and bytes each event cost (consumed and published, per topic). While the load
runs, each worker's whole /metrics is scraped as often as the stack's Prometheus scrapes it (every 5 s), so
the delays include what a real floor's scrapes cost the workers. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import yaml

from .common import CLK_TCK, Broker, log, pct, proc_cpu_s, rnd, scaled_floor
from .common import EVENTS_PER_UNIT_FLOOR_S as UNIT_RATE

PROBE_QUEUE = "bench-probe"
PROBE_TIMEOUT_S = 20.0
POLL_S = 0.01  # the API (its own process)
# A whole scrape renders every view and agent series (16 MB at 61x): polled often, scraping alone would need a
# core. The probe asks for the one family it reads (`?name[]=`, as prometheus_client serves it), which skips the
# agents' series, every 100 ms; the delay is the midpoint between the last miss and the hit (+-50 ms).
METRICS_POLL_S = 0.1
METRICS_FAMILY = "floorwatch_queue_arrivals"
TICK_S = 0.05
WARM_S = 180


class ScrapeJob(NamedTuple):
    query: str  # what the job asks of each worker's /metrics ("" or "?agents=only", ...)
    every_s: float
    timeout_s: float


def _seconds(value: object, what: str) -> float:
    text = str(value)
    if not (text.endswith("s") and text[:-1].isdigit()):
        raise ValueError(f"Prometheus's {what} is {text!r}: the benchmark reads whole seconds only (e.g. 5s)")
    return float(text[:-1])


def scorer_scrape_jobs(cfg: Any) -> list[ScrapeJob]:
    """The scorer's scrape jobs in the Prometheus config the stack renders (deploy/local/monitoring.py): each one's
    query, interval and timeout. The benchmark scrapes the workers as they do while the load runs, so a figure's
    delay includes what a real floor's scrapes cost."""
    from deploy.local.monitoring import render_configs

    with tempfile.TemporaryDirectory() as folder:
        prometheus, _alertmanager = render_configs(cfg, Path(folder))
        config = yaml.safe_load(prometheus.read_text(encoding="utf-8"))
    default = config["global"]
    jobs = []
    for job in config["scrape_configs"]:
        if not job["job_name"].startswith("scorer"):
            continue
        params = urllib.parse.urlencode(job.get("params") or {}, doseq=True)
        jobs.append(ScrapeJob(
            f"?{params}" if params else "",
            _seconds(job.get("scrape_interval", default["scrape_interval"]), f"{job['job_name']} scrape_interval"),
            _seconds(job.get("scrape_timeout", default["scrape_timeout"]), f"{job['job_name']} scrape_timeout")))
    if not jobs:
        raise ValueError("the rendered Prometheus config has no scorer job")
    return jobs


async def scrape_like_prometheus(metrics: list[str], jobs: list[ScrapeJob], seconds: float
                                 ) -> dict[str, tuple[list[float], int]]:
    """Every worker's /metrics as each job asks for it, once per its interval, for `seconds` (each worker on its
    own, as Prometheus scrapes its targets, giving up after the job's timeout): per job's query, the seconds each
    scrape took, and how many failed."""
    end = time.monotonic() + seconds

    async def job_loop(client: httpx.AsyncClient, job: ScrapeJob) -> tuple[list[float], int]:
        took: list[float] = []
        failed = 0

        async def one(url: str) -> None:
            nonlocal failed
            t = time.monotonic()
            try:
                (await client.get(url + job.query, timeout=job.timeout_s)).raise_for_status()
            except httpx.HTTPError:
                failed += 1
                return
            took.append(time.monotonic() - t)

        while time.monotonic() < end:
            started = time.monotonic()
            await asyncio.gather(*(one(url) for url in metrics))
            await asyncio.sleep(max(0.0, job.every_s - (time.monotonic() - started)))
        return took, failed

    async with httpx.AsyncClient() as client:
        results = await asyncio.gather(*(job_loop(client, job) for job in jobs))
    return {job.query: result for job, result in zip(jobs, results, strict=True)}


def metrics_arrivals(text: str) -> float:
    want = f'queue="{PROBE_QUEUE}"'
    for line in text.splitlines():
        if (line.startswith("floorwatch_queue_arrivals{") and want in line and 'shop="*"' in line
                and 'tenant="*"' in line and 'window="1h"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def api_arrivals(resp: httpx.Response) -> float:
    if resp.status_code != 200:
        return 0.0
    w = resp.json()["windows"]["1h"]["arrivals"]
    return float(w or 0)


def stream_arrivals(frame: dict[str, Any]) -> float | None:
    """The probe queue's 1h arrivals in a full `views` frame of /v1/stream (None: not in it)."""
    for view in frame.get("queues", []):
        if view["queue"] == PROBE_QUEUE and view["scope"]["shop_id"] == "*":
            return float(view["windows"]["1h"]["arrivals"] or 0)
    return None


TICK_SUM = "floorwatch_scorer_tick_seconds_sum"  # per step: the seconds its runs took, summed
COUNTERS = ("floorwatch_scorer_records_consumed_total", "floorwatch_scorer_records_published_total",
            "floorwatch_scorer_bytes_published_total", "floorwatch_scorer_state_writes_total",
            "floorwatch_scorer_state_write_bytes_total")


async def scorer_counters(client: httpx.AsyncClient, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The workers' per-topic record and byte counters, and their events scored ("events_total"), summed."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("name[]", n) for n in (*COUNTERS, "floorwatch_scorer_events_total", TICK_SUM)]
    texts = [(await client.get(url, params=params, timeout=30)).text for url in metrics]
    out: dict[str, dict[str, float]] = {}
    for line in "\n".join(texts).splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        topic = labels.split('"')[1] if any(f"{k}=" in labels for k in ("topic", "stage", "table")) else "all"
        family = {"floorwatch_scorer_events_total": "events_total", TICK_SUM: "tick_s"}.get(name, name)
        out.setdefault(family, {})
        out[family][topic] = out[family].get(topic, 0.0) + float(value)
    return out


def per_event(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Records and bytes per event scored between two counter readings, per topic and in all."""
    events = sum(after.get("events_total", {}).values()) - sum(before.get("events_total", {}).values())
    if events <= 0:
        return {"events": 0}
    out: dict[str, Any] = {"events": int(events)}
    # state_writes: table records written to their changelogs (by table), records an event costs as published ones do
    for family, short in zip(COUNTERS, ("consumed", "published", "published_bytes", "state_writes",
                                        "state_write_bytes"), strict=True):
        by_topic = {t: (v - before.get(family, {}).get(t, 0.0)) / events for t, v in after.get(family, {}).items()}
        out[f"{short}_per_event"] = {t: rnd(v, 3) for t, v in sorted(by_topic.items())}
        out[f"{short}_per_event_total"] = rnd(sum(by_topic.values()), 3)
    return out


async def offered_load(client: httpx.AsyncClient, url: str, token: str, rate: float, seconds: float,
                       stats: dict[str, Any]) -> None:
    """Post a scaled floor's events as they happen (ts = now), every TICK_S, for `seconds`."""
    scale = max(1, round(rate / UNIT_RATE))
    # The floor opens WARM_S before the load starts (a floor at full rate, not one logging in); what it
    # did before is not posted (the scorer meets those conversations mid-way, as after a gap).
    anchor = int(time.time() * 1000)
    model = scaled_floor(scale, seed=23, start_ms=anchor - WARM_S * 1000, run_id=f"fresh-{uuid.uuid4().hex[:6]}")
    model.events_until(anchor)
    events = model.events_until(anchor + int(seconds * 1000))
    start_ms = int(time.time() * 1000) + 1000
    for e in events:  # generation took a while: move the live part to start now (ids do not hold ts)
        e["ts"] += start_ms - anchor
    stats.update(scale=scale, generated=len(events))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(4)
    tasks: set[asyncio.Task[None]] = set()

    async def post(batch: list[dict[str, Any]]) -> None:
        async with sem:
            try:
                r = await client.post(url, content=orjson.dumps(batch), headers=headers, timeout=30)
                if r.status_code == 202:
                    stats["accepted"] += len(batch)
                else:
                    stats["rejected"] += len(batch)
                    stats.setdefault("codes", {}).setdefault(str(r.status_code), 0)
                    stats["codes"][str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                stats["rejected"] += len(batch)
                stats["error"] = repr(exc)

    i = 0
    while time.time() * 1000 < start_ms:
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    deadline = t0 + seconds + 5
    while i < len(events) and time.monotonic() < deadline:
        now_ms = int(time.time() * 1000)
        j = i
        while j < len(events) and events[j]["ts"] <= now_ms:
            j += 1
        for k in range(i, j, 2000):
            task = asyncio.create_task(post(events[k:min(j, k + 2000)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i = j
        await asyncio.sleep(TICK_S)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    stats["offered"] = i
    stats["seconds"] = time.monotonic() - t0


async def probes(client: httpx.AsyncClient, ingest: str, api: str, metrics: list[str], token: str, seconds: float,
                 warmup_s: float) -> list[dict[str, Any]]:
    """One probe a second for `seconds`; one poller per endpoint notes when the probe count first reaches k.

    Probe k's delay is (first time the count >= k) - (probe k's 202). The pollers are shared, so polling
    costs the same however many probes are in flight; the metrics poller's delay is the midpoint between
    its last miss and its hit (it polls once a second).
    """
    await asyncio.sleep(warmup_s)
    headers = {"Authorization": f"Bearer {token}"}

    async def metrics_get() -> list[str]:
        """Every worker's family: the probe queue's figure is on the worker that owns its partition."""
        resps = await asyncio.gather(*(client.get(url, params={"name[]": METRICS_FAMILY}, timeout=30)
                                       for url in metrics))
        return [r.text for r in resps]

    def metrics_max(texts: list[str]) -> float:
        return max(metrics_arrivals(t) for t in texts)

    base_api = api_arrivals(await client.get(f"{api}/v1/queues/{PROBE_QUEUE}"))
    base_metrics = metrics_max(await metrics_get())
    recs: list[dict[str, Any]] = []
    reached: dict[str, dict[int, float]] = {"api_s": {}, "sse_s": {}, "metrics_s": {}}
    done = asyncio.Event()

    async def watch_stream() -> None:
        """Each views frame of the API's stream as it arrives (its first frame is the base)."""
        base: float | None = None
        seen = 0
        async with client.stream("GET", f"{api}/v1/stream", params={"queues": PROBE_QUEUE},
                                 timeout=httpx.Timeout(30, read=None)) as resp:
            event = ""
            async for line in resp.aiter_lines():
                if done.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "views":
                    n = stream_arrivals(orjson.loads(line[5:]))
                    if base is None:  # the first frame: the count before any probe (no view yet: none)
                        base = n or 0.0
                        ready.set()
                        continue
                    if n is None:
                        continue
                    at = time.monotonic()
                    for k in range(seen + 1, int(n - base) + 1):
                        reached["sse_s"][k] = at
                    seen = max(seen, int(n - base))

    ready = asyncio.Event()

    async def poll(name: str, get: Any, parse: Any, base: float, every: float) -> None:
        seen = 0
        missed = time.monotonic()
        while not done.is_set():
            asked = time.monotonic()
            try:
                n = int(parse(await get()) - base)
            except (httpx.HTTPError, KeyError, ValueError):
                n = seen
            at = (missed + asked) / 2 if every >= 0.1 else time.monotonic()
            for k in range(seen + 1, n + 1):
                reached[name][k] = at
            seen = max(seen, n)
            missed = asked
            await asyncio.sleep(every)

    pollers = [
        asyncio.create_task(poll("api_s", lambda: client.get(f"{api}/v1/queues/{PROBE_QUEUE}"), api_arrivals,
                                 base_api, POLL_S)),
        asyncio.create_task(poll("metrics_s", metrics_get, metrics_max, base_metrics, METRICS_POLL_S)),
        asyncio.create_task(watch_stream()),
    ]
    await asyncio.wait_for(ready.wait(), 30)  # the stream's base count is in before the first probe
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        cid = f"probe-{uuid.uuid4().hex[:12]}"
        ev = {"event_id": f"{cid}-001", "type": "conversation.opened", "ts": int(time.time() * 1000),
              "tenant": "bench", "shop_id": "bench-probe", "platform": "web", "conversation_id": cid,
              "queue": PROBE_QUEUE, "customer_id": "probe", "channel": "web"}
        t_sent = time.monotonic()
        r = await client.post(f"{ingest}/v1/events", json=ev, headers=headers, timeout=30)
        t202 = time.monotonic()
        rec: dict[str, Any] = {"ingest_s": t202 - t_sent, "status": r.status_code}
        if r.status_code == 202:
            sent += 1
            rec.update(k=sent, t202=t202)
        recs.append(rec)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_sent)))
    # The last probes get PROBE_TIMEOUT_S to show; later ones count as not seen in time.
    last = max((r["t202"] for r in recs if "t202" in r), default=time.monotonic())
    while time.monotonic() < last + PROBE_TIMEOUT_S and any(len(v) < sent for v in reached.values()):
        await asyncio.sleep(0.1)
    done.set()
    pollers[-1].cancel()  # the stream waits for its next frame
    await asyncio.gather(*pollers, return_exceptions=True)
    for rec in recs:
        if "k" in rec:
            for name, at in reached.items():
                t = at.get(rec["k"])
                rec[name] = t - rec["t202"] if t is not None and t - rec["t202"] <= PROBE_TIMEOUT_S else None
    return recs


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat's first line less idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def cpu_snapshot(cfg: Any, parts: list[str]) -> dict[str, float]:
    """CPU seconds so far of each part of the stack (the broker as "kafka"), this process (the load and the
    probes, "bench") and the machine."""
    from deploy.local.processes import running_pid

    out = {"bench": proc_cpu_s(os.getpid()), "machine": machine_busy_s()}
    for name in parts:
        pid = running_pid(cfg, name)
        if pid is not None:
            out[name] = proc_cpu_s(pid)
    return out


async def cores_during(cfg: Any, parts: list[str], seconds: float) -> dict[str, float | None]:
    """The cores each part used while the load ran (CPU seconds over wall seconds): where the machine's cores
    went, as a worker behind on a busy machine and one short of CPU of its own look the same from inside."""
    t0, c0 = time.monotonic(), cpu_snapshot(cfg, parts)
    await asyncio.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_snapshot(cfg, parts)
    return {k: rnd((c1[k] - v) / (t1 - t0), 3) for k, v in c0.items() if k in c1}


async def stage2_layout(client: httpx.AsyncClient, metrics: list[str]) -> list[dict[str, Any]]:
    """Per worker: the partials (stage 2) partitions it merges, from its `floorwatch_scorer_stage_lag` series, and
    whether it builds the probe queue's view. Stage 2 is keyed by queue name, so the worker holding the floor's
    queues does most of it; a run's freshness depends on what else it was given (PROFILE.md)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: list[dict[str, Any]] = []
    for url in metrics:
        text = (await client.get(url, params=[("name[]", "floorwatch_scorer_stage_lag"),
                                              ("name[]", METRICS_FAMILY)], timeout=30)).text
        parts = sorted(int(s.labels["partition"]) for family in text_string_to_metric_families(text)
                       for s in family.samples
                       if s.name == "floorwatch_scorer_stage_lag" and s.labels["stage"] == "queues")
        out.append({"queue_partitions": parts, "builds_probe_view": metrics_arrivals(text) > 0})
    return out


def timeline(recs: list[dict[str, Any]]) -> list[list[float | None]]:
    """Each probe as [seconds after the first probe's 202, API delay, SSE delay, /metrics delay] (None: not
    seen in time): whether slow probes come together (a stall of the workers) or spread (a steady backlog)."""
    sent = [r for r in recs if "t202" in r]
    t0 = sent[0]["t202"] if sent else 0.0
    return [[rnd(r["t202"] - t0, 2), *(rnd(r[k], 3) if r.get(k) is not None else None
                                      for k in ("api_s", "sse_s", "metrics_s"))] for r in sent]


def summarize(recs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    seen = [r[key] for r in recs if r.get(key) is not None]
    censored = sum(1 for r in recs if r.get("status") == 202 and r.get(key) is None)
    return {"probes": len(seen) + censored, "seen": len(seen),
            "censored_after_s": PROBE_TIMEOUT_S if censored else None, "censored": censored,
            "p50_s": rnd(pct(seen, 0.5), 3), "p99_s": rnd(pct(seen, 0.99), 3),
            "max_s": rnd(max(seen), 3) if seen else None}


async def one_rate(cfg: Any, env: dict[str, str], rate: float, seconds: float, pyspy_s: int = 0) -> dict[str, Any]:
    from deploy.local.processes import running_pid

    from .common import RESULTS
    from .profiling import analyze_raw, pyspy_path

    ingest, api = cfg.ingest_url, cfg.api_url
    metrics = [f"http://127.0.0.1:{port}/metrics" for port in cfg.scorer_ports]
    token = env.get("INGEST_TOKEN", "")
    stats: dict[str, Any] = {"accepted": 0, "rejected": 0}
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(limits=limits) as load_client, httpx.AsyncClient(limits=limits) as probe_client:
        counters0 = await scorer_counters(probe_client, metrics)
        n0 = sum(counters0.get("events_total", {}).values())
        t0 = time.monotonic()
        load = asyncio.create_task(offered_load(load_client, f"{ingest}/v1/events", token, rate, seconds, stats))
        parts = ["ingest", *(f"scorer-{i}" for i in range(cfg.scorer_workers)), "api", "kafka"]
        cores = asyncio.create_task(cores_during(cfg, parts, seconds))
        jobs = scorer_scrape_jobs(cfg)
        scrapes = asyncio.create_task(scrape_like_prometheus(metrics, jobs, seconds))
        recorder = None
        raw = RESULTS / f"pyspy_live_{int(rate)}.txt"
        pid = running_pid(cfg, "scorer-0")
        spy = pyspy_path()
        if pyspy_s and pid and spy:
            raw.unlink(missing_ok=True)
            recorder = await asyncio.create_subprocess_exec(
                spy, "record", "--pid", str(pid), "--duration", str(pyspy_s), "--rate", "200", "--idle",
                "--format", "raw", "--output", str(raw), "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        recs = await probes(probe_client, ingest, api, metrics, token, seconds - 10, warmup_s=5)
        await load
        cores_used = await cores
        scraped = await scrapes
        counters1 = await scorer_counters(probe_client, metrics)
        n1 = sum(counters1.get("events_total", {}).values())
        layout = await stage2_layout(probe_client, metrics)
        t1 = time.monotonic()
        scrape: list[float] = []
        size = 0
        for _ in range(5):
            t = time.monotonic()
            size = len((await probe_client.get(metrics[0], timeout=30)).content)
            scrape.append(time.monotonic() - t)
        if recorder is not None:
            await asyncio.wait_for(recorder.wait(), 60)
    profile = analyze_raw(raw) if recorder is not None and raw.exists() else None
    return {
        "worker_profile": profile,
        "cores_used": cores_used,
        "metrics_scrape_p50_s": rnd(pct(scrape, 0.5), 4), "metrics_scrape_bytes": size,
        # Scrapes of every worker while the load ran, as each of the stack's Prometheus jobs does.
        "prometheus_scrape_jobs": [
            {"query": job.query, "every_s": job.every_s, "scrapes": len(scraped[job.query][0]),
             "failed": scraped[job.query][1], "p50_s": rnd(pct(scraped[job.query][0], 0.5), 4)} for job in jobs],
        "offered_per_s": rate, "floor_scale": stats.get("scale"), "scorer_workers": cfg.scorer_workers,
        "ingest_accepted_per_s": rnd(stats["accepted"] / stats["seconds"]) if stats.get("seconds") else None,
        "ingest_rejected": stats["rejected"], "ingest_codes": stats.get("codes"), "ingest_error": stats.get("error"),
        "scorer_consumed_per_s": rnd((n1 - n0) / (t1 - t0)),
        "scorer_backlog_at_end": int(stats["accepted"] + len(recs) - (n1 - n0)),
        "api": summarize(recs, "api_s"), "sse": summarize(recs, "sse_s"), "metrics": summarize(recs, "metrics_s"),
        "probe_timeline": timeline(recs),
        "stage2_by_worker": layout,
        "records": per_event(counters0, counters1),
        # The share of a core each tick step took (the workers summed): the work that grows with the floor's size
        # (scopes, agents), not with its events.
        "tick_cores": {step: rnd((v - counters0.get("tick_s", {}).get(step, 0.0)) / (t1 - t0), 3)
                       for step, v in sorted(counters1.get("tick_s", {}).items())},
        "ingest_202_p50_s": rnd(pct([r["ingest_s"] for r in recs], 0.5), 4),
        "seconds": seconds,
    }


def run(b: Broker, *, rates: list[float], seconds: float, pyspy_s: int = 20,
        two_worker_rates: tuple[float, ...] = ()) -> dict[str, Any]:
    """Each rate on one worker (`by_rate`), and `two_worker_rates` again on SCORER_WORKERS=2 (`by_rate_2_workers`):
    scaling by partitions is the design, and the machine has two cores."""
    from deploy.local.config import ensure_dotenv, service_env
    from deploy.local.kafka import create_topics, topic_specs
    from deploy.local.service_parts import start_services
    from deploy.local.stack import down

    out: dict[str, Any] = {"probe_timeout_s": PROBE_TIMEOUT_S, "api_poll_interval_s": POLL_S,
                           "metrics_poll_interval_s": METRICS_POLL_S, "tick_s": 1.0, "partials_tick_s": 0.25,
                           "fast_views_s": 0.25,
                           "clock": "wall", "by_rate": {}, "by_rate_2_workers": {}}
    profiled = 1_000 if 1_000 in rates else (rates or [0])[0]  # the worker is profiled at one rate: the floor x61 one
    runs = [(1, rate) for rate in rates] + [(2, rate) for rate in two_worker_rates]
    for workers, rate in runs:
        # Fresh topics, consumer group, ingest, scorer and api per rate: no backlog is carried over.
        p = f"fresh{int(rate)}-{uuid.uuid4().hex[:4]}"
        names = {"TOPIC_EVENTS": "chat-events", "TOPIC_DEAD_LETTER": "dead-letter",
                 "TOPIC_AGENT_CHANGES": "agent-changes", "TOPIC_PARTIALS": "queue-partials",
                 "TOPIC_VIEWS": "queue-views", "TOPIC_ALERTS": "alerts"}
        cfg = dataclasses.replace(b.cfg, scorer_workers=workers,
                                  extra_env={**b.cfg.extra_env, "SCORER_APP_ID": f"{p}-scorer",
                                             **{k: f"{p}.{v}" for k, v in names.items()}})
        parts = ["ingest", *(f"scorer-{i}" for i in range(workers)), "api"]
        down(cfg, parts=parts)
        ensure_dotenv(cfg)
        create_topics(cfg, topic_specs(cfg, service_env(cfg)))
        start_services(cfg, quiet=True)
        env = service_env(cfg)
        log(f"freshness: {rate:,.0f} events/s offered for {seconds:.0f} s, {workers} scorer worker(s)")
        try:
            res = asyncio.run(one_rate(cfg, env, rate, seconds,
                                       pyspy_s if (workers, rate) == (1, profiled) else 0))
        finally:
            down(cfg, parts=parts)
        log(f"  { {k: v for k, v in res.items() if k not in ('worker_profile', 'probe_timeline')} }")
        out["by_rate" if workers == 1 else f"by_rate_{workers}_workers"][str(int(rate))] = res
    return out
