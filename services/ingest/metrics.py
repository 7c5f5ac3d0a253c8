"""Prometheus metrics of the ingest service, in a registry of its own (one per app instance).

Units: `floorwatch_ingest_events_total` and the per-event reasons of
`floorwatch_ingest_rejected_total` (invalid_json / too_deep for an NDJSON line, not_object,
bad_field, unknown_type, ts_future, ts_past, wrong_tenant (an INGEST_TOKENS token posting another
tenant's event), too_large (a record Kafka refuses as too large), kafka_unavailable, atomic_batch,
limit_* (services/core/limits.py)) count events; the
request-level reasons (unauthorized, token_not_configured, body_too_large, batch_too_large,
bad_request, invalid_json / too_deep / not_object for a whole body, and for webhooks
unknown_platform, secret_not_configured, bad_signature, stale_signature, bad_payload) count
requests. Events from webhooks count in the same series as those of /v1/events.

Webhooks (POST /v1/webhooks/{platform}) also have `floorwatch_ingest_webhook_requests_total`
{platform, code} and `floorwatch_ingest_webhook_ignored_total`{platform, event}: deliveries (or
events inside one) acknowledged with 202 but mapped to nothing, by the platform's event name
(names outside each adapter's known list are counted as `other`, so the label set stays bounded).
`floorwatch_ingest_webhook_assumed_total`{platform, what, source} counts deliveries where a fact
the platform left out was assumed (Chatwoot's account: from CHATWOOT_DEFAULT_ACCOUNT, from an
earlier delivery of the same inbox, or `default`), and
`floorwatch_ingest_webhook_last_delivery_timestamp_seconds`{platform} is when the last delivery
that passed authentication and mapping arrived (`make status` shows it).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

EVENT_RESULTS = ("accepted", "duplicate", "rejected")
REJECT_REASONS = (
    "invalid_json",
    "not_object",
    "bad_field",
    "unknown_type",
    "ts_future",
    "ts_past",
    "body_too_large",
    "batch_too_large",
    "unauthorized",
    "token_not_configured",
    "bad_request",
    "kafka_unavailable",
    "atomic_batch",
    "too_deep",
    "unknown_platform",
    "secret_not_configured",
    "bad_signature",
    "stale_signature",
    "bad_payload",
    "wrong_tenant",
    "too_large",
    # Per-tenant name limits (services/core/limits.py): events whose new names would pass them.
    "limit_tenants",
    "limit_queues",
    "limit_shops",
    "limit_agents",
    "limit_queues_per_agent",
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "floorwatch_ingest_events",
            "Events posted to /v1/events or mapped from webhooks, by outcome",
            ["result"],
            registry=r,
        )
        self.rejected = Counter(
            "floorwatch_ingest_rejected",
            "Rejected events (or whole requests, for request-level reasons), by reason",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "floorwatch_ingest_requests", "POST /v1/events requests, by HTTP status", ["code"], registry=r
        )
        self.request_seconds = Histogram(
            "floorwatch_ingest_request_seconds",
            "Time to answer POST /v1/events",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.kafka_send_seconds = Histogram(
            "floorwatch_ingest_kafka_send_seconds",
            "Time from handing a batch to the producer until Kafka acknowledged all of it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.kafka_connected = Gauge(
            "floorwatch_ingest_kafka_connected", "1 once the producer has reached Kafka", registry=r
        )
        self.webhook_requests = Counter(
            "floorwatch_ingest_webhook_requests",
            "POST /v1/webhooks/{platform} requests, by platform and HTTP status",
            ["platform", "code"],
            registry=r,
        )
        self.webhook_ignored = Counter(
            "floorwatch_ingest_webhook_ignored",
            "Webhook events acknowledged but not mapped to any chat event, by platform and event name",
            ["platform", "event"],
            registry=r,
        )
        self.webhook_assumed = Counter(
            "floorwatch_ingest_webhook_assumed",
            "Webhook deliveries mapped with an assumed fact the platform left out (Chatwoot: the account), "
            "by where the assumption came from: setting, inbox (an earlier delivery) or default",
            ["platform", "what", "source"],
            registry=r,
        )
        self.webhook_last_delivery = Gauge(
            "floorwatch_ingest_webhook_last_delivery_timestamp_seconds",
            "Unix time of the last webhook delivery that passed authentication and mapping, by platform",
            ["platform"],
            registry=r,
        )
        self.dedupe_entries = Gauge(
            "floorwatch_ingest_dedupe_entries", "Acknowledged event_ids remembered for dedupe", registry=r
        )
        for result in EVENT_RESULTS:
            self.events.labels(result)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    def track(self, connected: Callable[[], bool], dedupe_size: Callable[[], int]) -> None:
        self.kafka_connected.set_function(lambda: 1.0 if connected() else 0.0)
        self.dedupe_entries.set_function(lambda: float(dedupe_size()))

    def reject(self, reason: str, count: int = 1) -> None:
        if count:
            self.rejected.labels(reason).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
