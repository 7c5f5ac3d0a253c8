"""An idle agent leaves through real Kafka and a real Faust worker (issue 16, item 1): the deletion is a
tombstone in the agents table's changelog (written on the tick, in the context of the partition's last
agent change), the agent's view leaves the views topic, and agents still online stay."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from deploy.local.testing import KafkaBroker
from services.core.events import state_key
from services.core.scope import Scope
from services.kafka_util.read import read_to_end

from .scorer_harness import ScorerRun, produce

T0 = 1_795_600_800_000
RETENTION_S = 3720  # the shortest allowed: the longest window plus the default grace
SHOP = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}


def status(n: str, ts: int, agent: str, st: str) -> dict[str, Any]:
    return {**SHOP, "event_id": n, "type": "agent.status", "ts": ts, "agent_id": agent, "status": st,
            "capacity": 2, "queues": ["presales"]}


def agent_views(views: dict[Scope, Any]) -> set[str]:
    return {k.queue for k in views if k.queue.startswith("@agent:")}


async def wait_for(run: ScorerRun, want: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    got: set[str] = set()
    while time.monotonic() < deadline:
        got = agent_views(await run.views())
        if got == want:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"agent views {sorted(got)}, expected {sorted(want)}")


async def test_an_idle_offline_agent_leaves_the_changelog_and_the_views_topic(kafka: KafkaBroker) -> None:
    name = f"evict-{uuid.uuid4().hex[:6]}"
    topic = f"{name}.chat-events"
    await kafka.acreate_topic(topic, 6)
    run = ScorerRun(kafka, name, topic, extra_env={"AGENT_RETENTION_S": str(RETENTION_S)})
    await run.create_topics()
    try:
        run.start_worker(0)
        await run.wait_healthy(0)
        await produce(kafka.bootstrap, topic, [status("s1", T0, "idle", "offline"), status("s2", T0, "on", "online")])
        await wait_for(run, {"@agent:idle", "@agent:on"})
        # Event clock: a later change anywhere moves the stage's clock past the retention.
        await produce(kafka.bootstrap, topic, [status("s3", T0 + 2 * 3_600_000, "late", "online")])
        await wait_for(run, {"@agent:on", "@agent:late"})
        assert await run.metric_sum("floorwatch_scorer_agents_evicted_total") == 1
        last: dict[bytes, bytes | None] = {}
        await read_to_end(kafka.bootstrap, f"{name}-scorer-agents-changelog", range(run.event_partitions),
                          lambda rec: last.__setitem__(rec.key, rec.value))
        assert last[state_key("acme", "idle").encode()] is None  # deleted through the changelogged table
        assert last[state_key("acme", "on").encode()] is not None
    finally:
        run.stop()
