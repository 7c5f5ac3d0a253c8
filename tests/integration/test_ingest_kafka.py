"""Ingest against a real Kafka broker, over real HTTP (uvicorn on a free port).

Uses the session fixture `kafka` (tests/conftest.py): `.bootstrap` and `.acreate_topic(name,
partitions)` (or `.create_topic`). Each test makes its own uniquely named topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.produce import ProduceRequest

from services.core.config import KafkaSettings
from services.core.events import parse_event, state_key
from services.ingest.app import create_app
from services.ingest.producer import KafkaEventProducer
from services.ingest.settings import IngestSettings

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PARTITIONS = 3


@dataclass
class Ingest:
    url: str
    app: Any
    topic: str
    bootstrap: str

    @property
    def producer(self) -> KafkaEventProducer:
        producer = self.app.state.producer
        assert isinstance(producer, KafkaEventProducer)
        return producer


async def create_topic(kafka: Any, name: str, partitions: int) -> None:
    acreate = getattr(kafka, "acreate_topic", None)
    if acreate is not None:
        await acreate(name, partitions)
        return
    result = kafka.create_topic(name, partitions)
    if inspect.isawaitable(result):
        await result


def settings_for(bootstrap: str, topic: str, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "token": TOKEN,
        "allow_unauthenticated": False,
        "max_future_s": 300.0,
        "max_past_s": 7 * 86_400.0,
        "send_timeout_s": 10.0,
        "health_cache_s": 0.2,
        "kafka": KafkaSettings(bootstrap=bootstrap),
        "topic": topic,
    }
    values.update(overrides)
    return IngestSettings(**values)


@contextlib.asynccontextmanager
async def serve(settings: IngestSettings, *, wait_healthy: bool = True) -> AsyncIterator[Ingest]:
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        ingest = Ingest(f"http://127.0.0.1:{port}", app, settings.topic, settings.kafka.bootstrap)
        if wait_healthy:
            async with httpx.AsyncClient(base_url=ingest.url) as client:
                deadline = time.monotonic() + 30
                while (await client.get("/healthz")).status_code != 200:
                    assert time.monotonic() < deadline, "ingest never became healthy"
                    await asyncio.sleep(0.1)
        yield ingest
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def ingest(kafka: Any) -> AsyncIterator[Ingest]:
    topic = f"ingesttest-{uuid.uuid4().hex[:10]}.events"
    await create_topic(kafka, topic, PARTITIONS)
    async with serve(settings_for(kafka.bootstrap, topic)) as running:
        yield running


def make_events(n: int, conversations: int = 20) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append(
            {
                "event_id": f"it-{uuid.uuid4().hex}",
                "type": "message",
                "ts": now_ms - (n - i),
                "tenant": "acme",
                "shop_id": "acme-jd",
                "platform": "jd",
                "conversation_id": f"conv-{i % conversations}",
                "sender": "customer",
                "chars": i,
            }
        )
    return out


async def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        offsets = await consumer.end_offsets(tps)
        return sum(offsets.values())
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def count_produce_requests(producer: KafkaEventProducer) -> Callable[[], int]:
    """Wrap the aiokafka client's send() to count ProduceRequests going to the broker."""
    kafka = producer.kafka
    assert kafka is not None
    client = kafka.client
    original: Callable[..., Awaitable[Any]] = client.send
    count = 0

    async def counting_send(node_id: Any, request: Any, **kw: Any) -> Any:
        nonlocal count
        if isinstance(request, ProduceRequest):
            count += 1
        return await original(node_id, request, **kw)

    client.send = counting_send
    return lambda: count


async def test_202_only_after_records_are_durable_with_keys_and_values(ingest: Ingest) -> None:
    events = make_events(300)
    status = {
        "event_id": f"it-st-{uuid.uuid4().hex}",
        "type": "agent.status",
        "ts": int(time.time() * 1000),
        "shop_id": "acme-jd",
        "platform": "jd",
        "agent_id": "agent-7",
        "status": "online",
        "capacity": 4,
        "queues": ["presales", "aftersales"],
    }
    events.append(status)
    body = b"\n".join(orjson.dumps(e) for e in events)
    async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
        resp = await client.post("/v1/events", content=body, headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 301, "duplicates": 0}
    # Right after the answer every record is below the high watermark, i.e. acknowledged by all
    # in-sync replicas (acks=all) and visible to consumers.
    assert await end_offsets(ingest.bootstrap, ingest.topic) == 301

    records = await read_all(ingest.bootstrap, ingest.topic, 301)
    assert len(records) == 301
    expected = {e["event_id"]: e for e in events}
    per_key: dict[bytes, list[int]] = {}
    partition_of: dict[bytes, int] = {}
    for rec in records:
        value = orjson.loads(rec.value)
        source = expected.pop(value["event_id"])
        assert rec.value == parse_event(source).to_json()
        own_id = "agent-7" if source["type"] == "agent.status" else source["conversation_id"]
        assert rec.key == state_key(source.get("tenant", "default"), own_id).encode()  # per tenant (issue 16)
        assert partition_of.setdefault(rec.key, rec.partition) == rec.partition  # one key, one partition
        per_key.setdefault(rec.key, []).append(value.get("chars", -1))
    assert expected == {}
    for key, chars in per_key.items():
        assert chars == sorted(chars), f"order within {key!r} not kept"
    assert len({rec.partition for rec in records}) == PARTITIONS


