"""A local mirror of a compacted Kafka topic, for stateless API replicas.

It reads every partition from the beginning without a consumer group, so any number of API
replicas hold the same copy; `caught_up` is set once the copy reached the topic's end as it
was at start-up, and `changed` is notified after every batch applied. Unlike
`services.kafka_util.read.read_to_end` it keeps following the topic; the two share what "reached
the end" means (`behind`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.core.kafka_security import client_kwargs
from services.kafka_util.read import behind

log = logging.getLogger(__name__)


class TopicMirror:
    isolation_level = "read_uncommitted"

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.caught_up = asyncio.Event()
        self.changed = asyncio.Condition()
        self.version = 0
        self._task: asyncio.Task[None] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mirror:{self.topic}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                self.topic, bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                auto_offset_reset="earliest", group_id=None, isolation_level=self.isolation_level,
                **client_kwargs(),
            )
            try:
                await consumer.start()
                end: dict[TopicPartition, int] | None = None
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for records in batch.values():
                        for rec in records:
                            self.apply(rec.key, rec.value)
                    if batch:
                        await self._notify()
                    if not self.caught_up.is_set():
                        tps = consumer.assignment()
                        if not tps:
                            continue
                        if end is None:
                            end = await consumer.end_offsets(list(tps))
                        if not await behind(consumer, end, tps):
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reader of %s lost Kafka; retrying", self.topic, exc_info=True)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()

    async def _notify(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()
