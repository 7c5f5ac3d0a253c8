"""The partials topic is a hand-over between the stages, not a store: stage 2 keeps what it merged in its own
table (with its changelog), so what stage 2 has committed is deleted from the topic, as Kafka Streams purges its
repartition topics. The topic is delete-policy (its records are bundles: services.core.wire), with the broker's
retention as a backstop should no worker purge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

from services.core.kafka_security import client_kwargs

log = logging.getLogger(__name__)


class PartialsPurger:
    def __init__(self, bootstrap: str, group_id: str, topic: str) -> None:
        self.bootstrap, self.group_id, self.topic = bootstrap, group_id, topic
        self.admin: AIOKafkaAdminClient | None = None
        self.purged_to: dict[int, int] = {}

    async def purge(self, partitions: Iterable[int]) -> None:
        """Delete the records before the group's committed offset on each of `partitions` (those this worker
        merges: its commits are what say they are merged). A failure is logged and left to the next purge (a topic
        made before bundles, still compacted, refuses: docs/operations.md)."""
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return
        try:
            if self.admin is None:
                self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **client_kwargs())
                await self.admin.start()
            committed = await self.admin.list_consumer_group_offsets(self.group_id, partitions=tps)
            wanted = {tp: RecordsToDelete(meta.offset) for tp, meta in committed.items()
                      if meta.offset > self.purged_to.get(tp.partition, 0)}
            if not wanted:
                return
            done = await self.admin.delete_records(wanted)
        except Exception as exc:  # the next purge tries again; nothing is lost by not purging
            log.warning("could not purge the partials topic", extra={"topic": self.topic, "error": repr(exc)})
            await self.close()
            return
        for tp, start in done.items():
            self.purged_to[tp.partition] = start

    async def close(self) -> None:
        if self.admin is not None:
            admin, self.admin = self.admin, None
            await admin.close()
