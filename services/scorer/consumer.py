"""The scorer's Kafka consumer: Faust's, with the broker's hold on a fetch bounded.

aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition whose records it
fetched before and the application has not taken yet (aiokafka/consumer/fetcher.py, `_get_actions_per_node`).
Faust's driver asks the broker to hold a fetch until one of its partitions has data, for up to 1.5 s
(`fetch_max_wait_ms=1500` in faust/transport/drivers/aiokafka.py, not a setting). So when a worker is a little
behind, the next fetch is built while the busy partitions' records still wait to be taken: it asks only for quiet
ones (the partials and agent-changes partitions of a moment without traffic), the broker holds it the whole 1.5 s,
and the events that came in meanwhile wait behind it, however idle the worker. With one broker (every partition on
it) a worker at 1,000 events/s went from ~45 fetches a second of ~20 ms to ~4 of 0.3-1.5 s, and fell further behind
with each (benchmarks/PROFILE.md, "Fetches held 1.5 s"). `ScorerConsumer` sets aiokafka's own option to
SCORER_FETCH_MAX_WAIT_MS instead; a fetch with data is answered at once whatever it is.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer

FAUST_FETCH_MAX_WAIT_MS = 1500  # what Faust's driver passes to aiokafka


class FetchWait(Protocol):
    fetch_max_wait_ms: int  # the app's (ScorerApp), from SCORER_FETCH_MAX_WAIT_MS


class ScorerConsumerThread(AIOKafkaConsumerThread):  # type: ignore[misc]  # faust's driver classes are untyped
    """Faust's consumer thread, whose aiokafka consumer holds an empty fetch at most the app's
    `fetch_max_wait_ms`."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka's own option (AIOKafkaConsumer's fetch_max_wait_ms): its fetcher is made from it at start().
        consumer._fetch_max_wait_ms = cast(FetchWait, self.app).fetch_max_wait_ms
        return consumer


class ScorerConsumer(AIOKafkaFaustConsumer):  # type: ignore[misc]
    def _new_consumer_thread(self) -> ScorerConsumerThread:
        return ScorerConsumerThread(self, loop=self.loop, beacon=self.beacon)
