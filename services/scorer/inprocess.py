"""The three stages wired together in one process, with dicts as tables and lists as topics.

Records are routed exactly as Kafka would route them (murmur2 on the key, or the explicit
partition), so tests and benchmarks exercise the real stages without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import orjson
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from services.core.config import horizon_ms
from services.core.figures import QueueView
from services.core.scope import Scope
from services.core.wire import parse_day_view_key, parse_view_key

from .metrics import PipelineMetrics
from .stages import AgentStage, ConversationStage, Out, QueueStage


class InProcessScorer:
    def __init__(
        self, *, event_partitions: int = 6, queue_partitions: int = 3, bucket_ms: int = 1000,
        grace_ms: int = 60_000, retention_ms: int = 3_900_000, event_clock: bool = True,
        agent_retention_ms: int = 86_400_000, hand_on: bool = True,
    ) -> None:
        # hand_on: stage 2 takes stage 1's partial buckets as they are, and keeps stage 1's own widened buckets (as one
        # worker does: app.py's handoff and `QueueStage.twin`); False: it decodes every partial record and widens
        # into buckets of its own (as a worker merging another worker's partials does).
        self.event_partitions = event_partitions
        self.queue_partitions = queue_partitions
        self.metrics = PipelineMetrics(CollectorRegistry())
        horizon = horizon_ms(grace_ms)
        self.conv_table: dict[bytes, bytes] = {}
        self.agent_table: dict[bytes, bytes] = {}
        self.partials_table: dict[bytes, bytes] = {}
        self.conversations = ConversationStage(
            self.conv_table, self.metrics, bucket_ms=bucket_ms, grace_ms=grace_ms, horizon_ms=horizon,
            retention_ms=retention_ms, queue_partitions=queue_partitions, event_clock=event_clock, hand_on=hand_on,
        )
        self.agents = AgentStage(self.agent_table, self.metrics, queue_partitions=queue_partitions,
                                 retention_ms=agent_retention_ms, event_clock=event_clock)
        self.queues = QueueStage(
            self.partials_table, self.metrics, bucket_ms=bucket_ms, horizon_ms=horizon,
            queue_partitions=queue_partitions, event_clock=event_clock,
        )
        if hand_on:
            self.queues.twin = self.conversations.twin
        self.conversations.rebuild(set(range(event_partitions)))
        self.agents.rebuild(set(range(event_partitions)))
        self.queues.rebuild(set(range(queue_partitions)))
        self.dead_letters: list[Out] = []
        self.tombstoned: set[Scope] = set()
        self.alerts: list[Out] = []
        # The scorecard's day records as published on the views topic (its compacted state): (scope, start) -> value.
        self.day_records: dict[tuple[Scope, int], dict[str, Any]] = {}
        self._partitioner = DefaultPartitioner()

    def partition_of(self, key: bytes, partitions: int) -> int:
        return int(self._partitioner(key, list(range(partitions)), list(range(partitions))))

    def feed_records(self, records: Iterable[tuple[bytes, bytes]], now_ms: int = 0) -> None:
        """Kafka records of the chat-events topic: (key, normalised value)."""
        for key, value in records:
            p = self.partition_of(key, self.event_partitions)
            self._route(self.conversations.on_event(key, value, p, now_ms))
        for p in range(self.event_partitions):
            self.conversations.flush(p)
            self.agents.flush(p)

    def feed(self, events: Iterable[dict[str, Any]], now_ms: int = 0) -> None:
        """Normalised event dicts (as ingest writes them)."""
        from services.core.events import parse_event

        recs = []
        for obj in events:
            ev = parse_event(obj)
            recs.append((ev.key.encode(), ev.to_json()))
        self.feed_records(recs, now_ms)

    def _route(self, records: list[Out]) -> None:
        for r in records:
            if r.topic == "agent_changes":
                p = self.partition_of(r.key, self.event_partitions)
                self.agents.on_event(r.key, r.value, p)
            elif r.topic == "partials":
                assert r.partition is not None  # (stage 1 sends every partial to its queue's partition)
                self.queues.on_event(r.key, r.value, r.partition, r.local)
            elif r.topic == "dead_letter":
                self.dead_letters.append(r)
        for qp in range(self.queue_partitions):
            self.queues.flush(qp)

    def tick(self, now_ms: int, *, fast: bool = False) -> dict[Scope, QueueView]:
        """One tick of every stage (with `fast`, stage 2's fast step: the queue views the partials changed);
        returns the views published (by view key)."""
        if not fast:
            for p in range(self.event_partitions):
                self._route(self.agents.evict(p, now_ms))
        self._route(self.conversations.tick(now_ms, fast=fast) + self.agents.tick(fast=fast))
        for p in range(self.event_partitions):
            self.agents.flush(p)
        views, alerts = self.queues.tick(now_ms, fast=fast)
        for qp in range(self.queue_partitions):
            self.queues.write_widened(qp)
        self.alerts.extend(alerts)
        out: dict[Scope, QueueView] = {}
        self.tombstoned = set()
        for v in views:
            day = parse_day_view_key(v.key)
            if day is not None:
                if v.value is None:
                    self.day_records.pop(day, None)
                else:
                    self.day_records[day] = orjson.loads(v.value)
            elif v.value:
                out[parse_view_key(v.key)] = cast(QueueView, orjson.loads(v.value))  # as published
            else:
                self.tombstoned.add(parse_view_key(v.key))  # views that went
        return out
