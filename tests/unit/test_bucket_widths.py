"""Buckets widen with age (services/core/bucket_widths.py) without changing a figure.

The grid comes from METRICS.md: a window W may round its lower edge to a slot of at most W/60 (1 s for
1m, 5 s for 5m, 15 s for 15m, 60 s for 1h), so a bucket older than every window of narrower slots reaches
(61 s, 305 s, 915 s) may be that wide. The figures themselves stay checked against both reference models by
the scorer's property tests (which run hours of floor, late and shuffled); here: the grid, the memory it
saves, and that widening is invisible in every view.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any
from unittest.mock import patch

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import services.core.windows as windows_module
from services.core.bucket_widths import GRID_MS, NEVER, STAGE1_MARGIN_MS, STAGE2_MARGIN_MS, Widths, width_steps
from services.core.buckets import FRT, REPLY
from services.core.scope import Scope
from services.core.wire import WATERMARK_KEY_PREFIX, parse_partial_key, partial_key
from services.scorer.inprocess import InProcessScorer
from tests.unit.test_running_windows import bucket_of

T0 = 1_800_000_000_000 - 1_800_000_000_000 % GRID_MS


def test_widths_follow_the_windows_slots() -> None:
    # (width, reach) widest first: 60 s once past the 15m window's reach (900 s + a 15 s slot), and so on.
    assert width_steps(1000) == ((60_000, 915_000), (15_000, 305_000), (5_000, 61_000))
    # With 500 ms source buckets every window is summed from slots of 1 s or more: 1 s buckets at any age.
    assert width_steps(500) == ((60_000, 915_000), (15_000, 305_000), (5_000, 61_000), (1_000, 0))
    assert STAGE2_MARGIN_MS > STAGE1_MARGIN_MS  # stage 2 widens after stage 1, never before


@given(st.integers(0, 10 * 3_600_000), st.integers(1, 3_600_000))
def test_a_time_has_one_bucket_and_it_never_reaches_a_narrower_window(clock_offset: int, age: int) -> None:
    widths = Widths(1000, 0)
    clock = T0 + clock_offset
    widths.advance(clock)
    t = clock - age  # an event at ts = t + 1
    start, width = widths.start_of(t)
    assert start <= t < start + width and start % width == 0
    # Every window summed from slots narrower than the bucket lies after the bucket's end.
    for w, reach in width_steps(1000):
        if width >= w:
            assert start + width <= clock - reach
    assert widths.width_at(start) == width  # the bucket's own start says its width


def test_boundaries_move_by_whole_minutes_and_never_back() -> None:
    widths = Widths(1000, 0)
    assert widths.advance(T0 + 3_630_000)
    before = list(widths.bounds)
    assert all(b % GRID_MS == 0 for b in before)
    assert not widths.advance(T0 + 3_631_000)  # within the same minute: nothing moves
    assert not widths.advance(T0)  # a clock going back moves nothing
    assert widths.bounds == before


def test_partial_keys_of_base_buckets_are_unchanged_and_widened_ones_carry_their_width() -> None:
    scope = Scope("acme", "s1", "jd", "presales")
    assert partial_key("c", 1, scope, 5000) == b'["c",1,"acme","s1","jd","presales",5000]'
    key = parse_partial_key(partial_key("c", 1, scope, 60_000, 60_000))
    assert (key.slot, key.width) == (60_000, 60_000)
    assert parse_partial_key(partial_key("c", 1, scope, 5000)).width is None


def floor_hour(seed: int, minutes: int = 80) -> list[dict[str, Any]]:
    """A small floor for `minutes`: conversations opening every few seconds, answered, some late deliveries."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(minutes * 6):
        t = T0 + i * 10_000 + rnd.randrange(10_000)
        base = {"tenant": "acme", "shop_id": rnd.choice(["s1", "s2"]), "platform": rnd.choice(["jd", "pdd"]),
                "conversation_id": f"c{i}"}
        q = rnd.choice(["presales", "aftersales"])
        events += [
            {**base, "event_id": f"c{i}-o", "type": "conversation.opened", "ts": t, "queue": q},
            {**base, "event_id": f"c{i}-m", "type": "message", "ts": t + 1, "sender": "customer"},
            {**base, "event_id": f"c{i}-r", "type": "message", "ts": t + rnd.randrange(5_000, 200_000),
             "sender": "agent", "agent_id": f"a{i % 7}"},
        ]
    events.sort(key=lambda e: e["ts"])
    # Some deliveries arrive minutes late (retried webhooks): moved later in the stream.
    for _ in range(len(events) // 20):
        i = rnd.randrange(len(events) - 1)
        j = min(len(events) - 1, i + rnd.randrange(50, 400))
        events.insert(j, events.pop(i))
    return events


def run(events: list[dict[str, Any]], batch: int = 97) -> tuple[InProcessScorer, list[dict[Scope, Any]]]:
    scorer = InProcessScorer()
    published = []
    for i in range(0, len(events), batch):
        scorer.feed(events[i : i + batch])
        published.append(scorer.tick(0))
    return scorer, published


def test_widening_changes_no_published_view_and_keeps_an_hour_in_a_few_hundred_buckets(monkeypatch: Any) -> None:
    events = floor_hour(7)
    widened, with_widths = run(events)
    assert widened.queues.merger.store.narrowed_puts == 0  # stage 2 never widens a time before stage 1 does
    # The same run with buckets that never widen (both stages' boundaries far behind any clock).
    monkeypatch.setattr("services.core.partials.STAGE1_MARGIN_MS", 10**15)
    monkeypatch.setattr(windows_module, "STAGE2_MARGIN_MS", 10**15)
    _, without = run(events)
    assert with_widths == without  # every tick's views, field by field
    # Stage 1 keeps a scope's last 80 minutes in a few hundred buckets, not one a second (4,800).
    part = max(widened.conversations.parts.values(), key=lambda p: sum(map(len, p.buckets.values())))
    assert 0 < max(len(b) for b in part.buckets.values()) < 400
    store = widened.queues.merger.store
    assert 0 < max(len(b) for b in store.src_buckets.values()) < 400
    # A table of narrower slots than the 1h window's keeps only what a window of its slots may still reach.
    now = min(widened.queues.merger.watermarks.values())  # each source widens by its own watermark
    for size, reach in ((1000, 61_000), (5000, 305_000), (15_000, 915_000)):
        oldest = min(slot for slots in store.tables[size].values() for slot in slots)
        assert oldest >= now - reach - STAGE2_MARGIN_MS - 2 * GRID_MS, size


def agent_statuses_after(events: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    newest = max(e["ts"] for e in events)
    return [{"tenant": "acme", "event_id": f"st{i}", "type": "agent.status", "ts": newest + i * 60_000,
             "shop_id": "s1", "platform": "jd", "agent_id": "a1", "status": "online", "queues": ["presales"],
             "capacity": 3} for i in range(1, n + 1)]


def test_a_rebuilt_stage_one_starts_at_the_watermark_it_had() -> None:
    """Agent statuses move a partition's watermark and leave no conversation state: the watermark is kept in the
    table too, so a new owner's clock (what buckets widen by, and what is too old) is not behind the old one's."""
    events = floor_hour(11, minutes=40)
    scorer = InProcessScorer()
    scorer.feed(events + agent_statuses_after(events, 10))
    before = {p: part.watermark for p, part in scorer.conversations.parts.items()}
    everything = set(range(scorer.event_partitions))
    scorer.conversations.revoke(everything)
    scorer._route(scorer.conversations.rebuild(everything))
    assert {p: part.watermark for p, part in scorer.conversations.parts.items()} == before
    assert max(before.values()) == agent_statuses_after(events, 10)[-1]["ts"]  # the newest event of all


def test_a_rebuilt_stage_one_that_sends_narrower_buckets_changes_no_figure() -> None:
    """A new owner of a partition whose watermark's last write a crash lost rebuilds its buckets with an older
    watermark than the partials it sent before it, so it sends narrower buckets than stage 2 holds; it sends every
    bucket it has, and stage 2 drops the wide ones they fall in and takes them instead."""
    events = floor_hour(11, minutes=40)
    scorer = InProcessScorer()
    scorer.feed(events + agent_statuses_after(events, 10))
    before = scorer.tick(0)
    everything = set(range(scorer.event_partitions))
    scorer.conversations.revoke(everything)
    for wm_key in [k for k in scorer.conv_table if k.startswith(WATERMARK_KEY_PREFIX)]:
        del scorer.conv_table[wm_key]  # the crash
    scorer._route(scorer.conversations.rebuild(everything))
    after = scorer.tick(0)
    assert scorer.queues.merger.store.narrowed_puts > 0  # the case this is about
    for key in before:
        if not key.queue.startswith("@agent:"):  # (an agent's status times are not rebuilt: not this test's)
            assert after[key]["windows"] == before[key]["windows"], key


def test_stage_two_table_holds_what_its_merger_holds_and_rebuilds_the_same_views() -> None:
    """Stage 2 writes the buckets it widened in place of those they merged: its table (a compacted changelog,
    what a restart reads) is as small as its memory, and a rebuild from it publishes the same views."""
    scorer, _ = run(floor_hour(5), batch=31)
    store = scorer.queues.merger.store
    in_memory = {(src, part, scope, start, width): orjson.loads(orjson.dumps(bucket.to_json()))  # as JSON
                 for (src, part, scope), held in store.src_buckets.items() for start, (width, bucket) in held.items()}
    in_table = {}
    for raw, value in scorer.partials_table.items():
        key = parse_partial_key(raw)
        # (Besides what left every window: the merger drops it by the newest watermark, the table when stage 1's
        # tombstone comes, by that partition's own.)
        if key.slot >= 0 and key.src == "c" and key.slot + (key.width or 1000) > store.pruned_to:
            in_table[(key.src, key.part, key.scope, key.slot, key.width or 1000)] = orjson.loads(value)
    assert in_table == in_memory
    before = scorer.tick(0)
    scorer.queues.revoke()
    scorer.queues.rebuild(set(range(scorer.queue_partitions)))
    assert scorer.tick(0) == before


@given(st.lists(st.integers(0, 5 * 3_600_000), min_size=1, max_size=40), st.sampled_from([0, 60_000, 120_000]))
def test_boundaries_are_those_of_the_latest_clock_whatever_the_steps(offsets: list[int], margin: int) -> None:
    widths = Widths(1000, margin)
    for offset in offsets:
        widths.advance(T0 + offset)
    latest = T0 + max(offsets)
    assert widths.bounds == [(latest - reach - margin) - (latest - reach - margin) % GRID_MS
                             for _w, reach in width_steps(1000)]


class LaggingPartition(InProcessScorer):
    """Stage 2 reads partials partition 0 (both queues' own) ticks behind the others (a consumer in a fast replay)."""

    def __init__(self, lag_ticks: int) -> None:
        super().__init__(event_partitions=6, queue_partitions=3)
        self.lag_ticks = lag_ticks
        self.held: list[list[Any]] = []

    def _route(self, records: list[Any]) -> None:
        late = [r for r in records if r.topic == "partials" and r.partition == 0]
        super()._route([r for r in records if not (r.topic == "partials" and r.partition == 0)])
        self.held.append(late)
        while len(self.held) > self.lag_ticks:
            super()._route(self.held.pop(0))


def test_a_partition_read_behind_the_others_widens_by_its_own_watermark() -> None:
    """Each partials partition carries the watermark after its own partials, and stage 2 widens a partition's
    buckets by the watermark read there: one partition read far behind the others changes no figure. (Widening by
    the newest watermark from any partition failed the Kafka exactness test in a fast replay.)"""
    events = floor_hour(3, minutes=70)
    lagging = LaggingPartition(lag_ticks=12)
    for i in range(0, len(events), 40):  # ~2 simulated minutes per tick: the lag is ~25 minutes of event time
        lagging.feed(events[i : i + 40])
        lagging.tick(0)
    for _ in range(lagging.lag_ticks + 1):
        lagging.tick(0)
    assert lagging.queues.merger.store.narrowed_puts == 0
    plain, _ = run(events, batch=40)
    assert lagging.tick(0) == plain.tick(0)


@given(st.lists(st.integers(0, 5 * 3_600_000), min_size=1, max_size=30), st.sampled_from([0, 60_000, 120_000]))
def test_a_width_changes_only_inside_the_range_advance_returns(offsets: list[int], margin: int) -> None:
    """A widening walks only [lo, hi) of what `advance` returns: every other start keeps its width."""
    widths = Widths(1000, margin)
    for offset in offsets:
        starts = range(T0 - 2 * 3_600_000, T0 + offset, 1000)
        before = [widths.width_at(s) for s in starts]
        moved = widths.advance(T0 + offset)
        changed = [s for s, w in zip(starts, before, strict=True) if widths.width_at(s) != w]
        if moved is None:
            assert not changed
        else:
            lo, hi = moved
            assert lo % GRID_MS == 0 or lo < T0 - 10 * 3_600_000  # a minute (or before any time: the first move)
            assert all(lo <= s < hi for s in changed)


def test_a_clock_going_a_second_at_a_time_moves_a_minute_at_a_time() -> None:
    """The range is what moved, not everything: a second's step moves at most one boundary, by a minute."""
    widths = Widths(1000, STAGE2_MARGIN_MS)
    widths.advance(T0)
    ranges = [moved for t in range(T0 + 1000, T0 + 600_000, 1000) if (moved := widths.advance(t)) is not None]
    assert len(ranges) == 3 * 10  # three boundaries, each once a minute
    assert all(hi - lo == GRID_MS for lo, hi in ranges)


class FullWalk:
    """The walk as it was (the reference for the range walk): on every move, every bucket that starts before
    `widened_before` (every one wider than the source buckets)."""

    def __enter__(self) -> None:
        real = Widths.advance

        def advance(widths: Widths, clock: int) -> tuple[int, int] | None:
            return None if real(widths, clock) is None else (NEVER, widths.widened_before)

        self.patch = patch.object(Widths, "advance", advance)
        self.patch.start()

    def __exit__(self, *exc: object) -> None:
        self.patch.stop()


def held(scorer: InProcessScorer) -> dict[str, Any]:
    """Every bucket both stages hold (stage 1's per partition, stage 2's per source and its merged tables)."""
    store = scorer.queues.merger.store
    return {
        "stage1": {(p, scope, start): b.to_json() for p, part in scorer.conversations.parts.items()
                   for scope, per in part.buckets.items() for start, b in per.items()},
        "stage2": {(key, start): (w, b.to_json()) for key, per in store.src_buckets.items()
                   for start, (w, b) in per.items()},
        "tables": {(size, scope, slot): b.to_json() for size, table in store.tables.items()
                   for scope, per in table.items() for slot, b in per.items()},
    }


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10**6), st.integers(30, 600))
def test_walking_only_the_moved_time_holds_what_walking_every_bucket_holds(seed: int, batch: int) -> None:
    events = floor_hour(seed % 50, minutes=40)
    ranged, ranged_views = run(events, batch=batch)
    with FullWalk():
        full, full_views = run(events, batch=batch)
    assert ranged_views == full_views
    assert held(ranged) == held(full)


