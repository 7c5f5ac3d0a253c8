"""Stage 2 takes stage 1's partial buckets as they are in one worker (services/scorer/handoff.py): the same figures
as decoding every record, and a bucket once handed on is never changed again by either stage (copy on write)."""

from __future__ import annotations

import tracemalloc

import orjson
from hypothesis import given

from services.core.buckets import Bucket
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

    def _route(self, records: list[Out]) -> None:
        for r in records:
            if r.local is not None:
                assert r.value is not None and orjson.loads(r.value) == orjson.loads(orjson.dumps(r.local[1].to_json()))
                self.handed.append((r.local[1], r.value))
        super()._route(records)


def test_a_handed_bucket_never_changes_and_the_views_are_those_of_decoding() -> None:
    # 80 minutes of a small floor with late deliveries: buckets change after they were sent, widen and are pruned.
    events = floor_hour(5)
    watching = Watching()
    decoding = InProcessScorer(hand_on=False)
    for i in range(0, len(events), 53):
        watching.feed(events[i : i + 53])
        decoding.feed(events[i : i + 53])
        assert watching.tick(0) == decoding.tick(0)
    assert len(watching.handed) > 1000
    changed = [value for bucket, value in watching.handed if orjson.dumps(bucket.to_json()) != value]
    assert not changed
    # Stage 2 holds stage 1's very objects (one copy of a bucket in the worker, not two).
    held = {id(b) for per_src in watching.queues.merger.store.src_buckets.values() for _w, b in per_src.values()}
    parts = watching.conversations.parts.values()
    own = {id(b) for part in parts for per_scope in part.buckets.values() for b in per_scope.values()}
    assert len(held & own) > 100


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
