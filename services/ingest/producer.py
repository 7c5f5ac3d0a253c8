"""The Kafka side of ingest behind a small interface, so the HTTP layer can be tested alone.

`KafkaEventProducer` connects in the background (the service starts and answers /healthz 503
until the broker is reachable), sends a whole batch with `send()` per record and then awaits
all delivery futures together, so one batch costs one produce round trip per broker (as long
as each partition's share fits in one record batch, `kafka_max_batch_bytes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber

from services.core.kafka_security import client_kwargs

log = logging.getLogger("floorwatch.ingest.producer")

Record = tuple[bytes, bytes]  # (key, value)


class ProduceError(Exception):
    """A batch was not (fully) acknowledged. `acked` holds the positions that were."""

    def __init__(self, reason: str, acked: frozenset[int] = frozenset()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.acked = acked


class RecordsTooLarge(ProduceError):
    """Every record was acknowledged except `refused`: records Kafka will never take (too large for
    the producer's max_request_size or the broker's message.max.bytes). Their events are refused one
    by one (422); retrying them would fail for ever, so they must never turn the batch into a 503."""

    def __init__(self, refused: dict[int, str], acked: frozenset[int]) -> None:
        super().__init__(f"{len(refused)} records too large for Kafka", acked)
        self.refused = refused


def _too_large(err: BaseException | None) -> bool:
    return isinstance(err, MessageSizeTooLargeError)


class EventProducer(Protocol):
    """What the HTTP layer needs from Kafka."""

    async def start(self) -> None:
        """Begin connecting; must return promptly even if the broker is down."""

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""

    @property
    def connected(self) -> bool:
        """True once the producer has reached the broker at least once."""

    async def send_batch(self, records: Sequence[Record], timeout_s: float) -> None:
        """Return only when every record is acknowledged; else raise `ProduceError`."""

    async def ping(self, timeout_s: float) -> bool:
        """Is the broker reachable right now (one metadata round trip)?"""


def _error_of(fut: asyncio.Future[Any]) -> BaseException | None:
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()


def _consume_result(fut: asyncio.Future[Any]) -> None:
    # Keeps asyncio from logging "exception was never retrieved" for abandoned futures.
    if not fut.cancelled():
        fut.exception()


class _QuietWhileConnecting(logging.Filter):
    """aiokafka logs an ERROR per failed bootstrap; while we retry, our own warning says it."""

    def __init__(self, producer: KafkaEventProducer) -> None:
        super().__init__()
        self._producer = producer

    def filter(self, record: logging.LogRecord) -> bool:
        return self._producer.connected or not record.getMessage().startswith("Unable connect to")


_AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.client")

METADATA_BACKOFF_FIRST_S = 0.1
METADATA_BACKOFF_MAX_S = 1.0


def back_off_failed_metadata(
    client: Any, first_s: float = METADATA_BACKOFF_FIRST_S, max_s: float = METADATA_BACKOFF_MAX_S
) -> bool:
    """Make each failed metadata refresh of an aiokafka client take a little while (first_s, doubling
    to max_s while refreshes keep failing; back to first_s after a success). Returns False when the
    client has no such method (another aiokafka): nothing was changed.

    Why: aiokafka 0.14's sender, while a partition has no known leader, asks for a refresh and waits
    for it, then asks again at once. A broker that shuts down while writes are in flight answers
    NotLeaderForPartition and its last metadata says "no leader"; from then until it is back every
    refresh fails at once (connection refused) and the sender spins: thousands of connect attempts
    and two ERROR log lines each, per second, for the whole outage (a quarter of a core, measured).
    The Java client backs off the same way (retry.backoff.ms up to retry.backoff.max.ms).
    """
    update = getattr(client, "_metadata_update", None)
    if update is None or not callable(update):
        return False
    delay = first_s

    async def _metadata_update(cluster_metadata: Any, topics: Any) -> Any:
        nonlocal delay
        ok = await update(cluster_metadata, topics)
        if ok:
            delay = first_s
        else:
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)
        return ok

    client._metadata_update = _metadata_update
    return True


class KafkaEventProducer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        linger_ms: int = 0,
        max_batch_bytes: int = 1_000_000,
        client_id: str = "floorwatch-ingest",
        retry_max_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.compression = "lz4" if has_lz4() else None
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "compression_type": self.compression,
            "max_batch_size": max_batch_bytes,
            "max_request_size": max(max_batch_bytes, 1_048_576),
            **client_kwargs(),
        }
        self._retry_max_s = retry_max_s
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self._log_filter = _QuietWhileConnecting(self)
        self._renewing = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    @property
    def kafka(self) -> AIOKafkaProducer | None:
        """The underlying aiokafka producer once connected (tests count its requests)."""
        return self._producer

    async def start(self) -> None:
        if self._connector is None:
            for name in _AIOKAFKA_LOGGERS:
                logging.getLogger(name).addFilter(self._log_filter)
            self._connector = asyncio.create_task(self._connect(), name="ingest-kafka-connect")

    async def _connect(self) -> None:
        delay = 0.25
        attempt = 0
        while True:
            attempt += 1
            producer = AIOKafkaProducer(**self._options)
            back_off_failed_metadata(producer.client)
            try:
                await producer.start()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                # Quiet: the first failure and then about once a minute.
                if attempt == 1 or attempt % 12 == 0:
                    log.warning(
                        "kafka not reachable yet, retrying",
                        extra={"bootstrap": self.bootstrap, "attempt": attempt, "error": str(exc)},
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            self._producer = producer
            log.info(
                "kafka producer connected",
                extra={
                    "bootstrap": self.bootstrap,
                    "topic": self.topic,
                    "attempts": attempt,
                    "compression": self.compression or "none",
                },
            )
            return

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
            self._connector = None
        for name in _AIOKAFKA_LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send_batch(self, records: Sequence[Record], timeout_s: float) -> None:
        producer = self._producer
        if producer is None:
            raise ProduceError("not connected to Kafka yet")
        if not records:
            return
        futures: list[asyncio.Future[Any]] = []
        client_refused: set[int] = set()  # larger than max_request_size: never sent
        deadline = time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                # Queue every record first (no round trip per record), then wait for all acks.
                for key, value in records:
                    try:
                        futures.append(await producer.send(self.topic, value=value, key=key))
                    except MessageSizeTooLargeError as exc:
                        # This record only: a failed future in its place, the batch goes on.
                        client_refused.add(len(futures))
                        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                        refused.set_exception(exc)
                        futures.append(refused)
        except TimeoutError:
            reason = f"Kafka did not take the batch within {timeout_s:g} s"
            if producer.client.cluster.partitions_for_topic(self.topic) is None:
                reason += f" (topic {self.topic!r} is not known to the broker: is it created?)"
            raise self._failed(futures, reason) from None
        except Exception as exc:
            raise self._failed(futures, f"Kafka refused the batch: {exc!r}") from None
        remaining = max(deadline - time.monotonic(), 0.001)
        _done, pending = await asyncio.wait(futures, timeout=remaining)
        if pending:
            raise self._failed(futures, f"Kafka did not acknowledge the batch within {timeout_s:g} s")
        errors = [err for f in futures if (err := _error_of(f)) is not None and not _too_large(err)]
        if errors:
            if self._broken(producer, errors):
                await self._renew(producer)  # this batch is a 503; the next one gets a working producer
            reason = f"Kafka failed {len(errors)} of {len(records)} records: {errors[0]!r}"
            raise self._failed(futures, reason)
        # The broker judges a whole record batch (message.max.bytes): small records that shared a partition's
        # batch with a large one were refused with it. And an idempotent producer whose batch was refused has
        # given those sequence numbers away: its next batch to that partition would be refused as out of order
        # and stop its sender for good (every later event a 503, seen against a real broker). So: a new
        # producer, then each refused record sent again on its own, one at a time (each a batch alone); only
        # those still refused alone are too large.
        again = [i for i, f in enumerate(futures) if _too_large(_error_of(f)) and i not in client_refused]
        if again:
            producer = await self._renew(producer)
        for i in again:
            key, value = records[i]
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                    futures[i] = await producer.send(self.topic, value=value, key=key)
                    await asyncio.wait([futures[i]])
            except TimeoutError:
                raise self._failed(futures, f"Kafka did not acknowledge the batch within {timeout_s:g} s") from None
            except Exception as exc:
                raise self._failed(futures, f"Kafka refused a record sent again alone: {exc!r}") from None
            if _too_large(err := _error_of(futures[i])):
                producer = await self._renew(producer)  # its sequence moved on again: start afresh once more
            elif err is not None:
                raise self._failed(futures, f"Kafka failed a record sent again alone: {err!r}")
        too_large = {
            i: f"the event is {len(records[i][1])} bytes as a Kafka record, more than Kafka accepts"
            for i, f in enumerate(futures) if _too_large(_error_of(f))
        }
        if too_large:
            raise RecordsTooLarge(too_large, self._failed(futures, "").acked)

    @staticmethod
    def _broken(producer: AIOKafkaProducer, errors: Sequence[BaseException]) -> bool:
        """Has this producer stopped for good? aiokafka ends its sender on OutOfOrderSequenceNumber."""
        sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        dead = sender_task is not None and sender_task.done()
        return dead or any(isinstance(e, OutOfOrderSequenceNumber) for e in errors)

    async def _renew(self, broken: AIOKafkaProducer) -> AIOKafkaProducer:
        """Replace `broken` with a new, started producer (a new producer id: sequences start afresh); other
        requests that still hold `broken` finish or fail with it. Concurrent callers share one replacement."""
        async with self._renewing:
            if self._producer is not broken and self._producer is not None:
                return self._producer
            fresh = AIOKafkaProducer(**self._options)
            back_off_failed_metadata(fresh.client)
            await fresh.start()
            self._producer = fresh
            log.warning("kafka producer replaced", extra={"bootstrap": self.bootstrap, "topic": self.topic})
        with contextlib.suppress(Exception):
            await broken.stop()
        return fresh

    @staticmethod
    def _failed(futures: list[asyncio.Future[Any]], reason: str) -> ProduceError:
        acked = frozenset(i for i, f in enumerate(futures) if f.done() and _error_of(f) is None)
        for fut in futures:
            fut.add_done_callback(_consume_result)
        return ProduceError(reason, acked)

    async def ping(self, timeout_s: float) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True
