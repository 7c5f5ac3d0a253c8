"""Signed webhook deliveries to the real ingest app (uvicorn, real HTTP) against the test Kafka broker.

Uses the session fixture `kafka` (tests/conftest.py). Each test makes its own topic, posts one
delivery per platform with that platform's authentication, reads the records back and checks
keys and values; a retried delivery writes nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer

from services.core.config import KafkaSettings
from services.core.events import parse_event, state_key
from services.ingest.adapters import AdapterConfig
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.ingest.webhooks import sign_chatwoot

CHATWOOT = "it-chatwoot-secret"
LIVECHAT = "it-livechat-secret"
SUNSHINE = "it-sunshine-key"


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def serve(bootstrap: str, topic: str) -> AsyncIterator[str]:
    settings = IngestSettings(
        token="it-token",
        kafka=KafkaSettings(bootstrap=bootstrap),
        topic=topic,
        health_cache_s=0.2,
        chatwoot_webhook_secret=CHATWOOT,
        chatwoot_allow_unsigned=False,
        livechat_secret_key=LIVECHAT,
        sunshine_api_key=SUNSHINE,
        adapters=AdapterConfig(queue_map={"chatwoot:inbox:3": "presales"}, tenant="acme"),
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url) as client:
            deadline = time.monotonic() + 30
            while (await client.get("/healthz")).status_code != 200:
                assert time.monotonic() < deadline, "ingest never became healthy"
                await asyncio.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        await task


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[tuple[bytes, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[tuple[bytes, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                out.extend((r.key, orjson.loads(r.value)) for r in records)
        # Anything more than expected would show up within a short extra wait.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            out.extend((r.key, orjson.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def topic(kafka: Any) -> str:
    name = f"webhooktest-{uuid.uuid4().hex[:10]}.events"
    await kafka.acreate_topic(name, 3)
    return name


async def test_signed_deliveries_of_every_platform_reach_kafka(kafka: Any, topic: str) -> None:
    now_ms = int(time.time() * 1000)
    chatwoot = orjson.dumps({
        "event": "message_created", "id": 9001, "message_type": "incoming", "content": "你好",
        "created_at": iso(now_ms - 3000), "private": False, "account": {"id": 7}, "inbox": {"id": 3},
        "conversation": {"id": 42, "inbox_id": 3}, "sender": {"id": 163},
    })
    livechat = {
        "webhook_id": "wh", "secret_key": LIVECHAT, "action": "routing_status_set", "organization_id": "org-9",
        "payload": {"agent_id": "smith@example.com", "status": "accepting_chats"},
    }
    sunshine = {"app": {"id": "app-1"}, "webhook": {"id": "w", "version": "v2"}, "events": [
        {"id": "ev-1", "type": "conversation:create", "createdAt": iso(now_ms - 2000),
         "payload": {"conversation": {"id": "conv-1"}, "user": {"id": "u-1"}, "source": {"type": "web"}}},
        {"id": "ev-2", "type": "conversation:typing", "createdAt": iso(now_ms - 1000),
         "payload": {"conversation": {"id": "conv-1"}}},
    ]}
    async with serve(kafka.bootstrap, topic) as url, httpx.AsyncClient(base_url=url) as client:
        headers = {"Content-Type": "application/json", **sign_chatwoot(CHATWOOT, int(time.time()), chatwoot)}
        resp = await client.post("/v1/webhooks/chatwoot", content=chatwoot, headers=headers)
        assert resp.status_code == 202 and resp.json()["accepted"] == 1, resp.text
        resp = await client.post("/v1/webhooks/livechat", json=livechat)
        assert resp.status_code == 202 and resp.json()["accepted"] == 1, resp.text
        resp = await client.post("/v1/webhooks/sunshine", json=sunshine, headers={"X-API-Key": SUNSHINE})
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"accepted": 1, "duplicates": 0, "mapped": 1, "ignored": ["conversation:typing"]}
        # Retries of the same deliveries: acknowledged, written nowhere.
        headers = {"Content-Type": "application/json", **sign_chatwoot(CHATWOOT, int(time.time()), chatwoot)}
        again = await client.post("/v1/webhooks/chatwoot", content=chatwoot, headers=headers)
        assert again.json()["duplicates"] == 1
        again = await client.post("/v1/webhooks/sunshine", json=sunshine, headers={"X-API-Key": SUNSHINE})
        assert again.json()["duplicates"] == 1
        # A bad signature never reaches Kafka.
        bad = {"Content-Type": "application/json", "X-Chatwoot-Signature": "sha256=" + "0" * 64,
               "X-Chatwoot-Timestamp": str(int(time.time()))}
        assert (await client.post("/v1/webhooks/chatwoot", content=chatwoot, headers=bad)).status_code == 401
        metrics = (await client.get("/metrics")).text
    # Ignored events are counted per delivery received (the retry too).
    assert 'floorwatch_ingest_webhook_ignored_total{event="conversation:typing",platform="sunshine"} 2.0' in metrics

    records = await read_all(kafka.bootstrap, topic, expected=3)
    by_type = {value["type"]: (key, value) for key, value in records}
    assert len(records) == 3 and set(by_type) == {"message", "agent.status", "conversation.opened"}
    key, message = by_type["message"]
    assert key == state_key("acme", "chatwoot:7:42").encode()  # per tenant (issue 16)
    assert message == {
        "event_id": "chatwoot:7:msg:9001", "type": "message", "ts": now_ms - 3000, "tenant": "acme",
        "shop_id": "chatwoot:7:3", "platform": "chatwoot", "conversation_id": "chatwoot:7:42",
        "queue": "presales", "customer_id": "chatwoot:7:contact:163", "sender": "customer", "chars": 2,
        "queue_source_id": "chatwoot:7:inbox:3",  # the platform's id of what named the queue, for joins
    }
    key, status = by_type["agent.status"]
    assert key == state_key("acme", "livechat:org-9:agent:smith@example.com").encode()
    assert status["status"] == "online"
    key, opened = by_type["conversation.opened"]
    assert key == state_key("acme", "sunshine:app-1:conv-1").encode() and opened["channel"] == "web"
    assert opened["queue"] == "web"  # the integration's type: no ADAPTER_QUEUE_MAP entry for it
    for _key, value in records:
        parse_event(value)
