"""Broker-side levers for the integration tests: client quotas (to slow a client's produce acknowledgements
down, on the broker, without touching the client) and a consumer group's committed offsets.

aiokafka's admin client has no AlterClientQuotas, so its request (API key 49, version 0, a version every
broker since Kafka 2.6 accepts) is declared here with aiokafka's own protocol types.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Float64, Int16, Int32, Schema, String


class AlterClientQuotasResponse_v0(Response):  # type: ignore[misc]  # aiokafka is untyped; its naming
    API_KEY = 49
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("entries", Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))),
        )),
    )


class AlterClientQuotasRequest_v0(RequestStruct):  # type: ignore[misc]
    API_KEY = 49
    API_VERSION = 0
    RESPONSE_TYPE = AlterClientQuotasResponse_v0
    SCHEMA = Schema(
        ("entries", Array(
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))),
            ("ops", Array(("key", String("utf-8")), ("value", Float64), ("remove", Boolean))),
        )),
        ("validate_only", Boolean),
    )


AlterClientQuotasRequestStruct: TypeAlias = AlterClientQuotasRequest_v0


class AlterClientQuotasRequest(Request[AlterClientQuotasRequestStruct]):  # type: ignore[misc]
    API_KEY = 49

    def __init__(self, entries: list[Any]) -> None:
        self._entries = entries

    def build(self, request_struct_class: type[AlterClientQuotasRequestStruct]) -> AlterClientQuotasRequestStruct:
        return request_struct_class(self._entries, False)


async def set_produce_quota(bootstrap: str, client_id: str, bytes_per_s: float | None) -> None:
    """Limit what clients called `client_id` may produce (None: remove the limit). The broker enforces it by
    answering a produce request that exceeds it and then not reading that connection for the throttle time."""
    op = ("producer_byte_rate", 0.0, True) if bytes_per_s is None else ("producer_byte_rate", bytes_per_s, False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin._send_request(  # private: aiokafka has no public way to send it
            AlterClientQuotasRequest([([("client-id", client_id)], [op])])
        )
    finally:
        await admin.close()
    for error_code, message, _entity in response.entries:
        assert error_code == 0, f"AlterClientQuotas failed: {error_code} {message}"


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (partitions it never committed are absent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def topic_starts(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's first offset still held (above 0 once records were deleted from it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(tps)).items()}
    finally:
        await consumer.stop()
