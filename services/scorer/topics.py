"""Create the scorer's changelog topics before Faust starts.

Faust declares changelog topics itself, but concurrently with subscribing; on a fresh
broker an agent can start before its table's changelog exists and crash with
PartitionsMismatch. Creating them first (compacted, with the source's partition count)
removes that race. Topics the stack owns (events, partials, views…) are created by
`make up`; this only adds the scorer's own.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from services.core.config import TopicSpec
from services.core.kafka_security import client_kwargs
from services.core.kafka_topics import create_missing_topics

from .settings import ScorerSettings

log = logging.getLogger(__name__)

TABLES = {"conversations": "event_partitions", "agents": "event_partitions", "queue-partials": "queue_partitions"}


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


def changelog_topics(s: ScorerSettings) -> list[tuple[str, int]]:
    return [(changelog_topic(s.app_id, name), getattr(s.kafka, attr)) for name, attr in TABLES.items()]


async def ensure_changelog_topics(s: ScorerSettings, timeout_s: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap, **client_kwargs())
        try:
            await admin.start()
            specs = [TopicSpec(name, parts, True) for name, parts in changelog_topics(s)]
            # Another worker winning the race is no problem; a refusal leaves Faust to declare the topic.
            created, problems = await create_missing_topics(admin, specs, s.kafka.replication)
            if created:
                log.info("created changelog topics", extra={"topics": created})
            if problems:
                log.warning("changelog topics refused", extra={"problems": problems})
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("Kafka not reachable yet; retrying")
            await asyncio.sleep(1)
        finally:
            await admin.close()
