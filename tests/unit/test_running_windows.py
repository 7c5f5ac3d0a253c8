"""Stage 2's running window totals equal windows summed afresh, whatever the order of puts and ticks.

A merger that has ticked through time (buckets replaced, removed, arriving late, slots entering and
leaving windows, pruning) must show exactly the views of a new merger given only the final partials.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.core.buckets import ARRIVAL, FRT, LEFT, NO_SAMPLES, REPLY, Bucket, Fact
from services.core.config import horizon_ms
from services.core.merge import QueueMerger
from services.core.scope import Scope, queue_total
from services.core.waits import LiveSums

BUCKET_MS = 5000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000
SCOPES = [Scope("acme", "acme-jd", "jd", "presales"), Scope("acme", "acme-tmall", "tmall", "presales"),
          Scope("lumi", "lumi-web", "web", "aftersales"),
          # A second shop of a tenant on a platform: the tenant+platform view, the tenant's and the queue's each
          # sum more than one shop.
          Scope("acme", "acme-jd-outlet", "jd", "presales")]

Facts = list[tuple[str, int]]
facts = st.tuples(st.sampled_from([ARRIVAL, FRT, REPLY, LEFT]), st.integers(0, 400_000))
put = st.tuples(
    st.sampled_from(["c", "a"]), st.integers(0, 2), st.integers(0, len(SCOPES) - 1),
    st.one_of(st.integers(-3, 14), st.integers(-24, 800)),  # slot: buckets back from now's (minus: ahead)
    st.one_of(st.none(), st.lists(facts, min_size=1, max_size=4)),
)
# Mostly the steps of a live floor (a tick a second, a bucket at a time), sometimes long gaps.
advance = st.one_of(st.sampled_from([1000, 5000, 6000, 30_000, 59_000, 61_000, 300_000]), st.integers(0, 400_000))
step = st.one_of(put.map(lambda p: ("put", p)), advance.map(lambda d: ("tick", d)),
                 st.just(("prune", 0)), st.tuples(st.integers(0, 2), st.integers(0, 9)).map(lambda x: ("live", x)))


def bucket_of(fs: Facts, start: int) -> Bucket:
    b = Bucket()
    for kind, v in fs:
        b.apply(Fact(kind, start + 1, "q", -1 if kind == LEFT and v % 7 == 0 else v), 1)
    return b


PutStep = tuple[str, int, int, int, Facts | None]  # (source, partition, scope index, buckets back, facts)


def put_at(arg: PutStep, now: int, bucket_ms: int) -> tuple[str, int, Scope, int, Facts | None]:
    """A `put` step as (source, partition, scope, bucket start, facts or None for a retraction): its slot
    counts buckets back from the one holding `now`."""
    src, part, si, n, fs = arg
    return src, part, SCOPES[si], now - now % bucket_ms - n * bucket_ms, fs


def hold(held: dict[Any, Any], key: Any, value: Any) -> None:
    """What a source holds after a put: `value`, or nothing when it is None."""
    if value is None:
        held.pop(key, None)
    else:
        held[key] = value


def replay(state: dict[tuple[Any, ...], Any], now: int) -> dict[Any, Any]:
    fresh = QueueMerger(BUCKET_MS)
    for (kind, src, part, scope, slot), value in state.items():
        if kind == "bucket":
            fresh.put_bucket(src, part, scope, slot, bucket_of(value, slot))
        else:
            fresh.put_live(src, part, scope, value)
    return fresh.views(now)


@settings(max_examples=200, deadline=None)
@example([("tick", 1000), ("put", ("c", 0, 0, 12, [(ARRIVAL, 0)])), ("tick", 5000)])
@given(st.lists(step, min_size=1, max_size=80))
def test_running_totals_equal_a_fresh_sum(steps: list[tuple[str, Any]]) -> None:
    merger = QueueMerger(BUCKET_MS)
    state: dict[tuple[Any, ...], Any] = {}
    now = T0 + 3_600_000
    for kind, arg in steps:
        if kind == "put":
            src, part, scope, slot, fs = put_at(arg, now, BUCKET_MS)
            merger.put_bucket(src, part, scope, slot, None if fs is None else bucket_of(fs, slot))
            hold(state, ("bucket", src, part, scope, slot), fs)
        elif kind == "tick":
            now += arg
            merger.views(now)
        elif kind == "prune":
            horizon = horizon_ms(60_000)
            merger.prune(now - horizon)
            before = now - horizon - (now - horizon) % 60_000  # slots go a whole minute at a time
            for key in [k for k in state if k[0] == "bucket" and k[4] + BUCKET_MS <= before]:
                del state[key]
        else:
            si, n = arg
            live = LiveSums(open=n) if n else None
            merger.put_live("c", 0, SCOPES[si], live)
            hold(state, ("live", "c", 0, SCOPES[si], 0), live)
    assert merger.views(now) == replay(state, now)
    # Buckets without samples share one empty distribution: nothing may have written into it.
    assert (NO_SAMPLES.count, NO_SAMPLES.total_ms, NO_SAMPLES.max_ms, NO_SAMPLES.bins) == (0, 0, 0, {})


def test_a_live_floor_tick_by_tick() -> None:
    """A tick a second for 20 minutes, recent buckets re-sent and retracted as stage 1 does."""
    rng = random.Random(11)
    merger = QueueMerger(BUCKET_MS)
    state: dict[tuple[Any, ...], Any] = {}
    now = T0 + 3_600_000
    for second in range(1, 1201):
        now += 1000
        for _ in range(rng.randint(0, 3)):
            # Few sources and slots, so partitions often share a bucket (merged maxima must follow retractions).
            src, part, scope = rng.choice("ca"), rng.randint(0, 1), rng.choice(SCOPES[:2])
            slot = now - now % BUCKET_MS - BUCKET_MS * rng.choice([0, 0, 1, 12, 13, 61, 719])
            key = ("bucket", src, part, scope, slot)
            if key in state and rng.random() < 0.3:
                del state[key]
                merger.put_bucket(src, part, scope, slot, None)
                continue
            fs = [*state.get(key, []), (rng.choice([ARRIVAL, FRT, REPLY, LEFT]), rng.randint(0, 400_000))]
            state[key] = fs
            merger.put_bucket(src, part, scope, slot, bucket_of(fs, slot))
        views = merger.views(now)
        if second % 20 == 0:
            assert views == replay(state, now), f"after {second} s"


def test_agent_views_take_turns_and_are_exact_as_of_their_build() -> None:
    """With agent views rebuilt every 5th call, each is at most 5 calls old and equals, to the last
    figure, the view a merger rebuilding every call showed at that view's as_of."""
    rng = random.Random(5)
    every, turns = QueueMerger(BUCKET_MS), QueueMerger(BUCKET_MS, agent_refresh_ticks=5)
    agents = [Scope("acme", "acme-jd", "jd", f"@agent:a{i}") for i in range(12)]
    history: dict[str, dict[Any, Any]] = {}  # as_of -> every view then
    now = T0 + 3_600_000
    for second in range(1, 41):
        now += 1000
        for merger in (every, turns):
            rng_state = rng.getstate()
            for scope in rng.sample(agents, 4):  # a few agents answer each second
                slot = now - now % BUCKET_MS
                merger.put_bucket("c", 0, scope, slot, bucket_of([(REPLY, rng.randint(1000, 90_000))], slot))
                merger.put_agent_state(scope, {"status": "online", "capacity": 3,
                                               "history": [[T0, "online", second % 3]]})
            merger.put_live("c", 0, SCOPES[0], LiveSums(open=second))
            if merger is every:
                rng.setstate(rng_state)  # the same changes for both
        full = every.views(now)
        history[full[queue_total("presales")]["as_of"]] = full
        shown = turns.views(now)
        assert shown[queue_total("presales")] == full[queue_total("presales")]  # queues: every call
        for key, view in shown.items():
            if not key.queue.startswith("@agent:"):
                continue
            assert view["as_of"] in list(history)[-5:], f"{key} older than 5 calls"
            assert view == history[view["as_of"]][key]
        if second > 5:
            assert len(turns.rebuilt & {k for k in shown if k.queue.startswith("@agent:")}) < len(agents)


