"""A record the broker refuses as too large is that event's 422, against a real broker (issue 16).

The topic is created with `max.message.bytes=2048`, so an `agent.status` listing 64 random queue
names (about 8 KB, barely compressible) is refused by the broker itself, while small events sharing
its partition's record batch must still be written: ingest sends those again one by one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.test_ingest_kafka import AUTH, Ingest, serve, settings_for


@pytest.fixture
async def small_topic_ingest(kafka: Any) -> AsyncIterator[Ingest]:
    topic = f"ingestpoison-{uuid.uuid4().hex[:10]}.events"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1,
                                            topic_configs={"max.message.bytes": "2048"})])
    finally:
        await admin.close()
    async with serve(settings_for(kafka.bootstrap, topic, kafka_linger_ms=50)) as running:
        yield running


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"poison-{uuid.uuid4().hex}-{n}", "type": "message", "ts": int(time.time() * 1000),
            "tenant": "acme", "shop_id": "acme-jd", "platform": "jd", "conversation_id": f"c-{n}",
            "sender": "customer", **fields}


async def written(ingest: Ingest) -> list[bytes]:
    consumer = AIOKafkaConsumer(ingest.topic, bootstrap_servers=ingest.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, consumer_timeout_ms=2000)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [m.value for msgs in batches.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()


async def test_a_record_the_broker_refuses_is_a_422_and_its_batch_mates_are_written(
    small_topic_ingest: Ingest,
) -> None:
    big = event(2, type="agent.status", sender=None, conversation_id=None, agent_id="a-1", status="online",
                capacity=5, queues=[uuid.uuid4().hex * 3 + str(i) for i in range(64)])
    big = {k: v for k, v in big.items() if v is not None}
    batch = [event(1), big, event(3)]
    async with httpx.AsyncClient(base_url=small_topic_ingest.url, timeout=30) as client:
        for attempt in range(2):  # a retry gets the same answer, never a 503
            r = await client.post("/v1/events", json=batch, headers=AUTH)
            assert r.status_code == 422, r.text[:500]
            (err,) = r.json()["errors"]
            assert (err["index"], err["event_id"]) == (1, big["event_id"])
            assert r.json()["accepted" if attempt == 0 else "duplicates"] == 2
    values = await written(small_topic_ingest)
    assert sorted(v for v in values if b"poison-" in v) == sorted(v for v in values)
    assert len(values) == 2 and not any(b"agent.status" in v for v in values)
