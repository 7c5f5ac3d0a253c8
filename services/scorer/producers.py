"""The scorer's producers: offsets are committed only after the state writes they cover are acknowledged.

Faust commits a batch of offsets in `Consumer._commit_offsets` (faust/transport/consumer.py) right after
`await app.producer.flush()`. That flush is `ProducerBuffer.flush()` and then aiokafka's own flush
(faust/transport/drivers/aiokafka.py, `Producer.flush`), and neither covers every table write:

- table writes (`Table.send_changelog` -> `Topic.send_soon`) wait in Faust's `ProducerBuffer`, a queue
  that one task hands to aiokafka a message at a time; handing one over blocks while its partition's
  batch is full and the previous request is unacknowledged;
- `ProducerBuffer.flush_atmost` (faust/transport/producer.py) waits at most 0.1 s for the next hand-over
  and, on timeout, returns with the queue not empty, and `size` never counts the message being handed over;
- aiokafka's flush waits only for the batches already in its accumulator.

So when the broker is slow to acknowledge (a loaded machine, a throttle, a GC pause), offsets are committed
while the changelog writes of the events they cover still sit in Faust's queue, and a crash then loses
that state: the restarted worker restores the table without them and resumes after those events.

`StateProducer.flush` closes that hole with Faust's own futures: every message given to `send_soon`
(Faust's path for changelog writes) is remembered until Kafka acknowledges it, and flush awaits all that
were given before it was called. A write that fails raises out of flush, so nothing is committed and the
worker crashes: its events are scored again.

Faust's conductor also stops delivering records to every stream while more than `ProducerBuffer.max_messages`
(100) table writes wait in that queue (`wait_until_ebb`). A batch's write-back alone can be more than that (at
floor x61 a worker writes ~2.5 table records per event: conversations, agents, stage 2's partials), so with 100 the
conductor stood still ~20 % of the time on one worker at 1,000 events/s, and two workers' figures came later
(benchmarks/PROFILE.md, "Fetches held 1.5 s, and Faust's producer buffer"). `StateProducer` takes the bound as a
setting (SCORER_STATE_BUFFER_MAX, 10,000); the commit's flush still waits for every write, so a larger bound can
delay a commit, never lose a write.

Outputs that are derived from state and re-sent whole after a rebuild (partials, views) go through a second
producer, `OutputProducer`, with linger and large batches: aiokafka keeps one request in flight per broker
and producer, so megabytes of views per tick on the state producer would make the changelog writes (and
so the commits and stage 1) wait behind them. Per-event outputs (agent changes, dead letters) stay on
Faust's producer: they are not re-derived, so the commit's flush must cover them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import Producer as AIOKafkaFaustProducer
from faust.transport.producer import ProducerBuffer
from faust.types import ConsumerT, ProducerT
from faust.types.tuples import FutureMessage, PendingMessage
from mode import Service

from services.core.kafka_security import client_kwargs

from .consumer import FAUST_FETCH_MAX_WAIT_MS, ScorerConsumer


class StateProducer(AIOKafkaFaustProducer):  # type: ignore[misc]  # faust's driver classes are untyped
    """Faust's aiokafka producer whose flush returns only when every buffered write given to it before
    the flush is acknowledged by Kafka (with acks=all: by every in-sync replica)."""

    on_write: Callable[[PendingMessage], None] | None = None  # told of each table write (the worker counts them)

    def __init__(self, *args: Any, buffer_max: int = ProducerBuffer.max_messages, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacked: set[FutureMessage] = set()
        self.buffer.max_messages = buffer_max  # read by the conductor's wait_until_ebb (module docstring)

    def send_soon(self, fut: FutureMessage) -> None:
        self.unacked.add(fut)
        fut.add_done_callback(self.unacked.discard)  # resolved by Topic._on_published on the broker's ack
        if self.on_write is not None:
            self.on_write(fut.message)
        super().send_soon(fut)

    async def flush(self) -> None:
        waiting = list(self.unacked)  # what was written before the offsets being committed were taken
        await super().flush()
        if waiting:
            # gather, not wait: a failed write raises here, so the consumer does not commit.
            await asyncio.gather(*waiting)


class OutputProducer(Service):  # type: ignore[misc]  # mode is untyped
    """An aiokafka producer for what is rebuilt from state: acks=all and idempotent (a view or partial
    acknowledged is there, once and in order despite retries), batched for throughput instead of latency."""

    def __init__(self, bootstrap: str, client_id: str, *, linger_ms: int, max_batch_size: int,
                 compression_type: str | None, **kwargs: Any) -> None:
        self.options: dict[str, Any] = {
            "bootstrap_servers": bootstrap, "client_id": client_id, "acks": "all", "enable_idempotence": True,
            "linger_ms": linger_ms, "max_batch_size": max_batch_size, "compression_type": compression_type,
            **client_kwargs(),  # the same SASL/TLS settings as every client (services/core/kafka_security.py)
        }
        self.producer: AIOKafkaProducer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.producer = AIOKafkaProducer(**self.options)
        await self.producer.start()

    async def on_stop(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()  # sends what still lingers first

    async def flush(self) -> None:
        """Wait until everything handed over so far is acknowledged."""
        if self.producer is not None:
            await self.producer.flush()

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None) -> None:
        """Hand a record over (it waits only while its partition's batch is full and unsent). Once stopped (the
        worker shutting down: mode stops it before the app's tick tasks), records are dropped: partials and views
        are rebuilt from state and re-sent whole by whoever holds the partitions next."""
        if self.producer is None:
            if self.should_stop:  # mode's own: set by stop() before on_stop
                return
            raise RuntimeError("output producer not started")
        await self.producer.send(topic, value, key=key, partition=partition)


class ScorerApp(faust.App):  # type: ignore[misc]
    """faust.App whose producer is a StateProducer and consumer a ScorerConsumer, with an optional OutputProducer
    started before the agents and stopped after them."""

    outputs: OutputProducer | None = None
    state_buffer_max: int = ProducerBuffer.max_messages  # set before the producer is first asked for
    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS  # set before the consumer is first asked for (consumer.py)

    def _new_consumer(self) -> ConsumerT:
        # As faust.App._new_consumer, with our class (its thread reads fetch_max_wait_ms from this app).
        return ScorerConsumer(
            self.transport, callback=self.topics.on_message, loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked, on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
        )

    def _new_producer(self) -> ProducerT:
        return StateProducer(self.transport, loop=self.loop, beacon=self.beacon, buffer_max=self.state_buffer_max)

    def on_init_dependencies(self) -> Iterable[Any]:
        first = [self.outputs] if self.outputs is not None else []
        return [*first, *super().on_init_dependencies()]
