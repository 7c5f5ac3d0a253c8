"""The bounded memory of acknowledged event_ids (services/ingest/dedupe.py)."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.dedupe import RecentIds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembers_until_ttl() -> None:
    clock = Clock()
    ids = RecentIds(10, ttl_s=60, clock=clock)
    ids.add(["a", "b"])
    assert "a" in ids and "b" in ids and "c" not in ids
    clock.now = 59.9
    assert "a" in ids
    clock.now = 60.0
    assert "a" not in ids
    ids.add(["c"])  # adding sweeps the expired batch
    assert len(ids) == 1


def test_bounded_by_count_oldest_first_even_within_one_batch() -> None:
    ids = RecentIds(3, ttl_s=60, clock=Clock())
    ids.add(["a", "b"])
    ids.add(["c", "d", "e"])
    assert len(ids) == 3
    assert [x in ids for x in "abcde"] == [False, False, True, True, True]
    ids.add(["f", "g", "h", "i", "j"])
    assert [x in ids for x in "fghij"] == [False, False, True, True, True]


def test_reacknowledged_id_keeps_its_newer_entry() -> None:
    clock = Clock()
    ids = RecentIds(10, ttl_s=60, clock=clock)
    ids.add(["a", "b"])
    clock.now = 30
    ids.add(["a"])
    clock.now = 61
    ids.add(["z"])  # evicts the first batch; "a" belongs to the second now
    assert "a" in ids and "b" not in ids
    clock.now = 91
    assert "a" not in ids


def test_non_string_is_never_contained() -> None:
    ids = RecentIds(10, ttl_s=60)
    assert 1 not in ids and None not in ids


ops = st.lists(
    st.tuples(st.floats(0, 30), st.lists(st.sampled_from("abcdefghij"), max_size=5, unique=True)),
    max_size=40,
)


@given(ops=ops, size=st.integers(1, 6))
def test_matches_a_reference_lru_with_ttl(ops: list[tuple[float, list[str]]], size: int) -> None:
    clock = Clock()
    ids = RecentIds(size, ttl_s=50, clock=clock)
    ref: OrderedDict[str, float] = OrderedDict()  # id -> acknowledged at, oldest first
    for step, batch in ops:
        clock.now += step
        ids.add(batch)
        for x in batch:
            ref.pop(x, None)
            ref[x] = clock.now
        for x in [x for x, at in ref.items() if at + 50 <= clock.now]:
            del ref[x]
        while len(ref) > size:
            ref.popitem(last=False)
        for x in "abcdefghij":
            assert (x in ids) == (x in ref), (x, clock.now, ref)
        assert len(ids) == len(ref)
