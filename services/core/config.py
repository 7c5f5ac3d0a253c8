"""Every setting, read from environment variables, with its documented default (.env.example).

One home for names shared by services: topic names, ports, windows, thresholds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Final, NamedTuple

from .kafka_security import KafkaSecurity

WINDOWS: Final[dict[str, int]] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


def horizon_ms(grace_ms: int) -> int:
    """How far back any window can reach: the longest window, a minute (buckets are pruned a whole minute at
    a time) and the grace period for late events."""
    return max(WINDOWS.values()) + 60_000 + grace_ms

SL_THRESHOLDS_S: Final[tuple[int, ...]] = (30, 180)  # service-level thresholds X unless configured
ENV_SL_THRESHOLDS: Final = "SL_THRESHOLDS_S"
SLOW_REPLY_S: Final = 100.0  # Qianniu counts replies slower than 100 s as slow (慢响应)

# Staffing, shared by the API's /v1/staffing and the alert rules (Signals, staffing_gap). Until the
# floor measures them: the AHT until a conversation closed in the 1h window, the concurrency until
# agents report their capacity (both configurable: `StaffingSettings`).
STAFFING_DEFAULT_AHT_S: Final = 300.0
STAFFING_DEFAULT_CONCURRENCY: Final = 3.0
# The Erlang C target /v1/staffing answers for and the staffing_gap alert judges by, unless asked
# otherwise (query parameters; the alert rules file).
STAFFING_SL_TARGET: Final = 0.8
STAFFING_SL_SECONDS: Final = 30.0
STAFFING_MAX_OCCUPANCY: Final = 0.85

# The deployment's addresses and sizes by default (.env.example): the services read their settings with
# these, and the local stack (deploy/local/config.py) starts its parts on them, so the two always agree.
DEFAULT_KAFKA_PORT: Final = 9092
DEFAULT_KAFKA_BOOTSTRAP: Final = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
DEFAULT_INGEST_PORT: Final = 8081
DEFAULT_API_PORT: Final = 8080
DEFAULT_SCORER_METRICS_PORT: Final = 6066  # the first worker's; worker i listens on + i
DEFAULT_EVENT_PARTITIONS: Final = 6
DEFAULT_QUEUE_PARTITIONS: Final = 3
# Only the local stack reads these: where it keeps its files, its broker, monitoring and logs.
DEFAULT_RUN_DIR: Final = ".run/local"
DEFAULT_KAFKA_CONTROLLER_PORT: Final = 9094  # never 9093: Alertmanager's port
DEFAULT_PROMETHEUS_PORT: Final = 9090
DEFAULT_ALERTMANAGER_PORT: Final = 9093
DEFAULT_SCORER_WORKERS: Final = 1
DEFAULT_KAFKA_VERSION: Final = "4.4.0"
DEFAULT_KAFKA_HEAP: Final = "512m"
DEFAULT_KAFKA_SECURITY: Final = "plaintext"
DEFAULT_ALERT_WEBHOOK_URL: Final = "http://127.0.0.1:9099/alerts"
DEFAULT_LOG_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_LOG_BACKUPS: Final = 3


@dataclass(frozen=True)
class SlThresholds:
    """The service-level thresholds X, seconds, per queue (METRICS.md: configuration, per queue).

    SL_THRESHOLDS_S is JSON: a list for every queue ([20, 60]) or an object with a `default` list and
    lists per queue ({"default": [30, 180], "vip": [15, 60]}). Views key each by its seconds ("30")."""

    default: tuple[int, ...] = SL_THRESHOLDS_S
    queues: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def for_queue(self, queue: str) -> tuple[int, ...]:
        return self.queues.get(queue, self.default)

    def all(self) -> frozenset[int]:
        """Every threshold measured in some queue."""
        return frozenset(self.default).union(*self.queues.values())


def _thresholds(path: str, raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 8:
        raise SystemExit(f"{ENV_SL_THRESHOLDS}{path} must be a list of 1 to 8 thresholds in seconds, got {raw!r}")
    for x in raw:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 < x <= 86_400:
            raise SystemExit(f"{ENV_SL_THRESHOLDS}{path}: {x!r} is not a whole number of seconds in 1..86400")
    return tuple(sorted(set(raw)))


def parse_sl_thresholds(raw: str) -> SlThresholds:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{ENV_SL_THRESHOLDS} is not JSON: {exc}") from None
    if isinstance(data, list):
        return SlThresholds(default=_thresholds("", data))
    if not isinstance(data, dict):
        raise SystemExit(f"{ENV_SL_THRESHOLDS} must be a JSON list or an object of lists keyed by queue")
    default = _thresholds(".default", data["default"]) if "default" in data else SL_THRESHOLDS_S
    queues = {q: _thresholds(f"[{q!r}]", v) for q, v in data.items() if q != "default"}
    return SlThresholds(default=default, queues=MappingProxyType(queues))


@lru_cache(maxsize=4)
def _sl_thresholds(raw: str) -> SlThresholds:
    return parse_sl_thresholds(raw) if raw else SlThresholds()


def sl_thresholds() -> SlThresholds:
    """The service-level thresholds as configured (read once per value of the variable)."""
    return _sl_thresholds(os.environ.get(ENV_SL_THRESHOLDS, ""))


def sl_thresholds_for(queue: str) -> tuple[int, ...]:
    """A queue's service-level thresholds X, seconds, ascending."""
    return sl_thresholds().for_queue(queue)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} must be an integer") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} must be a number") from None


