"""Every setting, read from environment variables, with its documented default (.env.example).

One home for names shared by services: topic names, ports, windows, thresholds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from .kafka_security import KafkaSecurity

WINDOWS: Final[dict[str, int]] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
SL_THRESHOLDS_S: Final[tuple[int, ...]] = (30, 180)
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


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = field(default_factory=lambda: env_str("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    event_partitions: int = field(default_factory=lambda: env_int("EVENT_PARTITIONS", 6))
    queue_partitions: int = field(default_factory=lambda: env_int("QUEUE_PARTITIONS", 3))
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
