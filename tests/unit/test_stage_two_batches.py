"""Stage 2 merges partials in batches and writes each key to its table once per batch (`QueueStage.flush`).

The table is what a restart or a new owner rebuilds from, so a batch must leave it exactly as writing every record
in turn would have, whatever the batch boundaries (a key re-sent within a batch, a narrow bucket and the widened one
that replaces it in one batch), and the views must not change either.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.wire import parse_partial_key
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import PipelineMetrics
from services.scorer.stages import Out, QueueStage

from .test_bucket_widths import floor_hour

Op = tuple[str, Any, Any, Any]  # ("partial", key, value, partition) or ("tick", now_ms, fast, None)


def recorded_run() -> tuple[InProcessScorer, list[Op]]:
    """A floor's 80 minutes through the in-process scorer: every partial stage 2 got, and its ticks, in order."""
    scorer = InProcessScorer(hand_on=False)
    ops: list[Op] = []
    merge, tick = scorer.queues.on_event, scorer.queues.tick

    def on_event(key: bytes | None, value: bytes | None, partition: int, local: Any = None) -> None:
        ops.append(("partial", key, value, partition))
        merge(key, value, partition, local)

    def on_tick(wall_ms: int, *, fast: bool = False) -> tuple[list[Out], list[Out]]:
        ops.append(("tick", wall_ms, fast, None))
        return tick(wall_ms, fast=fast)

    scorer.queues.on_event = on_event  # type: ignore[method-assign]
    scorer.queues.tick = on_tick  # type: ignore[method-assign]
    events = floor_hour(3)
    for i in range(0, len(events), 61):
        scorer.feed(events[i : i + 61])
        scorer.tick(0, fast=i % 3 == 0)
    return scorer, ops


SCORER, OPS = recorded_run()


STAGE2_TICK_EVERY = 7  # stage 2 ticks on its own clock: a batch holds several of stage 1's ticks' partials


def replay(cuts: random.Random | None) -> tuple[dict[bytes, bytes], list[Any]]:
    """The ops into a fresh stage 2, flushed after every record (`cuts` None) or after batches cut at random (and
    always before a tick, as the worker's ticks run between batches); its table and every tick's output. Stage 2
    ticks on every STAGE2_TICK_EVERY-th of the recorded ticks."""
    table: dict[bytes, bytes] = {}
    stage = QueueStage(table, PipelineMetrics(CollectorRegistry()), bucket_ms=1000,
                       horizon_ms=SCORER.queues.horizon_ms, queue_partitions=SCORER.queue_partitions, event_clock=True)
    stage.rebuild(set(range(SCORER.queue_partitions)))
    published: list[Any] = []

    def flush() -> None:
        for qp in range(SCORER.queue_partitions):
            stage.flush(qp)

    ticks = 0
    for kind, a, b, c in OPS:
        if kind == "tick":
            ticks += 1
            if ticks % STAGE2_TICK_EVERY:
                continue
            flush()
            published.append(stage.tick(a, fast=b))
            for qp in range(SCORER.queue_partitions):
                stage.write_widened(qp)
            continue
        stage.on_event(a, b, c)
        if cuts is None or cuts.random() < 0.002:
            flush()
    flush()
    return table, published


def test_the_recorded_run_has_what_batching_could_get_wrong() -> None:
    puts = {op[1] for op in OPS if op[0] == "partial" and op[2] is not None}
    tombstoned = {op[1] for op in OPS if op[0] == "partial" and op[2] is None}
    assert sum(op[0] == "partial" for op in OPS) > len(puts | tombstoned) + 1000  # keys re-sent
    assert tombstoned
    assert any(parse_partial_key(k).width is not None for k in puts)  # widened buckets
    # Narrow buckets that left the table without a tombstone of their own: dropped by the widened ones.
    assert puts - tombstoned - SCORER.partials_table.keys()


ONE_BY_ONE = replay(None)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32))
def test_a_batch_leaves_the_table_and_views_as_one_record_at_a_time_does(seed: int) -> None:
    table, published = replay(random.Random(seed))
    assert table == ONE_BY_ONE[0]
    assert published == ONE_BY_ONE[1]