@dataclass(frozen=True)
class Topics:
    events: str = field(default_factory=lambda: env_str("TOPIC_EVENTS", "floor.chat-events"))
    dead_letter: str = field(default_factory=lambda: env_str("TOPIC_DEAD_LETTER", "floor.dead-letter"))
    agent_changes: str = field(default_factory=lambda: env_str("TOPIC_AGENT_CHANGES", "floor.agent-changes"))
    partials: str = field(default_factory=lambda: env_str("TOPIC_PARTIALS", "floor.queue-partials"))
    views: str = field(default_factory=lambda: env_str("TOPIC_VIEWS", "floor.queue-views"))
    alerts: str = field(default_factory=lambda: env_str("TOPIC_ALERTS", "floor.alerts"))


class TopicSpec(NamedTuple):
    """A topic as it is created: its name, partitions and whether it is compacted."""

    name: str
    partitions: int
    compacted: bool


def deployment_topics(topics: Topics, event_partitions: int, queue_partitions: int) -> list[TopicSpec]:
    """Every topic created before the services start (`make up`; Kubernetes: kafka-topics.yaml). The
    conversation-keyed ones have event_partitions; the queue-keyed ones queue_partitions, compacted but for the
    partials (a hand-over in bundles, not a store)."""
    return [
        TopicSpec(topics.events, event_partitions, False),
        TopicSpec(topics.dead_letter, event_partitions, False),
        TopicSpec(topics.agent_changes, event_partitions, False),
        TopicSpec(topics.partials, queue_partitions, False),  # bundles, purged once merged (services/scorer/purge.py)
        TopicSpec(topics.views, queue_partitions, True),
        TopicSpec(topics.alerts, queue_partitions, True),
    ]


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = field(default_factory=lambda: env_str("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP))
    event_partitions: int = field(default_factory=lambda: env_int("EVENT_PARTITIONS", DEFAULT_EVENT_PARTITIONS))
    queue_partitions: int = field(default_factory=lambda: env_int("QUEUE_PARTITIONS", DEFAULT_QUEUE_PARTITIONS))
    replication: int = field(default_factory=lambda: env_int("TOPIC_REPLICATION", 1))
    topics: Topics = field(default_factory=Topics)
    security: KafkaSecurity = field(default_factory=KafkaSecurity.from_env)


@dataclass(frozen=True)
class StaffingSettings:
    """The staffing defaults as configured: the API's /v1/staffing and its alert signals use them."""

    aht_s: float = field(default_factory=lambda: env_float("STAFFING_DEFAULT_AHT_S", STAFFING_DEFAULT_AHT_S))
    concurrency: float = field(
        default_factory=lambda: env_float("STAFFING_DEFAULT_CONCURRENCY", STAFFING_DEFAULT_CONCURRENCY)
    )
