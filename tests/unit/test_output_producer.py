"""The output producer's hand-over before it started and after it stopped (no broker needed: neither reaches one)."""

from __future__ import annotations

import pytest

from services.scorer.producers import OutputProducer


def producer() -> OutputProducer:
    return OutputProducer("127.0.0.1:1", "test-outputs", linger_ms=10, max_batch_size=16_384, compression_type=None)


async def test_a_record_handed_over_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await producer().send("views", b"k", b"v", 0)


async def test_records_handed_over_while_the_worker_shuts_down_are_dropped() -> None:
    """mode stops the producer before the app's tick tasks: a tick that still runs must not crash the worker
    (its partials and views are re-sent whole by the next owner of the partitions)."""
    out = producer()
    await out.stop()
    await out.send("views", b"k", b"v", 0)  # raised RuntimeError before: the worker logged a crash on every stop
    assert out.producer is None
