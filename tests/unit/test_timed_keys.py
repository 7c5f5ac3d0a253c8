"""TimedKeys behaves as the deque of (ts, key) it replaces, across its compactions, and drops popped keys."""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer import timed_keys
from services.scorer.timed_keys import TimedKeys

CHUNK = timed_keys._CHUNK

# An operation: (True, ts) appends a key made from a counter; (False, n) pops up to n.
ops = st.lists(st.one_of(st.tuples(st.just(True), st.integers(-(2**62), 2**62)),
                         st.tuples(st.just(False), st.integers(0, 3000))), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops, st.lists(st.integers(0, 2**40), max_size=50), st.sampled_from([1, 64, timed_keys._CHUNK]))
def test_it_is_the_deque_it_replaces(steps: list[tuple[bool, int]], initial: list[int], chunk: int) -> None:
    """Whatever the chunks' size: a key to a chunk, a few keys, or the real one (the steps' keys fill a few)."""
    timed_keys._CHUNK = chunk  # (hypothesis runs examples in turn; put back below)
    try:
        run_steps(steps, initial)
    finally:
        timed_keys._CHUNK = CHUNK


def run_steps(steps: list[tuple[bool, int]], initial: list[int]) -> None:
    pairs = [(ts, f"i{n}".encode()) for n, ts in enumerate(sorted(initial))]
    model: deque[tuple[int, bytes]] = deque(pairs)
    keys = TimedKeys(pairs)
    made = 0
    for is_append, n in steps:
        if is_append:
            for _ in range(50):  # enough appends that pops cross the compaction threshold
                made += 1
                key = f"k{made}".encode() * (made % 4)  # lengths vary, the empty key included
                model.append((n, key))
                keys.append(n, key)
        else:
            for _ in range(min(n, len(model))):
                assert keys.first_ts() == model[0][0]
                assert keys.popleft() == model.popleft()
        assert len(keys) == len(model) and bool(keys) == bool(model)
    while model:
        assert keys.popleft() == model.popleft()
    assert not keys


def test_empty_raises_as_a_deque_does() -> None:
    keys = TimedKeys([(1, b"a")])
    keys.popleft()
    with pytest.raises(IndexError):
        keys.popleft()
    with pytest.raises(IndexError):
        keys.first_ts()


def test_a_popped_key_is_released_and_a_key_costs_far_less_than_a_tuple() -> None:
    tracemalloc.start()
    try:
        keys = TimedKeys()
        for i in range(100_000):
            # Times in ms as stage 1's (beyond the small ints); keys as long as a floor's conversations' (35 bytes).
            keys.append(1_764_900_000_000 + i, b"acme\x1fbench-s17-x1-acme-tmall-%06d" % i)
        held = tracemalloc.get_traced_memory()[0]
        for _ in range(99_000):
            keys.popleft()
        after = tracemalloc.get_traced_memory()[0]
        # Past the compactions, the next key is still the 99,001st, whole (its bytes and time were moved).
        assert keys.popleft() == (1_764_900_099_000, b"acme\x1fbench-s17-x1-acme-tmall-099000")
        assert len(keys) == 999
    finally:
        tracemalloc.stop()
    # Each key: 12 bytes in the arrays and its 35 bytes compressed (~5: keys of one shop share most of theirs). Kept
    # whole, a key was 48 bytes in all; a bytes object per key adds ~37 more (84, measured), a deque of tuples ~90.
    assert held < 25 * 100_000
    assert after < held / 10  # popped keys (and, compacted, their slots) are gone
