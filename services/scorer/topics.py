"""Create the scorer's changelog topics before Faust starts.

Faust declares changelog topics itself, but concurrently with subscribing; on a fresh
broker an agent can start before its table's changelog exists and crash with
PartitionsMismatch. Creating them first (compacted, with the source's partition count)
removes that race. Topics the stack owns (events, partials, views…) are created by
`make up`; this only adds the scorer's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from services.core.kafka_security import client_kwargs

from .settings import ScorerSettings

log = logging.getLogger(__name__)

TABLES = {"conversations": "event_partitions", "agents": "event_partitions", "queue-partials": "queue_partitions"}


def changelog_topics(s: ScorerSettings) -> list[tuple[str, int]]:
    return [(f"{s.app_id}-{name}-changelog", getattr(s.kafka, attr)) for name, attr in TABLES.items()]


async def ensure_changelog_topics(s: ScorerSettings, timeout_s: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap, **client_kwargs())
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, parts, s.kafka.replication, topic_configs={"cleanup.policy": "compact"})
                for name, parts in changelog_topics(s) if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                    await admin.create_topics(missing)
                log.info("created changelog topics", extra={"topics": [t.name for t in missing]})
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("Kafka not reachable yet; retrying")
            await asyncio.sleep(1)
        finally:
            await admin.close()