async def test_one_produce_request_per_batch(ingest: Ingest) -> None:
    requests = count_produce_requests(ingest.producer)
    async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
        resp = await client.post("/v1/events", content=orjson.dumps(make_events(2000, 50)), headers=AUTH)
        assert resp.status_code == 202, resp.text
        assert requests() == 1  # 2000 events over 3 partitions: one ProduceRequest, not 2000
        for _ in range(4):
            resp = await client.post("/v1/events", content=orjson.dumps(make_events(500, 30)), headers=AUTH)
            assert resp.status_code == 202, resp.text
    assert requests() == 5
    assert await end_offsets(ingest.bootstrap, ingest.topic) == 4000


async def test_retry_is_counted_as_duplicates_and_writes_nothing(ingest: Ingest) -> None:
    events = make_events(50)
    async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
        first = await client.post("/v1/events", content=orjson.dumps(events), headers=AUTH)
        again = await client.post("/v1/events", content=orjson.dumps(events), headers=AUTH)
        metrics = (await client.get("/metrics")).text
    assert first.json() == {"accepted": 50, "duplicates": 0}
    assert again.json() == {"accepted": 0, "duplicates": 50}
    assert await end_offsets(ingest.bootstrap, ingest.topic) == 50
    assert 'floorwatch_ingest_events_total{result="duplicate"} 50.0' in metrics
    assert "floorwatch_ingest_kafka_send_seconds_count 1.0" in metrics


async def test_missing_topic_is_503_and_nothing_marked_seen(kafka: Any) -> None:
    topic = f"ingesttest-{uuid.uuid4().hex[:10]}.missing"
    settings = settings_for(kafka.bootstrap, topic, send_timeout_s=1.5)
    async with serve(settings) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        resp = await client.post("/v1/events", content=orjson.dumps(make_events(3)), headers=AUTH)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "2"
        assert "is it created?" in resp.json()["detail"]
        assert len(running.app.state.seen) == 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_connects_once_kafka_comes_up(kafka: Any) -> None:
    """Start with nothing listening at the bootstrap address; then open a TCP relay to the broker
    there. The broker advertises its own address, so only bootstrap goes through the relay."""
    topic = f"ingesttest-{uuid.uuid4().hex[:10]}.events"
    await create_topic(kafka, topic, PARTITIONS)
    broker_host, broker_port = kafka.bootstrap.split(",")[0].rsplit(":", 1)
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(broker_host, int(broker_port))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    settings = settings_for(f"127.0.0.1:{port}", topic)
    async with (
        serve(settings, wait_healthy=False) as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as client,
    ):
        assert (await client.get("/healthz")).status_code == 503
        await asyncio.sleep(1.0)  # a few failed connection attempts
        assert (await client.get("/healthz")).json()["kafka"] == "connecting"
        server = await asyncio.start_server(relay, "127.0.0.1", port)
        try:
            deadline = time.monotonic() + 20
            while (await client.get("/healthz")).status_code != 200:
                assert time.monotonic() < deadline, "ingest did not connect after Kafka came up"
                await asyncio.sleep(0.2)
            resp = await client.post("/v1/events", content=orjson.dumps(make_events(5)), headers=AUTH)
            assert resp.status_code == 202, resp.text
        finally:
            server.close()
    assert await end_offsets(kafka.bootstrap, topic) == 5


async def test_starts_without_kafka_and_answers_503() -> None:
    settings = settings_for("127.0.0.1:1", "ingesttest.unreachable")
    started = time.monotonic()
    async with serve(settings, wait_healthy=False) as running:
        assert time.monotonic() - started < 5
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["kafka"] == "connecting"
            resp = await client.post("/v1/events", content=orjson.dumps(make_events(2)), headers=AUTH)
            assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