TURNS = """
from services.core.merge import QueueMerger
from services.core.scope import Scope
m = QueueMerger(5000, agent_refresh_ticks=5)
keys = [Scope("acme", "acme-jd", "jd", f"@agent:a{i}") for i in range(12)]
m.built = {k: {} for k in keys}
out = []
for t in range(5):
    m.ticks = t
    out.append([k.queue for k in keys if m._waits(k)])
print(out)
"""


def test_agent_turns_are_the_same_in_every_process() -> None:
    """Two workers (or one after a restart) rotate agent views alike: the turn is not drawn from
    Python's per-process salted str hash."""
    import os
    import subprocess
    import sys

    runs = {
        subprocess.run([sys.executable, "-c", TURNS], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1, runs


def _sans_clock(view: Any) -> Any:
    """A view without what moves with the clock alone (its as_of, each window's span and rates)."""
    windows = {n: {k: v for k, v in w.items() if k not in ("span_s", "arrivals_per_min")}
               for n, w in view["windows"].items()}
    return {**view, "as_of": None, "windows": windows}


def test_fast_steps_build_the_changed_queue_views_exactly_and_keep_the_rest() -> None:
    """Stage 2's fast step (every 250 ms between full calls): each queue view it builds equals a fresh merger's
    at that moment; every queue view it keeps differs from a fresh one by the clock alone (nothing it
    counts changed); agents' views wait for the full call, which equals a fresh merger again."""
    rng = random.Random(23)
    scopes = [*SCOPES, Scope("acme", "acme-jd", "jd", "@agent:a1")]
    merger = QueueMerger(BUCKET_MS)
    state: dict[tuple[Any, ...], Any] = {}
    now = T0 + 3_600_000
    fast_built = kept = 0
    for step_no in range(1, 801):
        now += 250
        for _ in range(rng.choice([0, 0, 1, 2])):
            src, part, scope = rng.choice("ca"), rng.randint(0, 1), rng.choice(scopes)
            slot = now - now % BUCKET_MS - BUCKET_MS * rng.choice([0, 0, 1, 12, 719])
            bucket_key = ("bucket", src, part, scope, slot)
            fs = [*state.get(bucket_key, []), (rng.choice([ARRIVAL, FRT, REPLY, LEFT]), rng.randint(0, 400_000))]
            state[bucket_key] = fs
            merger.put_bucket(src, part, scope, slot, bucket_of(fs, slot))
        if rng.random() < 0.1:
            si = rng.randint(0, 2)
            live = LiveSums(open=rng.randint(1, 9))
            merger.put_live("c", 0, SCOPES[si], live)
            hold(state, ("live", "c", 0, SCOPES[si], 0), live)
        before = dict(merger.built)
        full = step_no % 4 == 0
        views = merger.views(now, changed_queues_only=not full)
        fresh = replay(state, now)
        if full:
            assert views == fresh, f"full call at step {step_no}"
            continue
        assert not any(k.queue.startswith("@agent:") for k in merger.rebuilt)
        for key, view in views.items():
            if key in merger.rebuilt:
                assert view == fresh[key]
                fast_built += 1
            else:
                assert view is before[key]
                if not key.queue.startswith("@agent:"):
                    assert _sans_clock(view) == _sans_clock(fresh[key]), f"{key} changed but was kept"
                    kept += 1
    assert fast_built > 100 and kept > 100  # both paths were taken often
