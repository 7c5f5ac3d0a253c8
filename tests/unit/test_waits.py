"""Stage 2's open waits as arrays (services/core/waits.py), against a list of every buyer's wait."""

from __future__ import annotations

import math
from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.core.partials import Live
from services.core.waits import NO_WAITS, LiveSums, Waits

NOW = 1_800_000_000_000

# A partition's waits: start time -> buyers (a few starts repeat across partitions; some start after now).
partition_waits = st.dictionaries(st.integers(NOW - 3_600_000, NOW + 5_000), st.integers(1, 4), max_size=30)


def every_wait(parts: list[dict[int, int]]) -> list[int]:
    """One entry per waiting buyer: how long it has waited at NOW, shortest first."""
    return sorted(max(0, NOW - ts) for part in parts for ts, n in part.items() for _ in range(n))


@given(st.lists(partition_waits, min_size=1, max_size=5), st.sampled_from([0.01, 0.5, 0.9, 0.95, 1.0]))
def test_summed_waits_give_each_buyer_s_nearest_rank(parts: list[dict[int, int]], q: float) -> None:
    summed = Waits.summed(Waits.of_pairs(p.items()) for p in parts)
    waits = every_wait(parts)
    assert summed.total == len(waits)
    assert sorted(ts for ts, n in summed.items() for _ in range(n)) == \
        sorted(ts for p in parts for ts, n in p.items() for _ in range(n))
    if not waits:
        assert not summed
        return
    assert summed.oldest_ms(NOW) == waits[-1]
    assert summed.wait_ms(q, NOW) == waits[math.ceil(round(q * len(waits), 6)) - 1]


def test_a_tenth_of_ten_buyers_is_the_ninth_not_the_tenth() -> None:
    # 0.9 * 10 is 9.000000000000002 in floating point: the rank is still 9.
    w = Waits.of_pairs((NOW - i * 1000, 1) for i in range(1, 11))
    assert w.wait_ms(0.9, NOW) == 9000


def test_one_part_is_shared_not_copied_and_empties_are_one_object() -> None:
    one = Waits.of_pairs([(NOW - 5, 2)])
    assert Waits.summed([NO_WAITS, one, Waits.of_pairs([])]) is one
    assert Waits.summed([]) is NO_WAITS


def test_a_view_s_sum_reads_stage_1_s_record_and_leaves_first_waits_out() -> None:
    a, b = Live(), Live()
    a.open, a.unanswered, a.awaiting_reply = 2, 1, 2
    a.waiting.update({NOW - 10_000: 1, NOW - 4_000: 1})
    a.first_waiting[NOW - 10_000] = 1
    b.open, b.unassigned, b.awaiting_reply = 1, 1, 1
    b.waiting[NOW - 10_000] = 1
    parts = [LiveSums.from_json(orjson.loads(orjson.dumps(x.to_json()))) for x in (a, b)]
    assert parts[0] == LiveSums.of(a)
    assert Counter(dict(parts[0].first_waiting.items())) == a.first_waiting
    total = LiveSums.view_sum(parts)
    assert (total.open, total.unanswered, total.unassigned, total.awaiting_reply) == (3, 1, 1, 3)
    assert sorted(total.waiting.items()) == [(NOW - 10_000, 1), (NOW - 10_000, 1), (NOW - 4_000, 1)]
    assert not total.first_waiting
