"""Old buckets are held frozen (one compact array of integers, `Bucket.freeze`): the same figures whatever is
frozen when, fewer bytes, and a worker's views the very same as a worker that never freezes."""

from __future__ import annotations

import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.buckets import (
    ARRIVAL,
    CLOSED_PREFIX,
    CSAT,
    FRT,
    LAST_REPLY,
    LEFT,
    MSG_CUSTOMER,
    REPLY,
    Bucket,
    Fact,
    SourceBucket,
    window_figures,
)
from tests.unit.test_bucket_widths import floor_hour, run

kinds = st.sampled_from([ARRIVAL, FRT, LEFT, REPLY, CSAT, MSG_CUSTOMER, LAST_REPLY, CLOSED_PREFIX + "resolved"])
facts = st.builds(lambda kind, v: Fact(kind, 0, "presales", v if kind != CSAT else v % 5 + 1), kinds,
                  st.integers(min_value=-1, max_value=900_000))
# One step: add or retract a fact, merge in (or take out) a bucket of facts, or freeze.
step = st.one_of(
    st.tuples(st.just("apply"), facts, st.sampled_from([1, 1, 2, -1])),
    st.tuples(st.just("merge"), st.lists(facts, max_size=4), st.sampled_from([1, -1])),
    st.tuples(st.just("freeze")),
)


def bucket_of(fs: list[Fact]) -> Bucket:
    b = Bucket()
    for f in fs:
        b.apply(f, 1)
    return b


def figures(b: Bucket) -> Any:
    raw = b.to_json()  # (a Dist's bins in the order they came, which merging may change; a bin at 0 is no bin)
    for d in ("frt", "reply"):
        raw[d][3] = sorted((k, n) for k, n in raw[d][3] if n)
    return (raw, window_figures(b, 60_000), b.is_empty(), b.maxima(),
            b.frt.quantiles_ms((0.5, 0.9)) if b.frt.count > 0 else None)


@settings(max_examples=300)
@given(st.lists(step, max_size=40))
def test_a_bucket_frozen_at_any_steps_gives_what_one_never_frozen_gives(steps: list[tuple[Any, ...]]) -> None:
    frozen, plain = Bucket(), Bucket()
    for s in steps:
        if s[0] == "freeze":
            encoded = orjson.dumps(frozen.to_json())
            frozen.freeze()
            assert orjson.dumps(frozen.to_json()) == encoded  # freezing changes the form, not one byte sent
            assert frozen.same(plain) and plain.same(frozen)
            assert frozen.frozen  # compared and read as it is, not thawed
            assert figures(frozen) == figures(plain)
            continue
        for b in (frozen, plain):
            if s[0] == "apply":
                b.apply(s[1], s[2])
            else:
                b.merge(bucket_of(s[1]), s[2])
        other = Bucket()
        other.merge(plain)
        other.freeze()
        plain_copy = Bucket()
        plain_copy.merge(other)  # merging from a frozen bucket reads it as it is
        assert other.frozen and figures(plain_copy) == figures(plain)
    assert figures(frozen) == figures(plain)
    assert figures(frozen.copy()) == figures(plain)


def test_a_frozen_bucket_holds_far_fewer_bytes() -> None:
    def held(freeze: bool) -> int:
        tracemalloc.start()
        try:
            kept = []
            for i in range(1000):  # a typical old bucket: a few counters, a couple of samples
                b = bucket_of([Fact(ARRIVAL, 0, "q", 0), Fact(MSG_CUSTOMER, 0, "q", 0), Fact(LEFT, 0, "q", 12_000 + i),
                               Fact(FRT, 0, "q", 12_000 + i), Fact(REPLY, 0, "q", 30_000), Fact(REPLY, 0, "q", 90_000)])
                if freeze:
                    b.freeze()
                kept.append(b)
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    assert held(True) < 0.3 * held(False)  # (0.18 here; the tuples before, 0.61)


source_steps = st.lists(st.one_of(
    st.tuples(st.just("apply"), facts, st.sampled_from([1, 1, 2, -1])),
    st.tuples(st.just("freeze")),
), max_size=40)


@settings(max_examples=300)
@given(source_steps)
def test_stage_1s_bucket_frozen_at_any_steps_keeps_its_values(steps: list[tuple[Any, ...]]) -> None:
    """Stage 1's buckets keep their samples' values (`Samples`: an exact max after a retraction); frozen and thawed
    they still do: every retraction after a freeze leaves what it leaves in a bucket never frozen."""
    frozen, plain = SourceBucket(), SourceBucket()
    held: list[Fact] = []
    for s in steps:
        if s[0] == "freeze":
            frozen.freeze()
            assert frozen.frozen and frozen.same(plain)
            continue
        fact, sign = s[1], s[2]
        if sign < 0:
            if fact not in held:
                continue  # stage 1 retracts only what it added
            held.remove(fact)
        else:
            held += [fact] * sign
        for b in (frozen, plain):
            b.apply(fact, sign)
        assert not frozen.frozen  # a change thaws
    assert figures(frozen) == figures(plain)
    for name in ("frt", "reply"):
        d, p = getattr(frozen, name), getattr(plain, name)
        assert type(d) is type(p) and (d.count <= 0 or d.values() == p.values())


def test_setting_a_frozen_buckets_maximum_thaws_it_only_when_it_changes() -> None:
    b = bucket_of([Fact(FRT, 0, "q", 12_000), Fact(FRT, 0, "q", 30_000), Fact(REPLY, 0, "q", 9_000)])
    b.freeze()
    b.set_max("frt", 30_000)
    b.set_max("reply", 9_000)
    assert b.frozen and b.maxima() == (30_000, 9_000)
    b.set_max("frt", 12_000)  # (a retraction lowered it)
    assert not b.frozen and b.maxima() == (12_000, 9_000) and b.frt.count == 2


def test_a_worker_freezing_its_old_buckets_publishes_what_one_that_never_freezes_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = floor_hour(seed=7, minutes=25)  # past every width (1 s, 5 s, 15 s, 60 s); some deliveries minutes late
    freezing, with_freezing = run(events)
    store = freezing.queues.merger.store
    held: list[Bucket] = [b for p in freezing.conversations.parts.values() for per in p.buckets.values()
                          for b in per.values()]
    held += [b for t in store.tables.values() for per in t.values() for b in per.values()]
    monkeypatch.setattr(Bucket, "freeze", lambda self: None)
    _, never = run(events)
    assert with_freezing == never  # every tick's views, field by field
    # The runs compared did differ: most buckets of the first were held frozen.
    assert sum(b.frozen for b in held) > 0.5 * len(held)
