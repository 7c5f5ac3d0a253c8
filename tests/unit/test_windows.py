"""The window store alone: whatever the order of puts, advances, prunes and reads, a scope's totals are the
sum, made afresh, of the buckets its sources hold now in each window's slots (edge, now].

`test_running_windows.py` shows the same for the whole merger (views); here nothing but the store runs,
so a failure names the window arithmetic. The moves are that test's: buckets replaced, retracted, late,
ahead of now, ticks of a second and long gaps, and prunes (here also inside the windows).
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.core.buckets import FRT, REPLY, Bucket
from services.core.config import WINDOWS
from services.core.scope import Scope
from services.core.windows import GRID_MS, WindowStore
from tests.unit.test_running_windows import SCOPES, T0, Facts, advance, bucket_of, hold, put, put_at

SourceSlot = tuple[str, int, Scope, int]  # (source stage, partition, scope, bucket start)

# Prunes at the merger's horizon and also inside the windows: a slot that goes must leave every total.
prune = st.sampled_from([0, 30_000, 600_000, 3_600_000, 3_720_000])
step = st.one_of(
    put.map(lambda p: ("put", p)),
    advance.map(lambda d: ("advance", d)),
    st.integers(1, 120_000).map(lambda d: ("advance", -d)),  # a clock that stepped back
    prune.map(lambda ago: ("prune", ago)),
    st.just(("read", 0)),
    st.integers(0, len(SCOPES) - 1).map(lambda si: ("forget", si)),
)


def figures(b: Bucket) -> tuple[Any, ...]:
    """What a bucket holds, comparable (bins in any order, no zero counters)."""
    return (
        {k: n for k, n in b.c.items() if n},
        *((d.count, d.total_ms, d.max_ms, sorted(d.bins.items())) for d in (b.frt, b.reply)),
    )


def slot_ms(width: int, bucket_ms: int) -> int:
    """A window's grid, from METRICS.md ("Rolling windows"): its lower edge may be rounded down to a grid of at
    most W/60, so the largest multiple of the source bucket that divides a minute and is at most W/60 (or the
    source bucket itself, which cannot be split)."""
    fits = [k * bucket_ms for k in range(1, GRID_MS // bucket_ms + 1)
            if GRID_MS % (k * bucket_ms) == 0 and k * bucket_ms * 60 <= width]
    return max(fits, default=bucket_ms)


def slot_range(now: int, width: int, size: int) -> tuple[int, int]:
    """(first, last) slot start of the window (edge, now]: the edge is now - W rounded down to the grid."""
    return (now - width) // size * size, now // size * size


def fresh_totals(held: dict[SourceSlot, Facts], scope: Scope, now: int, bucket_ms: int) -> dict[str, tuple[Any, ...]]:
    """Per window, the sum of the buckets held for `scope` whose slot lies in the window's range at `now`
    (the range worked from the definition, not from the store's own arithmetic)."""
    out = {}
    for name, width in WINDOWS.items():
        size = slot_ms(width, bucket_ms)
        lo, hi = slot_range(now, width, size)
        total = Bucket()
        for (_src, _part, s, start), fs in held.items():
            if s == scope and lo <= start - start % size <= hi:
                total.merge(bucket_of(fs, start))
        out[name] = figures(total)
    return out


@settings(max_examples=300, deadline=None)
@example(1000, [("advance", 1000), ("put", ("c", 0, 0, 12, [(FRT, 9)])), ("advance", 5000), ("read", 0)])
@example(5000, [("put", ("c", 0, 0, 1, [(REPLY, 9)])), ("put", ("a", 1, 0, 1, [(REPLY, 7)])), ("advance", 0),
                ("read", 0), ("put", ("c", 0, 0, 1, None)), ("read", 0)])  # the max leaves: rescanned
@example(5000, [("advance", 0), ("read", 0), ("put", ("c", 0, 2, -2, [(FRT, 5)])), ("read", 0),
                ("advance", 10_000)])  # a bucket ahead of now enters the windows, nothing leaves
@given(st.sampled_from([1000, 5000]), st.lists(step, min_size=1, max_size=80))
def test_totals_equal_a_fresh_sum_and_changes_are_told(bucket_ms: int, steps: list[tuple[str, Any]]) -> None:
    """Totals are exact after any sequence; a scope whose totals differ from its last read is in `take_changed`."""
    store = WindowStore(bucket_ms)
    held: dict[SourceSlot, Facts] = {}
    last_read: dict[Scope, dict[str, tuple[Any, ...]]] = {}
    now = T0 + 3_600_000
    advanced = False

    def read_every_scope() -> None:  # as the merger does for the views due
        changed = store.take_changed()
        for scope in SCOPES:
            now_totals = {n: figures(b) for n, b in store.totals(scope).items()}
            assert now_totals == fresh_totals(held, scope, now, bucket_ms)
            if scope not in changed and scope in last_read:
                assert now_totals == last_read[scope], f"{scope} changed untold"
            last_read[scope] = now_totals

    for kind, arg in steps:
        if kind == "put":
            src, part, scope, start, fs = put_at(arg, now, bucket_ms)
            store.put(src, part, scope, start, None if fs is None else bucket_of(fs, start))
            hold(held, (src, part, scope, start), fs)
        elif kind == "advance":
            now += arg
            store.advance(now)
            advanced = True
            assert store.edges == {n: slot_range(now, w, slot_ms(w, bucket_ms))[0] for n, w in WINDOWS.items()}
        elif kind == "prune":
            store.prune(now - arg)
            before = (now - arg) - (now - arg) % GRID_MS  # buckets go a whole minute at a time
            for key in [k for k in held if k[3] + bucket_ms <= before]:
                del held[key]
        elif kind == "forget":
            store.forget(SCOPES[arg])
        elif advanced:
            read_every_scope()
    store.advance(now)
    read_every_scope()


def test_a_store_built_from_the_final_buckets_agrees() -> None:
    """Ticking through an hour of a second at a time ends where a store given only the final buckets starts."""
    ticking, held = WindowStore(5000), {}
    now = T0 + 3_600_000
    for second in range(3600):
        now += 1000
        start = now - now % 5000 - 5000 * (second % 3)
        fs: Facts = [(REPLY, 1000 + second % 700), (FRT, 90_000 - second)]
        ticking.put("c", second % 2, SCOPES[second % 2], start, bucket_of(fs, start))
        held[("c", second % 2, SCOPES[second % 2], start)] = fs
        if second % 7 == 0:  # a retraction now and then
            ticking.put("c", second % 2, SCOPES[second % 2], start, None)
            del held[("c", second % 2, SCOPES[second % 2], start)]
        ticking.advance(now)
        if second % 60 == 0:
            ticking.prune(now - 3_720_000)
    fresh = WindowStore(5000)
    for (src, part, scope, start), fs in held.items():
        fresh.put(src, part, scope, start, bucket_of(fs, start))
    fresh.advance(now)
    for scope in SCOPES:
        mine = {n: figures(b) for n, b in ticking.totals(scope).items()}
        assert mine == {n: figures(b) for n, b in fresh.totals(scope).items()}
        assert mine == fresh_totals(held, scope, now, 5000)
