"""The mergeable distribution: percentiles within the stated 2%, exact counts and sums, inverses."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.dist import ALPHA, Dist, Samples, bin_of, bin_value, unpack

values = st.lists(st.integers(min_value=1000, max_value=86_400_000), min_size=1, max_size=300)


def nearest_rank(xs: list[int], q: float) -> int:
    s = sorted(xs)
    return s[max(1, math.ceil(q * len(s))) - 1]


def dist_of(xs: list[int]) -> Dist:
    d = Dist()
    for x in xs:
        d.add(x)
    return d


@given(values, st.sampled_from([0.5, 0.9, 0.99]))
@settings(max_examples=300)
def test_percentile_within_stated_error(xs: list[int], q: float) -> None:
    got = dist_of(xs).quantile_ms(q)
    want = nearest_rank(xs, q)
    assert got is not None
    assert abs(got - want) <= ALPHA * want + 1e-9


@given(values, values)
def test_merge_equals_one_distribution_of_both(xs: list[int], ys: list[int]) -> None:
    merged = dist_of(xs)
    merged.merge(dist_of(ys))
    both = dist_of(xs + ys)
    assert (merged.count, merged.total_ms, merged.max_ms, merged.bins) == (
        both.count, both.total_ms, both.max_ms, both.bins
    )


@given(values, values)
def test_remove_and_negative_merge_are_inverses(xs: list[int], ys: list[int]) -> None:
    d = dist_of(xs + ys)
    for y in ys:
        d.remove(y)
    only = dist_of(xs)
    assert (d.count, d.total_ms, d.bins) == (only.count, only.total_ms, only.bins)
    assert d.max_ms >= only.max_ms  # a plain Dist's max may stay conservative after a retraction...
    assert d.max_ms <= only.max_ms * (1 + 2 * ALPHA) + 1  # ...but within the top bin (`Samples` keep it exact)
    e = dist_of(xs + ys)
    e.merge(dist_of(ys), -1)
    assert (e.count, e.total_ms, e.bins) == (only.count, only.total_ms, only.bins)


def test_empty_is_null_not_zero() -> None:
    s = Dist().summary()
    assert s == {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None, "max_s": None}


def test_summary_of_known_samples() -> None:
    s = dist_of([3000, 10_000, 17_500, 45_000, 159_000]).summary()
    assert s["count"] == 5 and s["mean_s"] == 46.9 and s["max_s"] == 159.0
    assert abs((s["p50_s"] or 0) - 17.5) <= 17.5 * ALPHA


def test_json_round_trip() -> None:
    d = dist_of([1, 999, 5000, 5000, 123_456])
    back = Dist.from_json(d.to_json())
    assert (back.count, back.total_ms, back.max_ms, back.bins) == (d.count, d.total_ms, d.max_ms, d.bins)


@given(values, values, st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0]), min_size=1, max_size=4))
def test_percentiles_are_the_bins_of_the_exact_ranks(xs: list[int], ys: list[int], qs: list[float]) -> None:
    """Each percentile is the representative of the bin holding the exact nearest-rank value, never above the
    max, asked one at a time or together, also after samples were taken out again."""
    d = dist_of(xs + ys)
    for y in ys:
        d.remove(y)
    qs = sorted(qs)
    ranked = sorted(xs)
    # The rank ceil(q * n) in exact arithmetic (a float 0.9 * 10 is 9.000000000000002).
    want = [min(bin_value(bin_of(ranked[max(1, math.ceil(Fraction(str(q)) * len(xs))) - 1])), float(d.max_ms))
            for q in qs]
    assert d.quantiles_ms(tuple(qs)) == want
    assert [d.quantile_ms(q) for q in qs] == want


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 400_000), st.integers(1, 3)), max_size=200))
@settings(max_examples=300)
def test_samples_keep_the_exact_max_whatever_is_taken_out(steps: list[tuple[bool, int, int]]) -> None:
    """Stage 1's distribution against a plain list of its values: any adds and removals (of values held), copies
    and merges leave the exact max, and the same counts, sums and bins as a plain Dist of those values."""
    held: list[int] = []
    d = Samples()
    for add, value, n in steps:
        if add or not held:
            d.add(value, n)
            held += [value] * n
        else:
            value = held[value % len(held)]
            n = min(n, held.count(value))
            assert d.remove(value, n) is True
            for _ in range(n):
                held.remove(value)
        assert d.max_ms == max(held, default=0)
        assert d.values() == sorted(held)
    plain = dist_of(held)
    assert (d.count, d.total_ms, d.bins) == (plain.count, plain.total_ms, plain.bins)
    twice = d.copy()
    twice.merge(d)
    packed: list[int] = []
    twice.pack(packed)  # (as a frozen bucket holds it)
    unpacked, end = unpack(packed, 0)
    assert end == len(packed) and isinstance(unpacked, Samples) and unpacked.same(twice)
    twice = unpacked
    assert twice.values() == sorted(held * 2) and twice.max_ms == max(held, default=0)
    if held:
        twice.remove(max(held), 2)
        assert twice.max_ms == max(sorted(held)[:-1], default=0)


def test_samples_say_when_they_did_not_hold_what_was_taken_out() -> None:
    for v, n in ((6, 1), (7, 2), (10, 1)):
        d = Samples()
        for x in (5, 7, 9):
            d.add(x)
        assert d.remove(v, n) is False
        assert d.count == 3 - n  # the counts change as a plain Dist's would
    d = Samples()
    d.add(7, 2)
    assert d.remove(7, 2) is True and d.values() == [] and d.max_ms == 0
