"""Reading a Kafka topic to its end, for the services that rebuild state from a compacted topic.

Outside the pure `services.core` (no Kafka there): shared by the API's mirrors, the scorer's
restore of alert-engine state and the integration tests' harness.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

OnRecord = Callable[[ConsumerRecord[bytes, bytes]], None]


async def behind(
    consumer: AIOKafkaConsumer, end: Mapping[TopicPartition, int], partitions: Iterable[TopicPartition]
) -> set[TopicPartition]:
    """The partitions whose consumer position is still before `end` (0 for a partition not in it)."""
    return {tp for tp in partitions if await consumer.position(tp) < end.get(tp, 0)}


async def read_to_end(
    bootstrap: str,
    topic: str,
    on_record: OnRecord,
    *,
    partitions: Collection[int] | None = None,
    isolation_level: str = "read_uncommitted",
) -> None:
    """Hand every record of `topic`, from the beginning to the end as it was when reading started, to
    `on_record`, partition by partition in offset order. No consumer group. `partitions`: which
    (default: all the topic has; none when the broker does not know the topic). With
    `isolation_level="read_committed"` only records of committed transactions."""
    if partitions is not None and not partitions:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        if partitions is None:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer.topics()  # metadata of every topic, this one too
                partitions = consumer.partitions_for_topic(topic) or ()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
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
