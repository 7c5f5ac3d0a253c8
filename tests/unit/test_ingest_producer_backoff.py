"""Ingest's producer backs off between failed metadata refreshes (no busy loop while a broker is away)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from services.ingest.producer import back_off_failed_metadata


class FakeClient:
    def __init__(self, results: list[bool]) -> None:
        self.results = list(results)
        self.calls = 0

    async def _metadata_update(self, cluster_metadata: Any, topics: Any) -> bool:
        self.calls += 1
        return self.results.pop(0)


async def timed(client: Any) -> tuple[bool, float]:
    started = time.monotonic()
    ok = await client._metadata_update(None, set())
    return ok, time.monotonic() - started


async def test_failed_refreshes_wait_longer_each_time_and_a_success_resets() -> None:
    client = FakeClient([False, False, False, True, False])
    assert back_off_failed_metadata(client, first_s=0.05, max_s=0.1)
    waits = [await timed(client) for _ in range(5)]
    assert [ok for ok, _ in waits] == [False, False, False, True, False]
    assert 0.045 <= waits[0][1] < 0.09  # first failure: first_s
    assert 0.095 <= waits[1][1] < 0.15  # doubled ...
    assert 0.095 <= waits[2][1] < 0.15  # ... up to max_s
    assert waits[3][1] < 0.02  # a success returns at once
    assert 0.045 <= waits[4][1] < 0.09  # and starts the backoff over
    assert client.calls == 5


async def test_many_waiters_share_one_slow_failure() -> None:
    """The sender and the health probe may both wait on a refresh: each failed call takes the backoff."""
    client = FakeClient([False, False])
    back_off_failed_metadata(client, first_s=0.05, max_s=0.05)
    started = time.monotonic()
    await asyncio.gather(client._metadata_update(None, None), client._metadata_update(None, None))
    assert time.monotonic() - started < 0.09


async def test_the_pinned_aiokafka_has_the_method_it_wraps() -> None:
    """If an aiokafka upgrade renames it, this fails rather than the busy loop silently coming back."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert back_off_failed_metadata(producer.client)


def test_a_client_without_the_method_is_left_alone() -> None:
    assert not back_off_failed_metadata(object())
