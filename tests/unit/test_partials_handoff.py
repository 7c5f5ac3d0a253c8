"""Stage 2 takes stage 1's partial buckets as they are in one worker (services/scorer/handoff.py): the same figures
as decoding every record, and a bucket once handed on is never changed again by either stage (copy on write)."""

from __future__ import annotations

import functools
import tracemalloc

import orjson
from hypothesis import given

from services.core.buckets import ARRIVAL, FRT, Bucket, Fact
from services.core.windows import SrcKey
from services.core.wire import SRC_CONVERSATIONS
from services.scorer.handoff import Handoff
from services.scorer.inprocess import InProcessScorer
from services.scorer.stages import Out
from tests.unit.test_bucket_widths import floor_hour
from tests.unit.test_scorer_properties import CHEAP_PROPERTY, Floor, floors, run


def test_a_record_is_taken_only_with_the_very_bytes_offered_and_only_once() -> None:
    h: Handoff[str] = Handoff(max_held=10)
    h.offer(b"k", b"v1", "one")
    h.offer(b"k", b"v2", "two")  # stage 1 changed the bucket before stage 2 read the first record
    assert h.take(b"k", b"v1") is None  # the first record: decoded, and the newer offer stays for its own
    assert h.take(b"k", b"v2") == "two"
    assert h.take(b"k", b"v2") is None  # once: a second identical record decodes
    assert h.take(b"other", b"v2") is None


def test_offers_nobody_takes_leave_oldest_first() -> None:
    h: Handoff[int] = Handoff(max_held=3)
    for i in range(5):
        h.offer(f"k{i}".encode(), b"v", i)
    assert list(h.held) == [b"k2", b"k3", b"k4"]
    h.offer(b"k2", b"v", 22)  # offered again: now the newest
    h.offer(b"k5", b"v", 5)
    assert list(h.held) == [b"k4", b"k2", b"k5"]
    assert h.full  # (the worker's stage 1 stops handing on: stage 2 is that far behind)
    assert h.take(b"k2", b"v") == 22 and not h.full
    h.clear()
    assert h.take(b"k5", b"v") is None


def test_offers_hold_their_records_bytes_not_orjsons_buffers() -> None:
    # orjson's bytes keep its ~4 KiB working buffer; a tick can hand on thousands of partials at once.
    h: Handoff[int] = Handoff(max_held=1000)
    tracemalloc.start()
    try:
        for i in range(1000):  # each record's bytes are dropped once offered, as stage 1's are once bundled
            h.offer(f"k{i}".encode(), orjson.dumps({"c": {"arrivals": i}, "frt": [0, 0, 0, []]}), i)
        held_bytes = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held_bytes < 300 * 1000  # each offer's key, value and entry: ~200 bytes, not ~4 KiB
    assert h.take(b"k7", orjson.dumps({"c": {"arrivals": 7}, "frt": [0, 0, 0, []]})) == 7


