"""Reading a Kafka topic to its end, for the services that rebuild state from a compacted topic.

Outside the pure `services.core` (no Kafka there): shared by the API's mirrors, the scorer's
restore of alert-engine state and the integration tests' harness.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.core.kafka_security import client_kwargs

OnRecord = Callable[[ConsumerRecord[bytes, bytes]], None]


async def behind(
    consumer: AIOKafkaConsumer, end: Mapping[TopicPartition, int], partitions: Iterable[TopicPartition]
) -> set[TopicPartition]:
    """The partitions whose consumer position is still before `end` (0 for a partition not in it)."""
    return {tp for tp in partitions if await consumer.position(tp) < end.get(tp, 0)}


async def read_to_end(
    bootstrap: str,
    topic: str,
    partitions: Collection[int],
    on_record: OnRecord,
    *,
    isolation_level: str = "read_uncommitted",
) -> None:
    """Hand every record of these partitions of `topic`, from the beginning to the end as it was when
    reading started, to `on_record`, partition by partition in offset order. No consumer group. The
    caller names the partitions: a fresh consumer has no metadata for the topic (aiokafka's
    `partitions_for_topic` is None, even after `topics()`). With `isolation_level="read_committed"`
    only records of committed transactions."""
    if not partitions:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level=isolation_level, **client_kwargs(),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    on_record(rec)
            pending = await behind(consumer, end, pending)
    finally:
        await consumer.stop()
