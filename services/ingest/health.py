"""/healthz: is the producer started and the broker reachable? Asks Kafka at most once per TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .producer import EventProducer


class HealthCache:
    def __init__(
        self,
        producer: EventProducer,
        ttl_s: float = 2.0,
        ping_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._ttl_s = ttl_s
        self._ping_timeout_s = ping_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._ok = False
        self.pings = 0  # how many times the broker was actually asked

    def _fresh(self) -> bool:
        return self._checked_at is not None and self._clock() - self._checked_at < self._ttl_s

    async def kafka_state(self) -> str:
        """`connected`, `connecting` (never reached yet) or `unreachable`."""
        if not self._producer.connected:
            return "connecting"
        if not self._fresh():
            async with self._lock:  # concurrent probes share one broker round trip
                if not self._fresh():
                    self.pings += 1
                    self._ok = await self._producer.ping(self._ping_timeout_s)
                    self._checked_at = self._clock()
        return "connected" if self._ok else "unreachable"
