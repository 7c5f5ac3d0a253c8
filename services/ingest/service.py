"""The batch logic of POST /v1/events, free of HTTP: split, validate, dedupe, produce, answer.

Order of events inside a batch is kept on the way to Kafka. A 2xx answer is only given after
Kafka acknowledged every record written (acks=all); only then are their event_ids remembered
as seen, so a retry after a 503 sends whatever was not acknowledged again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.core.events import ChatEvent
from services.core.limits import NameBudget

from .body import BodyError, RawItem, split_body
from .dedupe import RecentIds
from .metrics import IngestMetrics
from .producer import EventProducer, ProduceError, RecordsTooLarge
from .settings import IngestSettings
from .validate import Rejected, TimePolicy, validate

log = logging.getLogger("floorwatch.ingest")

RETRY_AFTER_S = "2"


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Ingestor:
    def __init__(
        self,
        settings: IngestSettings,
        producer: EventProducer,
        seen: RecentIds,
        metrics: IngestMetrics,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.seen = seen
        self.metrics = metrics
        self.policy = TimePolicy.from_seconds(settings.max_future_s, settings.max_past_s)
        self._wall_clock = wall_clock
        self.names = NameBudget(settings.limits)
        self._last_kafka_warning = 0.0

    def refuse(self, err: BodyError) -> Outcome:
        self.metrics.reject(err.code)
        return Outcome(err.status, {"detail": err.reason, "errors": [], "accepted": 0, "duplicates": 0})

    async def ingest(self, raw: bytes, *, ndjson: bool, atomic: bool, tenant: str | None = None) -> Outcome:
        try:
            items = split_body(
                raw, ndjson=ndjson, max_batch=self.settings.max_batch, max_depth=self.settings.max_json_depth
            )
        except BodyError as err:
            return self.refuse(err)
        return await self.ingest_items(items, atomic=atomic, tenant=tenant)

    async def ingest_items(self, items: list[RawItem], *, atomic: bool, tenant: str | None = None) -> Outcome:
        """Validate, dedupe and produce decoded events (the webhook adapters' output goes here too).
        `tenant`: the only tenant the caller's token may post for (None: any)."""
        now_ms = int(self._wall_clock() * 1000)
        valid, rejected = validate(items, self.policy, now_ms, tenant=tenant)
        valid, rejected = self._within_limits(valid, rejected, len(items), now_ms)
        for bad in rejected:
            self.metrics.rejected.labels(bad.code).inc()
        self.metrics.events.labels("rejected").inc(len(rejected))

        fresh, duplicates = self._dedupe(valid)
        self.metrics.events.labels("duplicate").inc(duplicates)
        if rejected and atomic:
            self.metrics.reject("atomic_batch", len(fresh))
            self.metrics.events.labels("rejected").inc(len(fresh))
            return self._invalid(rejected, len(items), 0, duplicates, atomic=True)

        accepted, failure, too_large = await self._produce(fresh)
        self.metrics.events.labels("accepted").inc(accepted)
        if too_large:
            # Refused for good, one by one: a retry would fail the same way, so never a 503 for these.
            for i, reason in too_large.items():
                rejected.append(Rejected(-1, fresh[i].event_id, "too_large", reason))
                self.metrics.rejected.labels("too_large").inc()
            self.metrics.events.labels("rejected").inc(len(too_large))
            rejected = self._indexed(rejected, items)
        if failure is not None:
            unsent = len(fresh) - accepted - len(too_large)
            self.metrics.reject("kafka_unavailable", unsent)
            self.metrics.events.labels("rejected").inc(unsent)
            body: dict[str, Any] = {
                "detail": (
                    f"Kafka unavailable: {failure}; {unsent} events not acknowledged (they may still "
                    "reach Kafka later), retry the same batch (event_ids make retries safe)"
                ),
                "accepted": accepted,
                "duplicates": duplicates,
            }
            if rejected:
                body["errors"] = [r.to_json() for r in rejected]
            return Outcome(503, body, {"Retry-After": RETRY_AFTER_S})
        if rejected:
            return self._invalid(rejected, len(items), accepted, duplicates, atomic=False)
        return Outcome(202, {"accepted": accepted, "duplicates": duplicates})

    def _within_limits(
        self, valid: list[ChatEvent], rejected: list[Rejected], total: int, now_ms: int,
    ) -> tuple[list[ChatEvent], list[Rejected]]:
        """Refuse, per event, those whose new names would pass their tenant's limits (422 with the reason)."""
        bad_index = {r.index for r in rejected}
        positions = [i for i in range(total) if i not in bad_index]  # validate keeps the batch's order
        kept: list[ChatEvent] = []
        over: list[Rejected] = []
        for index, event in zip(positions, valid, strict=True):
            verdict = self.names.admit(event, now_ms)
            if verdict is None:
                kept.append(event)
            else:
                over.append(Rejected(index, event.event_id, verdict.code, verdict.reason))
        if not over:
            return valid, rejected
        return kept, sorted([*rejected, *over], key=lambda r: r.index)

    def _dedupe(self, events: list[ChatEvent]) -> tuple[list[ChatEvent], int]:
        """Drop events already acknowledged earlier, and repeats within this batch (first wins)."""
        fresh: list[ChatEvent] = []
        in_batch: set[str] = set()
        seen = self.seen
        for event in events:
            event_id = event.event_id
            if event_id in in_batch or event_id in seen:
                continue
            in_batch.add(event_id)
            fresh.append(event)
        return fresh, len(events) - len(fresh)

    async def _produce(self, events: list[ChatEvent]) -> tuple[int, str | None, dict[int, str]]:
        """Send and wait for every ack; returns (acknowledged count, failure reason or None, and the
        positions of events Kafka refused as too large with why)."""
        if not events:
            return 0, None, {}
        if not self.producer.connected:
            self._warn_kafka("not connected to Kafka yet", len(events))
            return 0, "not connected to Kafka yet", {}
        records = [(event.key.encode(), event.to_json()) for event in events]
        started = time.perf_counter()
        try:
            await self.producer.send_batch(records, self.settings.send_timeout_s)
        except RecordsTooLarge as err:
            self.metrics.kafka_send_seconds.observe(time.perf_counter() - started)
            self.seen.add(events[i].event_id for i in sorted(err.acked))
            return len(err.acked), None, err.refused
        except ProduceError as err:
            self.metrics.kafka_send_seconds.observe(time.perf_counter() - started)
            self.seen.add(events[i].event_id for i in sorted(err.acked))
            self._warn_kafka(err.reason, len(events) - len(err.acked))
            return len(err.acked), err.reason, {}
        self.metrics.kafka_send_seconds.observe(time.perf_counter() - started)
        self.seen.add(event.event_id for event in events)
        return len(events), None, {}

    @staticmethod
    def _indexed(rejected: list[Rejected], items: list[RawItem]) -> list[Rejected]:
        """Rejections refused by Kafka carry index -1; give them their event's position in the request."""
        if all(r.index >= 0 for r in rejected):
            return rejected
        position: dict[str, tuple[int, int | None]] = {}
        for item in items:
            value = item.value
            if isinstance(value, dict) and isinstance(value.get("event_id"), str):
                position.setdefault(value["event_id"], (item.index, item.line))
        out = []
        for r in rejected:
            if r.index < 0:
                index, line = position.get(r.event_id or "", (-1, None))
                r = Rejected(index, r.event_id, r.code, r.reason, line)
            out.append(r)
        out.sort(key=lambda r: r.index)
        return out

    def _warn_kafka(self, reason: str, unsent: int) -> None:
        now = time.monotonic()
        if now - self._last_kafka_warning >= 10.0:  # at most one line per 10 s while Kafka is down
            self._last_kafka_warning = now
            log.warning("events not written to Kafka", extra={"reason": reason, "unsent": unsent})

    @staticmethod
    def _invalid(rejected: list[Rejected], total: int, accepted: int, duplicates: int, *, atomic: bool) -> Outcome:
        if atomic:
            summary = f"{len(rejected)} of {total} events are invalid; nothing was written (atomic=true)"
        elif accepted + duplicates == 0:
            summary = f"all {total} events are invalid; nothing was written"
        else:
            summary = f"{len(rejected)} of {total} events are invalid; {accepted} accepted"
            summary += f", {duplicates} duplicates" if duplicates else ""
        return Outcome(
            422,
            {
                "detail": summary,
                "errors": [r.to_json() for r in rejected],
                "accepted": accepted,
                "duplicates": duplicates,
            },
        )
