"""A simulated hour through real Kafka and real Faust workers equals the reference model:
with one worker, with a second worker joining mid-run (a rebalance), with a worker
SIGKILLed mid-run and restarted, and with a worker SIGKILLed right after committing offsets
while the broker was slow to acknowledge its state writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.testing import KafkaBroker
from services.core.conversation import Conversation
from services.core.events import EventError, event_from_record
from services.core.wire import (
    DAY_VIEW_TAG,
    decode_conversation_record,  # the conversations table's value format
)
from services.kafka_util.read import read_to_end
from services.simulator.model import FloorModel, SimConfig
from tests.reference import reference_day_sums, reference_views
from tests.unit.test_scorer_properties import assert_matches_reference

from .kafka_admin import committed_offsets, set_produce_quota, topic_starts
from .scorer_harness import ScorerRun, produce

START = 1_795_600_800_000  # a fixed hour, so the run is reproducible
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def hour_of_events() -> list[dict[str, Any]]:
    model = FloorModel(SimConfig(start_ms=START, seed=11, run_id="exact"))
    events = model.events_until(START + HOUR_MS)
    assert len(events) >= 50_000, len(events)
    return [dict(e) for e in events]


@pytest.fixture(scope="module")
async def events_topic(kafka: KafkaBroker, hour_of_events: list[dict[str, Any]]) -> str:
    topic = f"exact-{uuid.uuid4().hex[:6]}.chat-events"
    await kafka.acreate_topic(topic, 6)
    await produce(kafka.bootstrap, topic, hour_of_events)
    return topic


@pytest.fixture(scope="module")
def expected(hour_of_events: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    now = max(int(e["ts"]) for e in hour_of_events)
    return reference_views(hour_of_events, now)


@pytest.fixture(scope="module")
def expected_days(hour_of_events: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, int]]:
    """The scorecard's day sums of the hour by the reference model (every run below, one worker, two, or killed
    and restarted, must end with them on the views topic)."""
    want = {(DAY_VIEW_TAG, *key): sums for key, sums in reference_day_sums(hour_of_events).items()}
    assert any(key[4].startswith("@agent:") for key in want)
    return want


async def wait_scored(run: ScorerRun, n: int, deadline: float, poll_s: float) -> bool:
    """Wait until the run's workers have scored at least n events (polling every poll_s), or until
    the deadline (time.monotonic()) passed; whether they did."""
    while time.monotonic() < deadline:
        if await run.metric_sum("floorwatch_scorer_events_total") >= n:
            return True
        await asyncio.sleep(poll_s)
    return False


async def wait_until_equal(run: ScorerRun, want: dict[Any, dict[str, Any]], total: int, timeout: float = 420,
                           want_days: dict[tuple[Any, ...], dict[str, int]] | None = None) -> None:
    """Wait until every event was scored and the views (and the day records) settled, then require equality."""
    deadline = time.monotonic() + timeout
    await wait_scored(run, total, deadline, poll_s=1)
    last_error: AssertionError | None = None
    while time.monotonic() < deadline:
        got = await run.views()
        try:
            assert_matches_reference(got, want)
            if want_days is not None:
                assert await run.day_records() == want_days
            return
        except AssertionError as exc:  # views still settling: the next tick publishes the rest
            last_error = exc
        await asyncio.sleep(1)
    assert last_error is not None
    raise last_error


@contextlib.asynccontextmanager
async def first_worker_running(
    kafka: KafkaBroker, topic: str, name: str, extra_env: dict[str, str] | None = None,
) -> AsyncIterator[ScorerRun]:
    """A new run (its own topics and group) scoring `topic`, with worker 0 started and healthy;
    every worker stopped on the way out."""
    run = ScorerRun(kafka, f"{name}-{uuid.uuid4().hex[:6]}", topic, extra_env=extra_env or {})
    await run.create_topics()
    try:
        run.start_worker(0)
        await run.wait_healthy(0)
        yield run
    finally:
        run.stop()


async def test_one_worker_equals_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    async with first_worker_running(kafka, events_topic, "one") as run:
        # The hour was in the topic before the worker started: while it is scored, the events' lag shows a backlog
        # (a lag that always reads 0 fails here; the per-record cost alone keeps the hour longer than a tick).
        seen_backlog = False
        deadline = time.monotonic() + 120
        while not seen_backlog and time.monotonic() < deadline and (
                await run.metric_sum("floorwatch_scorer_events_total") < len(hour_of_events)):
            seen_backlog = any(v > 0 for name, _, v in await lag_series(run) if name == EVENTS_LAG)
            await asyncio.sleep(0.2)
        assert seen_backlog, await lag_series(run)
        await wait_until_equal(run, expected, len(hour_of_events), want_days=expected_days)
        # Every stage's lag is exported and, with everything scored, comes down to 0: the events' per partition
        # of the topic, the agent changes' and the partials' (stage 2's) per partition of theirs.
        deadline = time.monotonic() + 60
        lags = await lag_series(run)
        while time.monotonic() < deadline and not all_stages_caught_up(lags):
            await asyncio.sleep(0.5)
            lags = await lag_series(run)
        assert all_stages_caught_up(lags), lags
        # The partials topic is a hand-over: what stage 2 committed is deleted (services/scorer/purge.py), on every
        # partition that had partials, and never past what it committed.
        partials = run.topics["TOPIC_PARTIALS"]
        deadline = time.monotonic() + 60
        starts = await topic_starts(kafka.bootstrap, partials, run.queue_partitions)
        while time.monotonic() < deadline and not (starts and all(starts.values())):
            await asyncio.sleep(0.5)
            starts = await topic_starts(kafka.bootstrap, partials, run.queue_partitions)
        committed = await committed_offsets(kafka.bootstrap, f"{run.prefix}-scorer", partials)
        assert starts and all(starts.values()), starts
        assert all(start <= committed[p] for p, start in starts.items()), (starts, committed)



EVENTS_LAG, STAGE_LAG = "floorwatch_scorer_consumer_lag", "floorwatch_scorer_stage_lag"


async def lag_series(run: ScorerRun) -> list[tuple[str, dict[str, str], float]]:
    """Worker 0's lag gauges as exported: each series' name, labels and value."""
    text = await run.metrics_text(0, EVENTS_LAG, STAGE_LAG)
    return [(sample.name, sample.labels, sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples]


def all_stages_caught_up(lags: list[tuple[str, dict[str, str], float]]) -> bool:
    """A series for each of the events topic's 6 partitions and for both internal stages, every one at 0."""
    stages = {labels["stage"] for name, labels, _ in lags if name == STAGE_LAG}
    events = sum(1 for name, _, _ in lags if name == EVENTS_LAG)
    return stages == {"agents", "queues"} and events == 6 and all(v == 0 for _, _, v in lags)