class Watching(InProcessScorer):
    """Keeps every bucket handed to stage 2 with its JSON as sent, to check none changes afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[tuple[Bucket, bytes]] = []
        self.twins: list[tuple[Bucket, bytes]] = []  # stage 1's widened buckets stage 2 kept, with their JSON then
        stage1_twin = self.conversations.twin

        def twin(src_key: SrcKey, start: int, width: int, bucket: Bucket) -> Bucket | None:
            own = stage1_twin(src_key, start, width, bucket)
            if own is not None:
                self.twins.append((own, orjson.dumps(own.to_json())))
            return own

        self.queues.twin = twin

    def _route(self, records: list[Out]) -> None:
        for r in records:
            if r.local is not None:
                assert r.value is not None and orjson.loads(r.value) == orjson.loads(orjson.dumps(r.local[1].to_json()))
                self.handed.append((r.local[1], r.value))
        super()._route(records)


@functools.cache
def watched_floor() -> Watching:
    """80 minutes of a small floor with late deliveries (buckets change after they were sent, widen and are pruned),
    its views checked tick by tick against a worker that decodes every partial and widens into buckets of its own."""
    events = floor_hour(5)
    watching = Watching()
    decoding = InProcessScorer(hand_on=False)
    for i in range(0, len(events), 53):
        watching.feed(events[i : i + 53])
        decoding.feed(events[i : i + 53])
        assert watching.tick(0) == decoding.tick(0)
    return watching


def stage_one_buckets(scorer: InProcessScorer) -> set[int]:
    parts = scorer.conversations.parts.values()
    return {id(b) for part in parts for per_scope in part.buckets.values() for b in per_scope.values()}


def test_a_handed_bucket_never_changes_and_the_views_are_those_of_decoding() -> None:
    watching = watched_floor()
    assert len(watching.handed) > 1000
    changed = [value for bucket, value in watching.handed if orjson.dumps(bucket.to_json()) != value]
    assert not changed
    # Stage 2 holds stage 1's very objects (one copy of a bucket in the worker, not two).
    held = {id(b) for per_src in watching.queues.merger.store.src_buckets.values() for _w, b in per_src.values()}
    assert len(held & stage_one_buckets(watching)) > 100


def test_stage_two_widens_into_stage_ones_buckets_which_then_never_change() -> None:
    # Both stages widen a source's old buckets; in one process stage 2 keeps stage 1's result, not a second copy. Late
    # deliveries change buckets stage 1 widened after stage 2 kept them.
    watching = watched_floor()
    assert len(watching.twins) > 1000
    assert not [value for bucket, value in watching.twins if orjson.dumps(bucket.to_json()) != value]
    store = watching.queues.merger.store
    wide = {id(b) for per_src in store.src_buckets.values() for w, b in per_src.values() if w > store.bucket_ms}
    assert len(wide & stage_one_buckets(watching)) > 0.8 * len(wide)


def test_stage_one_gives_its_widened_bucket_only_when_it_gives_the_same_figures() -> None:
    # In a worker stage 2 may widen before the partials of a late change to stage 1's widened bucket reach it.
    scorer = InProcessScorer(hand_on=False)
    scorer.feed(floor_hour(5, minutes=20))
    part, scope, start, width, own = next(
        (p, scope, s, w, b) for p, partials in scorer.conversations.parts.items()
        for scope, per_scope in partials.buckets.items() for s, b in per_scope.items()
        if (w := partials.width_of(s)) is not None and w > scorer.queues.bucket_ms and b.frt.count)
    key = (SRC_CONVERSATIONS, part, scope)
    other = own.copy()
    other.apply(Fact(FRT, start + 1, scope.queue, 4_000), 1)
    assert scorer.conversations.twin(key, start, width, other) is None  # not the figures stage 2 summed
    assert scorer.conversations.twin(key, start, width // 5 or 1, own.copy()) is None  # another width
    assert scorer.conversations.twin(("d", part, scope), start, width, own.copy()) is None  # another source
    assert scorer.conversations.twin(key, start, width, own.copy()) is own
    kept_json = orjson.dumps(own.to_json())
    scorer.conversations.parts[part]._bucket(scope, start + 1).apply(Fact(ARRIVAL, start + 1, scope.queue), 1)
    assert orjson.dumps(own.to_json()) == kept_json  # stage 1 changed a copy, not the bucket stage 2 keeps


def test_buckets_are_the_same_when_every_figure_is() -> None:
    a, b = Bucket(), Bucket()
    a.apply(Fact(ARRIVAL, 5, "q"), 1)
    b.apply(Fact(ARRIVAL, 5, "q"), 1)
    b.apply(Fact(FRT, 5, "q", 900), 1)
    assert not a.same(b)
    b.apply(Fact(FRT, 5, "q", 900), -1)  # retracted: the counts and bins are a's again, and b holds an empty Dist
    assert a.same(b) and b.same(a)
    b.c["abandoned"] += 0  # a counter that reads 0 either way
    assert a.same(b)
    for value in (950, 1000):
        a.apply(Fact(FRT, 5, "q", value), 1)
    for value in (955, 1000):
        b.apply(Fact(FRT, 5, "q", value), 1)  # the same bins and maximum, another sum (another mean)
    assert not a.same(b)
    b.apply(Fact(FRT, 5, "q", 955), -1)
    b.apply(Fact(FRT, 5, "q", 950), 1)
    assert a.same(b)


@CHEAP_PROPERTY
@given(floors())
def test_taking_the_buckets_changes_no_figure(floor: Floor) -> None:
    taken = run(floor.stream, floor.cuts, hand_on=True)
    decoded = run(floor.stream, floor.cuts, hand_on=False)
    assert taken == decoded


def test_a_worker_merging_its_own_partials_after_a_rebuild_decodes_and_agrees() -> None:
    """Stage 2 rebuilt from its table decodes every bucket; later records are taken again: the same views."""
    events = floor_hour(9, minutes=30)
    scorer = InProcessScorer()
    half = len(events) // 2
    scorer.feed(events[:half])
    scorer.tick(0)
    scorer.queues.revoke()
    scorer.queues.rebuild(set(range(scorer.queue_partitions)))
    scorer.feed(events[half:])
    reference = InProcessScorer(hand_on=False)
    reference.feed(events[:half])
    reference.tick(0)
    reference.feed(events[half:])
    assert scorer.tick(0) == reference.tick(0)
