"""Creating the topics a deployment needs: one home for the local stack's topics (deploy/local/kafka.py)
and the scorer's changelog topics (services/scorer/topics.py).

aiokafka is imported inside the function, so importing this module loads no Kafka client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .config import TopicSpec

TOPIC_ALREADY_EXISTS: Final = 36  # Kafka's error code when a racing creator made the topic first


async def create_missing_topics(
    admin: Any, specs: Iterable[TopicSpec], replication: int = 1, timeout_ms: int | None = None
) -> tuple[list[str], list[str]]:
    """Create those of `specs` the broker does not have yet (compacted where asked) with a started
    AIOKafkaAdminClient; existing topics are left as they are. Returns the names asked for and the
    broker's refusals ("topic: error code message"), empty when all went well."""
    from aiokafka.admin import NewTopic

    existing = set(await admin.list_topics())
    wanted = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions,
            replication_factor=replication,
            topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
        )
        for spec in map(TopicSpec._make, specs)
        if spec.name not in existing
    ]
    if not wanted:
        return [], []
    # aiokafka does not raise on a refused topic: the refusals are in the response.
    response = await admin.create_topics(wanted, timeout_ms=timeout_ms)
    problems = [
        f"{entry.get('topic')}: error {code} {entry.get('error_message')}"
        for entry in response.to_object().get("topic_errors", [])
        if (code := int(entry.get("error_code", 0))) not in (0, TOPIC_ALREADY_EXISTS)
    ]
    return [t.name for t in wanted], problems
