"""End to end: order and lateness never change a number (METRICS.md), through ingest and real Kafka.

The same floor is posted twice at the same event times, on two disjoint queue sets of one shop: once in event
order, once shuffled, cut in three retries 2-5 minutes late while other traffic (the simulator, and bursts of
fresh conversations on every partition) moves the watermark on, with retried duplicates. Both floors' views,
read from one API snapshot at the same `as_of`, must be identical in every field but `queue` and `as_of`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from services.core.scope import Scope
from tests.unit.test_fresh_reference import diff_tree

pytestmark = pytest.mark.stack

TENANT, SHOP, PLATFORM = "e2e-order", "e2e-order-jd", "jd"


def floor(tag: str, base: int) -> list[dict[str, Any]]:
    """Ten conversations and three agents (capacities 2, 3, 3) over three minutes of event time, on queues
    `pre-{tag}` and `after-{tag}`: answered, re-waiting, abandoned, handed off by a bot, transferred after an
    order, implicitly opened, rated after the close, still waiting."""
    pre, after = f"pre-{tag}", f"after-{tag}"
    out: list[dict[str, Any]] = []

    def ev(cid: str, n: int, etype: str, at_s: float, **extra: Any) -> None:
        out.append({"event_id": f"{tag}-{cid}-{n}", "type": etype, "ts": base + int(at_s * 1000), "tenant": TENANT,
                    "shop_id": SHOP, "platform": PLATFORM, "conversation_id": f"{tag}-{cid}", **extra})

    agents = [(f"{tag}-a1", 2), (f"{tag}-a2", 3), (f"{tag}-a3", 3)]
    for n, (agent, capacity) in enumerate(agents):
        for k, (at_s, state) in enumerate([(0, "online"), (60 + 20 * n, "busy"), (120, "online"),
                                           (150 + n, "away" if n == 2 else "online")]):
            out.append({"event_id": f"{tag}-st{n}{k}", "type": "agent.status", "ts": base + at_s * 1000,
                        "tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, "agent_id": agent, "status": state,
                        "capacity": capacity, "queues": [pre, after]})
    a1, a2, a3 = (a for a, _ in agents)
    ev("c1", 1, "conversation.opened", 0, queue=pre)
    ev("c1", 2, "message", 1.5, sender="customer")
    ev("c1", 3, "conversation.assigned", 4, agent_id=a1)
    ev("c1", 4, "message", 19, sender="agent", agent_id=a1)
    ev("c1", 5, "message", 30, sender="customer")
    ev("c1", 6, "message", 40, sender="agent", agent_id=a1)
    ev("c1", 7, "conversation.closed", 90, reason="resolved")
    ev("c1", 8, "csat.rated", 100, score=5)
    ev("c2", 1, "conversation.opened", 10, queue=pre)
    ev("c2", 2, "message", 11, sender="customer")
    ev("c2", 3, "conversation.closed", 70, reason="abandoned")
    ev("c3", 1, "conversation.opened", 20, queue=pre)
    ev("c3", 2, "message", 20, sender="customer")
    ev("c3", 3, "message", 22, sender="bot")
    ev("c3", 4, "conversation.handoff", 50)
    ev("c3", 5, "conversation.assigned", 55, agent_id=a2)
    ev("c3", 6, "message", 62, sender="agent", agent_id=a2)
    ev("c4", 1, "conversation.opened", 30, queue=pre)
    ev("c4", 2, "message", 31, sender="customer")
    ev("c4", 3, "message", 45, sender="agent", agent_id=a1)
    ev("c4", 4, "order.placed", 80, amount="99.00", currency="CNY")
    ev("c4", 5, "conversation.transferred", 85, to_queue=after, to_agent_id=a3)
    ev("c4", 6, "message", 95, sender="customer")
    ev("c4", 7, "message", 130, sender="agent", agent_id=a3)
    ev("c4", 8, "conversation.closed", 170, reason="resolved")
    ev("c5", 1, "message", 40, sender="customer", queue=after)  # implicitly opened
    ev("c5", 2, "message", 41, sender="customer")
    ev("c5", 3, "message", 150, sender="agent", agent_id=a2)  # slow reply, no assignment event
    ev("c6", 1, "conversation.opened", 60, queue=after)
    ev("c6", 2, "message", 61, sender="customer")
    ev("c6", 3, "conversation.closed", 75, reason="bot_resolved")
    ev("c7", 1, "conversation.opened", 100, queue=pre)
    ev("c7", 2, "message", 101, sender="customer")
    ev("c7", 3, "message", 103, sender="agent", agent_id=a3)
    ev("c7", 4, "message", 160, sender="customer")  # waits again
    ev("c8", 1, "conversation.opened", 120, queue=pre)
    ev("c8", 2, "message", 121, sender="customer")  # still waiting
    ev("c9", 1, "conversation.opened", 130, queue=after)
    ev("c9", 2, "message", 131, sender="customer")
    ev("c9", 3, "conversation.assigned", 140, agent_id=a1)
    ev("c9", 4, "conversation.closed", 175, reason="timeout")
    ev("c10", 1, "conversation.opened", 140, queue=pre)
    ev("c10", 2, "message", 140, sender="customer")
    ev("c10", 3, "message", 141, sender="agent", agent_id=a2)
    ev("c10", 4, "order.placed", 179, amount="10.00", currency="CNY")
    return out


def other_traffic(n: int) -> list[dict[str, Any]]:
    """Fresh conversations, now, on many keys (so on every partition): the watermark moves on everywhere."""
    now = int(time.time() * 1000)
    tag = uuid.uuid4().hex[:8]
    return [{"event_id": f"other-{tag}-{i}", "type": "conversation.opened", "ts": now, "tenant": "e2e-other",
             "shop_id": "e2e-other-s", "platform": "web", "conversation_id": f"other-{tag}-{i}", "queue": "other"}
            for i in range(n)]


async def post(client: httpx.AsyncClient, url: str, token: str, events: Sequence[dict[str, Any]]) -> None:
    r = await client.post(f"{url}/v1/events", json=list(events), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text


def view_pairs(snapshot: dict[str, Any], tags: tuple[str, str]) -> dict[str, tuple[Any, Any]]:
    """(in order, shuffled) views of the same floor queue and scope, from one /v1/queues answer."""
    by_key = {Scope(v["scope"]["tenant"], v["scope"]["shop_id"], v["scope"]["platform"], v["queue"]): v
              for v in snapshot["queues"]}
    pairs: dict[str, tuple[Any, Any]] = {}
    for key, v in by_key.items():
        if key.queue.endswith(f"-{tags[0]}"):
            twin = key._replace(queue=key.queue[: -len(tags[0])] + tags[1])
            pairs[f"{key.queue[: -len(tags[0]) - 1]} {(key.tenant, key.shop_id, key.platform)}"] = (v, by_key.get(twin))
    return pairs


def differences(pairs: dict[str, tuple[Any, Any]]) -> list[str]:
    out: list[str] = []
    for name, (ordered, shuffled) in sorted(pairs.items()):
        if shuffled is None:
            out.append(f"{name}: no view of the shuffled floor")
            continue
        diff_tree(name, {k: v for k, v in shuffled.items() if k != "queue"},
                  {k: v for k, v in ordered.items() if k != "queue"}, out, ("shuffled", "in order"))
    return out


async def test_a_floor_shuffled_and_minutes_late_gives_the_views_of_the_floor_in_order(stack: Any) -> None:
    run = uuid.uuid4().hex[:6]
    tags = (f"o{run}", f"s{run}")
    base = int(time.time() * 1000) - 300_000  # the floor spans 0-180 s: posted 2-5 minutes late
    in_order = sorted(floor(tags[0], base), key=lambda e: (e["ts"], e["event_id"]))
    shuffled = floor(tags[1], base)
    rnd = random.Random(run)
    rnd.shuffle(shuffled)
    retries = rnd.sample(shuffled, k=len(shuffled) // 4)
    thirds = [shuffled[i::3] for i in range(3)]

    simulator = subprocess.Popen(
        [sys.executable, "-m", "services.simulator", "--ingest", stack.ingest_url, "--realtime", "--base-rate", "1",
         "--seed", "11"],
        env={**os.environ, "INGEST_TOKEN": stack.ingest_token}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await post(client, stack.ingest_url, stack.ingest_token, in_order)
            for part in thirds:
                await post(client, stack.ingest_url, stack.ingest_token, other_traffic(60))
                await post(client, stack.ingest_url, stack.ingest_token, part)
            await post(client, stack.ingest_url, stack.ingest_token, other_traffic(60))
            await post(client, stack.ingest_url, stack.ingest_token, retries)  # duplicates: change nothing

            # Wait until both floors' views agree in two snapshots some seconds apart. A view is republished
            # only when it changes, and the API may read a tick half published, so agreement is awaited rather
            # than demanded at one as_of; a floor that lands differently never agrees.
            deadline = time.monotonic() + 180
            agreed_since: float | None = None
            last = ["no view of the floors yet"]
            while time.monotonic() < deadline:
                snapshot = (await client.get(f"{stack.api_url}/v1/queues", params={"tenant": TENANT})).json()
                pairs = view_pairs(snapshot, tags)
                last = differences(pairs) if len(pairs) >= 2 else ["the floors' queues are not all published yet"]
                if last:
                    agreed_since = None
                elif agreed_since is None:
                    agreed_since = time.monotonic()
                elif time.monotonic() - agreed_since >= 3:
                    return
                await asyncio.sleep(0.5)
            raise AssertionError("the floors' views never agreed:\n" + "\n".join(last[:40]))
    finally:
        simulator.send_signal(signal.SIGINT)
        try:
            simulator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            simulator.kill()
            simulator.wait()
