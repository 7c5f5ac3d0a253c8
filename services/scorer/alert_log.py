"""The alerts topic from the scorer's side: transactional publishing and restoring engine state.

Alert changes and the engine snapshot that produced them are written in one Kafka transaction,
so a reader with read_committed sees both or neither: after a crash, the restored engine knows
every alert that was published, and nothing it did not publish.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from services.core.kafka_security import client_kwargs
from services.core.wire import ENGINE_KEY_PREFIX
from services.kafka_util.read import read_to_end

from .stages import Out

log = logging.getLogger(__name__)


class AlertPublisher:
    def __init__(self, bootstrap: str, topic: str, transactional_id: str) -> None:
        self.bootstrap, self.topic, self.transactional_id = bootstrap, topic, transactional_id
        self.producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self.producer is not None

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds to the running loop.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=self.transactional_id,
            enable_idempotence=True, acks="all", **client_kwargs(),
        )
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, records: list[Out]) -> None:
        if not records:
            return
        if self.producer is None:
            await self.start()
        producer = self.producer
        assert producer is not None
        async with producer.transaction():
            for r in records:
                await producer.send(self.topic, key=r.key, value=r.value, partition=r.partition)


async def read_engine_states(bootstrap: str, topic: str, partitions: set[int]) -> dict[int, dict[str, Any]]:
    """The latest committed engine snapshot of each queue partition (none for a fresh one)."""
    states: dict[int, dict[str, Any]] = {}
    engine_prefix = ENGINE_KEY_PREFIX.encode()

    def keep_snapshot(rec: ConsumerRecord[bytes, bytes]) -> None:
        if rec.key and rec.key.startswith(engine_prefix) and rec.value:
            states[rec.partition] = orjson.loads(rec.value)

    await read_to_end(bootstrap, topic, partitions, keep_snapshot, isolation_level="read_committed")
    return states