def test_a_group_left_for_later_is_widened_when_the_boundaries_next_move() -> None:
    """Stage 2 leaves a group that a window of narrower slots still reached at its last advance; the next
    move widens it, though the moved time no longer covers it."""
    scope = Scope("acme", "s1", "jd", "presales")
    stores = []
    for walk in (contextlib.nullcontext, FullWalk):
        with walk():
            store = windows_module.WindowStore(1000)
            for i in range(600):  # ten minutes of 1 s buckets
                store.put("c", 0, scope, T0 + i * 1000, bucket_of([(FRT, 1000 + i), (REPLY, 7 * i)], T0 + i * 1000))
            store.advance(T0 + 300_000)  # the 1m window reaches back to T0 + 239 s here
            store.widen(lambda _k: T0 + 600_000)  # bound: clock - 61 s - 120 s = T0 + 419 s: groups past 239 s wait
            assert store.widen_later or walk is FullWalk
            # Two seconds on only the 5 s boundary moves (to T0 + 420 s): the moved time is [360 s, 420 s).
            store.advance(T0 + 602_000)
            store.widen(lambda _k: T0 + 602_000)
            stores.append(store)
    ranged, full = stores
    widths_of = [{s: w for s, (w, _b) in store.src_buckets[("c", 0, scope)].items()} for store in stores]
    assert widths_of[0] == widths_of[1]
    assert {5000, 15_000} <= set(widths_of[0].values())
    assert {n: b.to_json() for n, b in ranged.totals(scope).items()} == \
        {n: b.to_json() for n, b in full.totals(scope).items()}
