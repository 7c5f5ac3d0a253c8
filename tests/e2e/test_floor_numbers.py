"""End to end on the real stack: scripted conversations in through ingest, hand-computed numbers
out at the API and at the scorer's /metrics; duplicates, through ingest and straight into Kafka,
change nothing.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.core.config import Topics
from services.core.events import parse_event

pytestmark = pytest.mark.stack

TENANT, SHOP, PLATFORM = "e2e", "e2e-jd", "jd"


def script(queue: str, base: int) -> list[dict[str, Any]]:
    """Seven conversations; the expected figures below are worked out by hand from these."""
    out: list[dict[str, Any]] = []

    def ev(cid: str, n: int, etype: str, at_s: float, **extra: Any) -> None:
        out.append({
            "event_id": f"{queue}-{cid}-{n}", "type": etype, "ts": base + int(at_s * 1000),
            "tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, **extra,
        })

    agent = {"tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, "type": "agent.status"}
    out.append({**agent, "event_id": f"{queue}-a1", "ts": base, "agent_id": f"{queue}-a1", "status": "online",
                "capacity": 3, "queues": [queue]})
    out.append({**agent, "event_id": f"{queue}-a2", "ts": base, "agent_id": f"{queue}-a2", "status": "online",
                "capacity": 2, "queues": [queue]})
    a1, a2 = f"{queue}-a1", f"{queue}-a2"
    # c1: EVENTS.md's example: FRT 17.5 s; then a second wait of 10 s.
    ev("c1", 1, "conversation.opened", 0, conversation_id="c1" + queue, queue=queue)
    ev("c1", 2, "message", 1.5, conversation_id="c1" + queue, sender="customer", chars=18)
    ev("c1", 3, "conversation.assigned", 4, conversation_id="c1" + queue, agent_id=a1)
    ev("c1", 4, "message", 19, conversation_id="c1" + queue, sender="agent", agent_id=a1)
    ev("c1", 5, "message", 30, conversation_id="c1" + queue, sender="customer")
    ev("c1", 6, "message", 40, conversation_id="c1" + queue, sender="agent", agent_id=a1)
    # c2: answered after 45 s by a1 without an explicit assignment.
    ev("c2", 1, "conversation.opened", 10, conversation_id="c2" + queue, queue=queue)
    ev("c2", 2, "message", 10, conversation_id="c2" + queue, sender="customer")
    ev("c2", 3, "message", 55, conversation_id="c2" + queue, sender="agent", agent_id=a1)
    # c3: two customer messages, never answered: waits since 20 s.
    ev("c3", 1, "conversation.opened", 20, conversation_id="c3" + queue, queue=queue)
    ev("c3", 2, "message", 20, conversation_id="c3" + queue, sender="customer")
    ev("c3", 3, "message", 25, conversation_id="c3" + queue, sender="customer")
    # c4: abandoned.
    ev("c4", 1, "conversation.opened", 30, conversation_id="c4" + queue, queue=queue)
    ev("c4", 2, "message", 31, conversation_id="c4" + queue, sender="customer")
    ev("c4", 3, "conversation.closed", 100, conversation_id="c4" + queue, reason="abandoned")
    # c5: answered after 159 s: a slow reply, outside the 30 s but inside the 180 s service level.
    ev("c5", 1, "conversation.opened", 40, conversation_id="c5" + queue, queue=queue)
    ev("c5", 2, "message", 41, conversation_id="c5" + queue, sender="customer")
    ev("c5", 3, "message", 200, conversation_id="c5" + queue, sender="agent", agent_id=a2)
    # c6: a bot serves first; the wait for a human starts at the handoff (60 s): FRT 10 s.
    ev("c6", 1, "conversation.opened", 50, conversation_id="c6" + queue, queue=queue)
    ev("c6", 2, "message", 50, conversation_id="c6" + queue, sender="customer")
    ev("c6", 3, "message", 52, conversation_id="c6" + queue, sender="bot")
    ev("c6", 4, "conversation.handoff", 60, conversation_id="c6" + queue)
    ev("c6", 5, "message", 70, conversation_id="c6" + queue, sender="agent", agent_id=a2)
    # c7: answered in 3 s, then the buyer writes again at 120 s and waits.
    ev("c7", 1, "conversation.opened", 60, conversation_id="c7" + queue, queue=queue)
    ev("c7", 2, "message", 61, conversation_id="c7" + queue, sender="customer")
    ev("c7", 3, "message", 64, conversation_id="c7" + queue, sender="agent", agent_id=a1)
    ev("c7", 4, "message", 120, conversation_id="c7" + queue, sender="customer")
    return out


FRT = [17.5, 45, 159, 10, 3]
REPLY = [17.5, 10, 45, 159, 10, 3]


def check_view(view: dict[str, Any], base: int) -> None:
    as_of = datetime.fromisoformat(view["as_of"].replace("Z", "+00:00")).timestamp() * 1000
    live = view["live"]
    assert live["open"] == 6
    assert live["unanswered"] == 1 and live["unassigned"] == 1
    assert live["awaiting_reply"] == 2
    assert live["oldest_wait_s"] == pytest.approx((as_of - (base + 20_000)) / 1000, abs=0.002)
    assert live["agents_online"] == 2
    assert live["agents_available"] == 0  # a1 has 3 of 3 chats (c1, c2, c7), a2 has 2 of 2 (c5, c6)
    assert live["slots_capacity"] == 5 and live["slots_active"] == 5
    assert live["slot_utilization"] == pytest.approx(1.0)
    w = view["windows"]["15m"]
    assert w["arrivals"] == 7
    assert w["frt"]["count"] == 5
    assert w["frt"]["mean_s"] == pytest.approx(sum(FRT) / 5)
    assert w["frt"]["p50_s"] == pytest.approx(17.5, rel=0.02)  # nearest rank 3 of [3, 10, 17.5, 45, 159]
    assert w["frt"]["p90_s"] == pytest.approx(159, rel=0.02)
    assert w["frt"]["max_s"] == pytest.approx(159)
    assert w["reply"]["count"] == 6
    assert w["reply"]["mean_s"] == pytest.approx(sum(REPLY) / 6)
    assert w["reply"]["slow"] == 1
    assert w["sl"]["30"] == pytest.approx(3 / 6)  # c1, c6, c7 within 30 s of 6 that left (5 answered + 1 abandoned)
    assert w["sl"]["180"] == pytest.approx(5 / 6)
    assert w["abandoned"] == 1
    assert w["abandon_rate"] == pytest.approx(1 / 6)


async def wait_for_view(
    client: httpx.AsyncClient, api: str, queue: str, base: int, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        r = await client.get(f"{api}/v1/queues/{queue}")
        if r.status_code == 200:
            last = r.json()
            try:
                check_view(last, base)
                return last  # type: ignore[no-any-return]
            except AssertionError:
                pass
        await asyncio.sleep(0.5)
    check_view(last, base)  # fails with the last difference
    raise AssertionError("unreachable")


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            got = series[len(name) + 1 : -1]
            if ",".join(sorted(got.split(","))) == want:
                return float(value)
    return None


async def test_scripted_floor_numbers_at_api_and_metrics(stack: Any) -> None:
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    base = int(time.time() * 1000) - 240_000
    events = script(queue, base)
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{stack.ingest_url}/v1/events", json=events, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": len(events), "duplicates": 0}

        view = await wait_for_view(client, stack.api_url, queue, base)
        assert view["scope"] == {"tenant": "*", "shop_id": "*", "platform": "*"}
        by_shop = (await client.get(f"{stack.api_url}/v1/queues/{queue}", params={"shop_id": SHOP})).json()
        check_view(by_shop, base)
        listed = (await client.get(f"{stack.api_url}/v1/queues", params={"platform": PLATFORM})).json()
        assert queue in {v["queue"] for v in listed["queues"]}

        text = (await client.get(stack.scorer_metrics_url)).text
        total = {"queue": queue, "tenant": "*", "shop": "*", "platform": "*"}
        assert metric(text, "floorwatch_queue_unanswered", **total) == 1
        assert metric(text, "floorwatch_queue_awaiting_reply", **total) == 2
        assert metric(text, "floorwatch_queue_frt_seconds", **total, window="15m", stat="mean") == pytest.approx(46.9)
        assert metric(text, "floorwatch_queue_service_level_ratio", **total, window="15m", threshold_s="30") == 0.5
        assert metric(text, "floorwatch_queue_arrivals", **total, window="15m") == 7
        # Null is absent, never 0: nothing waited in this queue's shop on another platform.
        assert metric(text, "floorwatch_queue_unanswered", queue=queue, tenant="*", shop="*", platform="pdd") is None


async def test_duplicates_change_nothing(stack: Any) -> None:
    queue = f"e2e-dup-{uuid.uuid4().hex[:8]}"
    base = int(time.time() * 1000) - 240_000
    events = script(queue, base)
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{stack.ingest_url}/v1/events", json=events, headers=headers)
        assert r.status_code == 202, r.text
        await wait_for_view(client, stack.api_url, queue, base)

        # A retry through ingest: recognised there, nothing re-sent.
        r = await client.post(f"{stack.ingest_url}/v1/events", json=events, headers=headers)
        assert r.status_code == 202 and r.json() == {"accepted": 0, "duplicates": len(events)}

        # Duplicates that get past ingest (a restarted ingest forgets): the scorer drops them by event_id.
        before = await scorer_count(client, stack.scorer_metrics_url, "duplicate")
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for obj in events + events[::3]:
                ev = parse_event(obj)
                await producer.send(Topics().events, key=ev.key.encode(), value=ev.to_json())
            await producer.flush()
        finally:
            await producer.stop()
        deadline = time.monotonic() + 60
        while await scorer_count(client, stack.scorer_metrics_url, "duplicate") < before + len(events) - 2:
            assert time.monotonic() < deadline, "the scorer never saw the duplicates"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.5)  # two ticks after the duplicates were consumed
        view = (await client.get(f"{stack.api_url}/v1/queues/{queue}")).json()
        check_view(view, base)


async def scorer_count(client: httpx.AsyncClient, url: str, result: str) -> float:
    text = (await client.get(url)).text
    return metric(text, "floorwatch_scorer_events_total", result=result) or 0.0


def test_script_is_valid_contract() -> None:
    for obj in script("q", 1_795_000_000_000):
        parse_event(obj)
    assert orjson.dumps(script("q", 1_795_000_000_000))  # serialisable as sent


async def test_oldest_wait_alert_fires_and_is_acknowledged(stack: Any) -> None:
    """c3 has waited over 3 minutes: a critical oldest_wait alert, once, with its context. The queue is in one
    shop, so the queue across shops is the same buyers: the one alert is the shop's (one condition, one page)."""
    queue = f"e2e-alert-{uuid.uuid4().hex[:8]}"
    base = int(time.time() * 1000) - 240_000
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{stack.ingest_url}/v1/events", json=script(queue, base), headers=headers)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            firing = (await client.get(f"{stack.api_url}/v1/alerts", params={"state": "firing"})).json()["alerts"]
            mine = [a for a in firing if a["queue"] == queue and a["rule"] == "oldest_wait"]
            if mine and mine[0]["severity"] == "critical":  # a first tick may see the warning level first
                break
            await asyncio.sleep(0.5)
        assert len(mine) == 1, mine
        alert = mine[0]
        assert alert["shop_id"] == SHOP
        assert alert["severity"] == "critical" and alert["threshold"] == 180
        assert alert["value"] >= 180 and "180" in alert["summary_en"] and alert["summary_zh"]
        assert alert["time_to_breach_s"] == 0  # JD's 30 s reply rule is already broken

        ack_url = f"{stack.api_url}/v1/alerts/{alert['id']}/ack"
        assert (await client.post(ack_url, json={"by": "lead"})).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post(ack_url, json={"by": "lead"}, headers=wrong)).status_code == 401
        good = {"Authorization": f"Bearer {stack.api_token}"}
        r = await client.post(ack_url, json={"by": "lead"}, headers=good)
        assert r.status_code == 202 and r.json()["acknowledged_by"] == "lead"
        deadline = time.monotonic() + 30
        while (got := (await client.get(f"{stack.api_url}/v1/alerts/{alert['id']}")).json()).get(
            "acknowledged_by"
        ) != "lead":
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.5)
        assert got["acknowledged_at"]
        # A scorer killed and restarted continues the same episode: the alert is still firing, under the same
        # id, and no second one was sent (the engine's state committed with the alerts it produced).
        await asyncio.to_thread(stack.stop_part, "scorer-0", signal.SIGKILL)
        await asyncio.to_thread(stack.start_part, "scorer-0")
        deadline = time.monotonic() + 90
        while True:  # the restarted worker publishes the queue's views again
            view = (await client.get(f"{stack.api_url}/v1/queues/{queue}")).json()
            if view["as_of"] > got["acknowledged_at"]:
                break
            assert time.monotonic() < deadline, "views did not come back after the restart"
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # a few ticks of the restarted engine
        everything = (await client.get(f"{stack.api_url}/v1/alerts", params={"state": "all"})).json()["alerts"]
        same = [a for a in everything if a["queue"] == queue and a["rule"] == "oldest_wait"]
        assert [(a["id"], a["state"]) for a in same] == [(alert["id"], "firing")]
        assert same[0]["acknowledged_by"] == "lead"