async def second_worker_joins(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]], name: str, extra_env: dict[str, str] | None = None,
) -> None:
    async with first_worker_running(kafka, events_topic, name, extra_env) as run:
        # Let the first worker get going, then add a second: partitions move mid-run.
        assert await wait_scored(run, len(hour_of_events) // 5, time.monotonic() + 120, poll_s=0.2)
        run.start_worker(1)
        await run.wait_healthy(1)
        await wait_until_equal(run, expected, 0, want_days=expected_days)


async def test_two_workers_with_a_rebalance_equal_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    await second_worker_joins(kafka, events_topic, expected, hour_of_events, expected_days, "two")


async def test_two_workers_with_a_rebalance_and_standbys_on_rocksdb_equal_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    """With a standby replica of every table (each worker also follows the other's changelogs, so a survivor
    takes a dead worker's partitions over without restoring them), on production's store."""
    await second_worker_joins(kafka, events_topic, expected, hour_of_events, expected_days, "standby",
                              {"SCORER_STORE": "rocksdb://", "SCORER_STANDBY_REPLICAS": "1"})


async def test_sigkill_mid_run_equals_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    async with first_worker_running(kafka, events_topic, "kill") as run:
        assert await wait_scored(run, len(hour_of_events) // 3, time.monotonic() + 120, poll_s=0.2)
        run.kill_worker(0)  # SIGKILL: no flush, no commit, no goodbye
        run.start_worker(0)
        await run.wait_healthy(0)
        await wait_until_equal(run, expected, 0, want_days=expected_days)


async def test_sigkill_mid_run_on_rocksdb_equals_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    """As production runs it (SCORER_STORE=rocksdb://, the default): the tables kept on disk survive the
    SIGKILL beside their changelogs, and the restarted worker's figures are still exactly the reference's."""
    async with first_worker_running(kafka, events_topic, "rocks", {"SCORER_STORE": "rocksdb://"}) as run:
        assert await wait_scored(run, len(hour_of_events) // 3, time.monotonic() + 120, poll_s=0.2)
        run.kill_worker(0)
        run.start_worker(0)
        await run.wait_healthy(0)
        await wait_until_equal(run, expected, 0, want_days=expected_days)


# What the throttled worker may produce, in bytes/s: a small part of what it writes while scoring flat out, so
# its writes wait seconds for their acknowledgements, and still enough for a commit to get through eventually.
SLOW_ACKS_QUOTA = 50_000
SCORED_UNDER_THROTTLE = 1_000  # events scored with acknowledgements lagging, before the commit awaited


async def test_sigkill_after_a_commit_with_acks_lagging_equals_reference(
    kafka: KafkaBroker, events_topic: str, expected: dict[Any, dict[str, Any]], hour_of_events: list[dict[str, Any]],
    expected_days: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    """Offsets are committed only after every state write they cover is acknowledged. The broker is made slow
    to acknowledge the worker's writes (a produce quota on its client id: Kafka answers, then stops reading
    that connection for the throttle time), the worker scores on and commits, and is SIGKILLed right after
    a commit: nothing the commit covers may be lost. Faust's own flush gave up after 0.1 s without progress
    and let such a commit through with changelog writes still queued in the worker, which the kill lost."""
    client_id = f"slow-acks-{uuid.uuid4().hex[:6]}"
    run = ScorerRun(kafka, f"acks-{uuid.uuid4().hex[:6]}", events_topic, extra_env={"BROKER_CLIENT_ID": client_id})
    group = f"{run.prefix}-scorer"
    await run.create_topics()
    try:
        run.start_worker(0)
        await run.wait_healthy(0)
        assert await wait_scored(run, len(hour_of_events) // 5, time.monotonic() + 120, poll_s=0.2)
        await set_produce_quota(kafka.bootstrap, client_id, SLOW_ACKS_QUOTA)
        scored = await run.metric_sum("floorwatch_scorer_events_total")
        assert await wait_scored(run, int(scored) + SCORED_UNDER_THROTTLE, time.monotonic() + 180, poll_s=0.2)
        # The next commit from here on covers events whose state writes queued behind the throttle.
        before = await committed_offsets(kafka.bootstrap, group, events_topic)
        deadline = time.monotonic() + 180
        while await committed_offsets(kafka.bootstrap, group, events_topic) == before:
            assert time.monotonic() < deadline, "no offsets committed with the acknowledgements lagging"
            await asyncio.sleep(0.05)
        run.kill_worker(0)  # SIGKILL: whatever the worker had not got acknowledged is gone
        await set_produce_quota(kafka.bootstrap, client_id, None)
        committed = await committed_offsets(kafka.bootstrap, group, events_topic)
        missing = await committed_but_not_in_changelog(kafka, events_topic, f"{group}-conversations-changelog",
                                                       committed, run.event_partitions)
        assert not missing, f"{len(missing)} committed events are in no conversation's changelog state: {missing[:5]}"
        run.start_worker(0)
        await run.wait_healthy(0)
        await wait_until_equal(run, expected, 0, want_days=expected_days)
    finally:
        run.stop()
        await set_produce_quota(kafka.bootstrap, client_id, None)


async def committed_but_not_in_changelog(
    kafka: KafkaBroker, events_topic: str, changelog: str, committed: dict[int, int], partitions: int
) -> list[str]:
    """The conversation events below the committed offsets whose event id the conversation's latest state in
    the changelog has not seen: what a restarted worker would never score again."""
    latest: dict[bytes, bytes | None] = {}
    events: list[tuple[int, int, bytes]] = []

    def on_changelog(rec: Any) -> None:
        latest[rec.key] = rec.value

    def on_event(rec: Any) -> None:
        events.append((rec.partition, rec.offset, rec.value))

    await read_to_end(kafka.bootstrap, changelog, range(partitions), on_changelog)
    await read_to_end(kafka.bootstrap, events_topic, range(partitions), on_event)
    missing: list[str] = []
    for partition, offset, value in events:
        if offset >= committed.get(partition, 0):
            continue
        try:
            ev = event_from_record(value)
        except EventError:
            continue
        if ev.type == "agent.status":  # not conversation state: forwarded to the agents stage
            continue
        raw = latest.get(ev.key.encode())
        record = None if raw is None else decode_conversation_record(raw)[1]
        if record is None or not Conversation.from_json(record).has_seen(ev.event_id):
            missing.append(ev.event_id)
    return missing
