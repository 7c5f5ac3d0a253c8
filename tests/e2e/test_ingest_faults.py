"""Invariant 2 (no silent loss) on the real stack while the Kafka broker goes away and comes back.

Clients post batches of new conversations (unique event_ids, one queue of their own) without
pause while the test stops the broker (SIGTERM, `stack.stop_part("kafka")`) and restarts it on
the same data dir a few seconds later. Every request must end as 202 (its events acknowledged
by Kafka) or as 503 / a timeout / a connection error; every non-202 is retried with the same
event_ids (exponential backoff, bounded) until it is a 202. Then:

* every posted event_id is on the chat-events topic (a record may be there twice: ingest does
  not use transactions, and a batch answered 503 may still be delivered later);
* the scorer counted each conversation once: the queue's figures at the API equal the figures
  worked out by hand from what was posted;
* ingest's /healthz and the scorer came back after the restart; how long each took goes to
  test-artifacts/ingest_faults.json.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local.config import topics_for
from deploy.local.processes import running_pid
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "ingest_faults.json"
TENANT, SHOP, PLATFORM = "e2e-faults", "e2e-faults-web", "web"

CLIENTS = 3  # concurrent posters
CONVERSATIONS_PER_BATCH = 5
BEFORE_STOP_S = 3.0  # traffic before the broker goes
# The broker stays down this much longer than ingest waits for an acknowledgement, so a request
# that arrives once it is gone must end as a 503 (shorter, and every request may simply be held
# until the broker is back and answered 202: nothing then shows the retry path was exercised).
DOWN_MARGIN_S = 3.0
AFTER_RECOVERY_S = 4.0  # traffic after ingest is healthy again
REQUEST_TIMEOUT_S = 20.0  # above ingest's INGEST_SEND_TIMEOUT_S (10 s): its 503 arrives first
RETRY_BUDGET_S = 180.0  # one batch may keep retrying this long before the test gives up
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 2.0
RECOVERY_BOUND_S = 90.0  # ingest and the scorer must be back within this (speed is reported, not judged)
SETTLE_TIMEOUT_S = 120.0
STEADY_TIMEOUT_S = 60.0  # the scorer must show the queue before the fault (a steady state to disturb)
# While the broker is away ingest may log a few lines a second (its own warning, aiokafka's retries);
# before the metadata backoff it wrote ~3,000 a second. Averaged over the outage:
MAX_INGEST_LOG_LINES_PER_S = 30.0
NOT_ACKED = {"503", "timeout", "connection"}

# What each conversation does; the expected figures follow from the kind.
ANSWERED, WAITING, ABANDONED = "answered", "waiting", "abandoned"
KINDS = (ANSWERED, WAITING, ABANDONED)
FRT_S = 5.0  # an answered conversation's first response time


def conversation(queue: str, cid: str, kind: str, now_ms: int) -> list[dict[str, Any]]:
    """A conversation whose events all lie in the past (so no window treats them as future)."""
    base = now_ms - 10_000
    common = {"tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, "conversation_id": cid}
    events: list[dict[str, Any]] = [
        {**common, "event_id": f"{cid}-1", "type": "conversation.opened", "ts": base, "queue": queue},
        {**common, "event_id": f"{cid}-2", "type": "message", "ts": base + 1000, "sender": "customer", "chars": 12},
    ]
    if kind == ANSWERED:
        events.append({**common, "event_id": f"{cid}-3", "type": "message", "ts": base + 1000 + int(FRT_S * 1000),
                       "sender": "agent", "agent_id": f"{queue}-agent", "chars": 30})
    elif kind == ABANDONED:
        events.append({**common, "event_id": f"{cid}-3", "type": "conversation.closed", "ts": base + 8000,
                       "reason": "abandoned"})
    return events


@dataclass
class Traffic:
    queue: str
    url: str
    headers: dict[str, str]
    kinds: dict[str, str] = field(default_factory=dict)  # conversation_id -> kind, once acknowledged
    event_ids: set[str] = field(default_factory=set)  # every event_id acknowledged
    outcomes: Counter[str] = field(default_factory=Counter)  # per request: "202", "503", "timeout", ...
    retried_batches: int = 0
    max_attempts: int = 0
    first_failure_at: float | None = None  # monotonic
    last_failure_at: float | None = None
    accepted_total: int = 0
    duplicates_total: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def new_batch(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        now_ms = int(time.time() * 1000)
        events: list[dict[str, Any]] = []
        kinds: dict[str, str] = {}
        for _ in range(CONVERSATIONS_PER_BATCH):
            n = next(self._ids)
            cid = f"{self.queue}-c{n}"
            kinds[cid] = KINDS[n % len(KINDS)]
            events += conversation(self.queue, cid, kinds[cid], now_ms)
        return events, kinds

    async def post_until_accepted(self, client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        """Post `batch` until a 202; the same body (so the same event_ids) on every attempt."""
        body = orjson.dumps(batch)
        deadline = time.monotonic() + RETRY_BUDGET_S
        delay = BACKOFF_FIRST_S
        for attempt in itertools.count(1):
            try:
                r = await client.post(self.url, content=body, headers=self.headers)
                outcome, detail = str(r.status_code), r.text[:300]
            except httpx.TimeoutException as exc:
                outcome, detail = "timeout", repr(exc)
            except httpx.TransportError as exc:  # refused, reset, closed mid-answer
                outcome, detail = "connection", repr(exc)
            self.outcomes[outcome] += 1
            if outcome == "202":
                answer = r.json()
                assert answer["accepted"] + answer["duplicates"] == len(batch), answer
                self.accepted_total += answer["accepted"]
                self.duplicates_total += answer["duplicates"]
                self.max_attempts = max(self.max_attempts, attempt)
                if attempt > 1:
                    self.retried_batches += 1
                return
            assert outcome in NOT_ACKED, f"request ended as {outcome}, not 202/503/timeout/connection: {detail}"
            now = time.monotonic()
            self.first_failure_at = self.first_failure_at or now
            self.last_failure_at = now
            assert now < deadline, f"batch still not accepted after {RETRY_BUDGET_S:.0f} s: last {outcome} {detail}"
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def poster(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
            while not stop.is_set():
                batch, kinds = self.new_batch()
                await self.post_until_accepted(client, batch)
                self.kinds.update(kinds)
                self.event_ids.update(e["event_id"] for e in batch)
                await asyncio.sleep(0.02)

    def expected(self) -> dict[str, int]:
        counts = Counter(self.kinds.values())
        return {
            "arrivals": len(self.kinds),
            "open": counts[ANSWERED] + counts[WAITING],
            "unanswered": counts[WAITING],
            "unassigned": counts[WAITING],
            "awaiting_reply": counts[WAITING],
            "frt_count": counts[ANSWERED],
            "abandoned": counts[ABANDONED],
        }


def figures(view: dict[str, Any]) -> dict[str, Any]:
    live, w = view["live"], view["windows"]["15m"]
    return {
        "arrivals": w["arrivals"],
        "open": live["open"],
        "unanswered": live["unanswered"],
        "unassigned": live["unassigned"],
        "awaiting_reply": live["awaiting_reply"],
        "frt_count": w["frt"]["count"],
        "abandoned": w["abandoned"],
    }


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series != name and not series.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url, timeout=2.0)).status_code == 200
    except httpx.HTTPError:
        return False


async def scorer_state(client: httpx.AsyncClient, metrics_urls: list[str]) -> tuple[bool, float]:
    """(every worker's /healthz is 200, newest views publish time over the workers)."""
    healthy, published = True, 0.0
    for url in metrics_urls:
        healthy = healthy and await ok(client, url.removesuffix("/metrics") + "/healthz")
        try:
            text = (await client.get(url, timeout=2.0)).text
        except httpx.HTTPError:
            healthy = False
            continue
        published = max(published, metric_sum(text, "floorwatch_scorer_views_published_timestamp_seconds"))
    return healthy, published


@dataclass
class Recovery:
    """Seconds from the restarted broker answering (start_part returned) to each service being back."""

    broker_down_s: float = 0.0  # stop_part called -> start_part returned
    broker_start_s: float = 0.0  # start_part called -> broker answers an admin request
    ingest_healthz_s: float | None = None  # -> ingest /healthz 200
    ingest_first_202_s: float | None = None  # -> a request of the traffic (new or retried) answered 202
    scorer_healthz_s: float | None = None  # -> every scorer worker's /healthz 200
    scorer_views_s: float | None = None  # -> a worker published views again
    probe_at_api_s: float | None = None  # -> a conversation posted after the restart is counted at the API
    baseline_probe_at_api_s: float | None = None  # the same, posted before the fault (for comparison)


async def probe_end_to_end(stack: Any, since_mono: float) -> float | None:
    """Post one new conversation (retrying until a 202); seconds from `since_mono` until the API counts
    it, or None if that takes over RECOVERY_BOUND_S."""
    probe = Traffic(f"e2e-faults-probe-{uuid.uuid4().hex[:8]}", f"{stack.ingest_url}/v1/events",
                    {"Authorization": f"Bearer {stack.ingest_token}", "Content-Type": "application/json"})
    now_ms = int(time.time() * 1000)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        await probe.post_until_accepted(client, conversation(probe.queue, f"{probe.queue}-c0", WAITING, now_ms))
        while time.monotonic() - since_mono < RECOVERY_BOUND_S:
            r = await client.get(f"{stack.api_url}/v1/queues/{probe.queue}")
            if r.status_code == 200 and r.json()["windows"]["15m"]["arrivals"] == 1:
                return time.monotonic() - since_mono
            await asyncio.sleep(0.1)
    return None


async def watch_recovery(stack: Any, traffic: Traffic, broker_up_mono: float, broker_up_wall: float,
                         rec: Recovery) -> None:
    """Poll until ingest and the scorer are back (or RECOVERY_BOUND_S passes)."""
    accepted_at_up = traffic.outcomes["202"]
    probe = asyncio.create_task(probe_end_to_end(stack, broker_up_mono))
    try:
        async with httpx.AsyncClient() as client:
            while time.monotonic() - broker_up_mono < RECOVERY_BOUND_S:
                since = time.monotonic() - broker_up_mono
                if rec.ingest_healthz_s is None and await ok(client, f"{stack.ingest_url}/healthz"):
                    rec.ingest_healthz_s = since
                if rec.ingest_first_202_s is None and traffic.outcomes["202"] > accepted_at_up:
                    rec.ingest_first_202_s = since
                healthy, published = await scorer_state(client, stack.scorer_metrics_urls)
                if rec.scorer_healthz_s is None and healthy:
                    rec.scorer_healthz_s = since
                if rec.scorer_views_s is None and published > broker_up_wall:
                    rec.scorer_views_s = since
                if None not in (rec.ingest_healthz_s, rec.ingest_first_202_s, rec.scorer_healthz_s,
                                rec.scorer_views_s) and probe.done():
                    break
                await asyncio.sleep(0.1)
    finally:
        if not probe.done():
            probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
    if not probe.cancelled():
        rec.probe_at_api_s = probe.result()  # a probe that failed (never accepted, say) fails the test here


def send_timeout_s(stack: Any) -> float:
    """How long the stack's ingest waits for Kafka before answering 503."""
    configured = stack.env.get("INGEST_SEND_TIMEOUT_S")
    return float(configured) if configured else IngestSettings().send_timeout_s


def ingest_log_lines(stack: Any) -> int:
    return len(stack.log("ingest").splitlines())


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_steady(stack: Any, queue: str) -> None:
    """Before the fault: every scorer worker healthy and the queue's figures at the API."""
    deadline = time.monotonic() + STEADY_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while True:
            healthy, _ = await scorer_state(client, stack.scorer_metrics_urls)
            shown = (await client.get(f"{stack.api_url}/v1/queues/{queue}")).status_code == 200
            if healthy and shown:
                return
            assert time.monotonic() < deadline, f"no steady state before the fault: scorer healthy {healthy}, " \
                f"queue shown {shown}"
            await asyncio.sleep(0.25)


async def read_topic(bootstrap: str, topic: str, partitions: int, prefix: str) -> Counter[str]:
    """event_id -> how many records carry it, over the whole topic up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + 60
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "could not read the topic to its end within 60 s"
            batches = await consumer.getmany(*parts, timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for rec in records:
                    if rec.value is None or prefix.encode() not in rec.value:
                        continue
                    seen[orjson.loads(rec.value)["event_id"]] += 1
    finally:
        await consumer.stop()
    return seen


async def wait_for_figures(client: httpx.AsyncClient, api: str, queue: str, want: dict[str, int]) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await client.get(f"{api}/v1/queues/{queue}")
        if r.status_code == 200:
            got = figures(r.json())
            if got == want:
                return got
        await asyncio.sleep(0.5)
    assert got == want, f"queue figures never matched what was posted: got {got}, want {want}"
    return got


async def test_broker_restart_loses_nothing_acknowledged(stack: Any) -> None:
    queue = f"e2e-faults-{uuid.uuid4().hex[:8]}"
    traffic = Traffic(queue, f"{stack.ingest_url}/v1/events", {
        "Authorization": f"Bearer {stack.ingest_token}", "Content-Type": "application/json"})
    rec = Recovery()
    stop = asyncio.Event()
    posters = [asyncio.create_task(traffic.poster(stop), name=f"poster-{i}") for i in range(CLIENTS)]
    try:
        await asyncio.sleep(BEFORE_STOP_S)
        await wait_steady(stack, queue)
        rec.baseline_probe_at_api_s = await probe_end_to_end(stack, time.monotonic())
        assert traffic.outcomes["202"] > 0, f"no batch accepted before the fault: {traffic.outcomes}"
        posted_before_stop = len(traffic.kinds)

        ingest_pid = running_pid(stack.cfg, "ingest")
        assert ingest_pid is not None
        log_lines, cpu_s = ingest_log_lines(stack), process_cpu_s(ingest_pid)
        stopping = time.monotonic()
        await asyncio.to_thread(stack.stop_part, "kafka")
        await asyncio.sleep(send_timeout_s(stack) + DOWN_MARGIN_S)
        starting = time.monotonic()
        await asyncio.to_thread(stack.start_part, "kafka")
        broker_up_mono, broker_up_wall = time.monotonic(), time.time()
        rec.broker_down_s = broker_up_mono - stopping
        rec.broker_start_s = broker_up_mono - starting
        outage = {
            "ingest_log_lines": ingest_log_lines(stack) - log_lines,
            "ingest_cpu_s": round(process_cpu_s(ingest_pid) - cpu_s, 2),
        }
        await watch_recovery(stack, traffic, broker_up_mono, broker_up_wall, rec)
        await asyncio.sleep(AFTER_RECOVERY_S)
    finally:
        stop.set()
        results = await asyncio.gather(*posters, return_exceptions=True)  # each finishes its retries first
    for result in results:
        if isinstance(result, BaseException):
            raise result

    report = {
        "queue": queue,
        "conversations": len(traffic.kinds),
        "conversations_before_stop": posted_before_stop,
        "events": len(traffic.event_ids),
        "requests": dict(traffic.outcomes),
        "retried_batches": traffic.retried_batches,
        "max_attempts_for_one_batch": traffic.max_attempts,
        "accepted_total": traffic.accepted_total,
        "duplicates_total": traffic.duplicates_total,
        "recovery_s": {k: None if v is None else round(v, 2) for k, v in vars(rec).items()},
        "while_broker_down": outage,
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\ningest faults: {json.dumps(report)}")

    # The fault was real: some requests were refused or failed, and every one was retried to a 202.
    assert sum(traffic.outcomes[o] for o in NOT_ACKED) > 0, f"no request failed while Kafka was down: {report}"
    assert set(traffic.outcomes) <= NOT_ACKED | {"202"}, report
    assert outage["ingest_log_lines"] <= MAX_INGEST_LOG_LINES_PER_S * rec.broker_down_s, (
        f"ingest flooded its log while the broker was away: {outage}")
    for what in ("ingest_healthz_s", "ingest_first_202_s", "scorer_healthz_s", "scorer_views_s", "probe_at_api_s"):
        assert getattr(rec, what) is not None, f"{what}: not recovered {RECOVERY_BOUND_S:.0f} s after restart"

    # Nothing acknowledged is missing from Kafka (a record may be there more than once).
    topic = topics_for(stack.env).events
    on_topic = await read_topic(stack.kafka_bootstrap, topic, stack.cfg.event_partitions, queue)
    missing = traffic.event_ids - set(on_topic)
    assert not missing, f"{len(missing)} acknowledged events are not on {topic}, e.g. {sorted(missing)[:5]}"
    report["records_on_topic"] = sum(on_topic.values())
    report["event_ids_on_topic_twice_or_more"] = sum(1 for n in on_topic.values() if n > 1)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n")

    # ... and the scorer counted each conversation once: the figures match the hand count.
    async with httpx.AsyncClient(timeout=10) as client:
        got = await wait_for_figures(client, stack.api_url, queue, traffic.expected())
        view = (await client.get(f"{stack.api_url}/v1/queues/{queue}")).json()
    assert got["arrivals"] == len(traffic.kinds)
    assert view["windows"]["15m"]["frt"]["mean_s"] == pytest.approx(FRT_S)
    assert view["windows"]["15m"]["frt"]["max_s"] == pytest.approx(FRT_S)


def test_conversation_kinds_are_contract_events() -> None:
    from services.core.events import parse_event

    for kind in KINDS:
        for obj in conversation("q", f"q-{kind}", kind, 1_795_000_000_000):
            parse_event(obj)
