"""Partials travel in bundles (services/core/wire.py): one Kafka record per partials partition per send.

Stage 2 must get from a bundle exactly the partials, tombstones included, in the order stage 1 sent them for that
partition (a later partial of a key replaces an earlier one, and a watermark comes after its tick's partials).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.wire import bundle_partials, is_bundle_key, unbundle_partials
from services.scorer.stages import Out, in_bundles

partial = st.tuples(st.binary(max_size=40), st.none() | st.binary(max_size=200))


@given(st.lists(partial, max_size=50))
def test_a_bundle_gives_back_its_partials_in_order(partials: list[tuple[bytes, bytes | None]]) -> None:
    assert list(unbundle_partials(bundle_partials(partials))) == partials


def test_a_cut_bundle_is_refused_not_read_short() -> None:
    raw = bundle_partials([(b'["c",0]', b'{"n":1}'), (b'["c",1]', b'{"n":2}')])
    with pytest.raises(ValueError):
        list(unbundle_partials(raw[:-3]))


records = st.lists(
    st.tuples(st.sampled_from(["partials", "views", "agent_changes"]), st.integers(0, 2), partial), max_size=60,
)


@given(records, st.integers(1, 300))
def test_sends_keep_every_partition_order_and_leave_other_topics_alone(
    given_records: list[tuple[str, int, tuple[bytes, bytes | None]]], max_bytes: int,
) -> None:
    outs = [Out(topic, key, value, p) for topic, p, (key, value) in given_records]
    keys = (f"\x00partials:t-{i}".encode() for i in itertools.count())
    sent = in_bundles(outs, lambda: next(keys), max_bytes)
    assert [r for r in sent if r.topic != "partials"] == [r for r in outs if r.topic != "partials"]
    bundles = [r for r in sent if r.topic == "partials"]
    assert all(is_bundle_key(r.key) for r in bundles)
    assert len({r.key for r in bundles}) == len(bundles)  # unique: nothing may be compacted away
    for p in range(3):
        wanted = [(r.key, r.value) for r in outs if r.topic == "partials" and r.partition == p]
        got = [kv for r in bundles if r.partition == p for kv in unbundle_partials(r.value or b"")]
        assert got == wanted
    for r in bundles:  # at most max_bytes of keys and values, unless one partial alone is larger
        entries = list(unbundle_partials(r.value or b""))
        assert len(entries) == 1 or sum(len(k) + len(v or b"") for k, v in entries) <= max_bytes


def test_a_send_of_one_tick_is_one_record_per_partition() -> None:
    outs = [Out("partials", f'["c",0,{i}]'.encode(), b"{}", i % 3) for i in range(300)]
    keys = (f"\x00partials:t-{i}".encode() for i in itertools.count())
    assert sorted(r.partition or 0 for r in in_bundles(outs, lambda: next(keys))) == [0, 1, 2]
