"""Records the scorer cannot read go to the dead-letter topic with a reason, and the scorer keeps going.

Bad records are written straight into the chat-events topic (ingest would refuse them): bytes
that are not JSON, JSON that is not an event, events with one bad field, and a tombstone. Each
must appear on the dead-letter topic with its key, partition, original value and a reason a
person can act on; floorwatch_scorer_dead_letters_total must rise by as many; and two valid
conversations written after them into the same partition must show at the API with their
hand-computed figures.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.local.config import topics_for
from services.core.events import parse_event

pytestmark = pytest.mark.stack

TENANT, SHOP, PLATFORM = "e2e-dlq", "e2e-dlq-web", "web"
PARTITION = 0  # every record of the test goes here: the valid ones must come after the bad ones
TIMEOUT_S = 90.0


def good_event(run: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"{run}-ok-{n}", "tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, **fields}


def bad_records(run: str) -> list[tuple[bytes, bytes | None, str]]:
    """(key, value, a fragment the dead-letter reason must contain)."""
    now = int(time.time() * 1000)
    event = {"event_id": f"{run}-bad", "type": "message", "ts": now, "tenant": TENANT, "shop_id": SHOP,
             "platform": PLATFORM, "conversation_id": f"{run}-bad-conv", "sender": "customer"}
    cases: list[tuple[bytes | None, str]] = [
        (b"not json {", "not JSON"),
        (b"\xff\xfe\x00 neither UTF-8 nor JSON", "not JSON"),
        (orjson.dumps({"hello": "world"}), "event_id is required"),
        (orjson.dumps([1, 2, 3]), "must be a JSON object"),
        (orjson.dumps("a string"), "must be a JSON object"),
        (orjson.dumps({**event, "event_id": f"{run}-bad-1", "sender": "robot"}), "sender must be one of"),
        (orjson.dumps({**event, "event_id": f"{run}-bad-2", "ts": "yesterday"}), "is not RFC 3339"),
        (orjson.dumps({**event, "event_id": f"{run}-bad-3", "platform": "JD"}), "platform must be lower-case"),
        (orjson.dumps({**event, "event_id": f"{run}-bad-4", "type": "message.deleted"}), "type must be one of"),
        (orjson.dumps({**event, "event_id": f"{run}-bad-5", "chars": -3}), "chars must be between"),
        (None, "no value"),  # a tombstone
    ]
    return [(f"{run}-dl-{i}".encode(), value, reason) for i, (value, reason) in enumerate(cases)]


def valid_conversations(run: str, queue: str) -> list[dict[str, Any]]:
    """c1 answered after 5 s; c2 still waiting."""
    base = int(time.time() * 1000) - 30_000
    c1, c2 = f"{run}-c1", f"{run}-c2"
    return [
        good_event(run, 1, type="conversation.opened", ts=base, conversation_id=c1, queue=queue),
        good_event(run, 2, type="message", ts=base + 1000, conversation_id=c1, sender="customer"),
        good_event(run, 3, type="message", ts=base + 6000, conversation_id=c1, sender="agent", agent_id=f"{run}-a"),
        good_event(run, 4, type="conversation.opened", ts=base + 2000, conversation_id=c2, queue=queue),
        good_event(run, 5, type="message", ts=base + 3000, conversation_id=c2, sender="customer"),
    ]


def dead_letters_total(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("floorwatch_scorer_dead_letters_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def scorer_dead_letters(client: httpx.AsyncClient, urls: list[str]) -> float:
    return sum([dead_letters_total((await client.get(url)).text) for url in urls])


async def read_dead_letters(
    bootstrap: str, topic: str, partitions: int, keys: set[bytes]
) -> dict[bytes, dict[str, Any]]:
    """The dead-letter records with these keys, waiting until all are there (or TIMEOUT_S)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: dict[bytes, dict[str, Any]] = {}
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + TIMEOUT_S
        while set(found) < keys and time.monotonic() < deadline:
            batches = await consumer.getmany(*parts, timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    if rec.key in keys and rec.value is not None:
                        found[rec.key] = orjson.loads(rec.value)
    finally:
        await consumer.stop()
    return found


async def wait_for_queue(client: httpx.AsyncClient, api: str, queue: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    got: dict[str, Any] = {}
    want = {"arrivals": 2, "open": 2, "unanswered": 1, "awaiting_reply": 1, "frt_count": 1, "frt_mean_s": 5.0}
    while time.monotonic() < deadline:
        r = await client.get(f"{api}/v1/queues/{queue}")
        if r.status_code == 200:
            view = r.json()
            live, w = view["live"], view["windows"]["15m"]
            got = {"arrivals": w["arrivals"], "open": live["open"], "unanswered": live["unanswered"],
                   "awaiting_reply": live["awaiting_reply"], "frt_count": w["frt"]["count"],
                   "frt_mean_s": w["frt"]["mean_s"]}
            if got == want:
                return view  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    raise AssertionError(f"the valid conversations never showed at the API: got {got}, want {want}")


async def test_unreadable_records_go_to_the_dead_letter_topic_and_the_scorer_keeps_going(stack: Any) -> None:
    run = f"dlq-{uuid.uuid4().hex[:8]}"
    queue = f"e2e-{run}"
    topics = topics_for(stack.env)
    bad = bad_records(run)
    async with httpx.AsyncClient(timeout=10) as client:
        before = await scorer_dead_letters(client, stack.scorer_metrics_urls)

        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for key, value, _ in bad:
                await producer.send_and_wait(topics.events, value=value, key=key, partition=PARTITION)
            for obj in valid_conversations(run, queue):
                ev = parse_event(obj)
                await producer.send_and_wait(topics.events, value=ev.to_json(), key=ev.key.encode(),
                                             partition=PARTITION)
        finally:
            await producer.stop()

        found = await read_dead_letters(
            stack.kafka_bootstrap, topics.dead_letter, stack.cfg.event_partitions, {k for k, _, _ in bad}
        )
        missing = [k.decode() for k, _, _ in bad if k not in found]
        assert not missing, f"not on {topics.dead_letter}: {missing}"
        for key, value, reason in bad:
            letter = found[key]
            assert reason in letter["reason"], (key, letter)
            assert letter["key"] == key.decode()
            assert letter["partition"] == PARTITION
            assert letter["value"] == (None if value is None else value.decode("utf-8", "replace"))

        after = await scorer_dead_letters(client, stack.scorer_metrics_urls)
        assert after >= before + len(bad), f"floorwatch_scorer_dead_letters_total {before} -> {after}"

        view = await wait_for_queue(client, stack.api_url, queue)
        assert view["windows"]["15m"]["frt"]["max_s"] == pytest.approx(5.0)


def test_the_valid_conversations_are_contract_events() -> None:
    for obj in valid_conversations("r", "q"):
        parse_event(obj)
