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
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaFaustProducer
from faust.types import ProducerT
from faust.types.tuples import FutureMessage


class StateProducer(AIOKafkaFaustProducer):  # type: ignore[misc]  # faust's driver classes are untyped
    """Faust's aiokafka producer whose flush returns only when every buffered write given to it before
    the flush is acknowledged by Kafka (with acks=all: by every in-sync replica)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacked: set[FutureMessage] = set()

    def send_soon(self, fut: FutureMessage) -> None:
        self.unacked.add(fut)
        fut.add_done_callback(self.unacked.discard)  # resolved by Topic._on_published on the broker's ack
        super().send_soon(fut)

    async def flush(self) -> None:
        waiting = list(self.unacked)  # what was written before the offsets being committed were taken
        await super().flush()
        if waiting:
            # gather, not wait: a failed write raises here, so the consumer does not commit.
            await asyncio.gather(*waiting)


class ScorerApp(faust.App):  # type: ignore[misc]
    """faust.App whose producer is a StateProducer (the only change)."""

    def _new_producer(self) -> ProducerT:
        return StateProducer(self.transport, loop=self.loop, beacon=self.beacon)
