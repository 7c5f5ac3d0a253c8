"""What the scorer keeps per conversation is compact, and keeping less changes no figure.

A conversation's record round-trips exactly (state, pending events, the digests of folded events;
its facts are derived from them), dedupe holds for folded events through the
table, and a scorer that keeps no decoded conversation at all (every event decodes its
conversation from the table's bytes) or rebuilds everything from the table gives the very same
views as one that keeps them.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import orjson
from hypothesis import given

from services.core.buckets import Fact
from services.core.conversation import DIGEST_SIZE, Conversation, ConvEvent, ConvState, id_digest
from services.core.events import parse_event
from services.core.scope import queue_total
from services.scorer.inprocess import InProcessScorer
from tests.reference import reference_views
from tests.unit.test_scorer_properties import CHEAP_PROPERTY, Floor, assert_matches_reference, final_now, floors

T = 1_800_000_000_000
GRACE = 60_000
HORIZON = 100_000  # short, so that a few minutes of events fold some of them


def ev(i: int, etype: str, t_s: float, cid: str = "c", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{cid}-{i:03d}", "type": etype, "ts": T + round(t_s * 1000), "tenant": "acme",
            "shop_id": "acme-jd", "platform": "jd", "conversation_id": cid, **extra}


def conv_event(obj: dict[str, Any]) -> ConvEvent:
    return ConvEvent.of(parse_event(obj))


def facts_after_base(conv: Conversation) -> Counter[Fact]:
    """The facts a record keeps (derived): those of folded events lie beyond the horizon, out of every window."""
    return Counter({f: n for f, n in conv.facts.items() if f.ts > conv.base_ts})


def same(a: Conversation, b: Conversation) -> None:
    assert (a.tenant, a.shop_id, a.platform) == (b.tenant, b.shop_id, b.platform)
    assert a.base == b.base and a.state == b.state
    assert a.pending == b.pending
    assert facts_after_base(a) == facts_after_base(b)
    assert a.folded_ids == b.folded_ids
    assert (a.base_ts, a.last_event_ts) == (b.base_ts, b.last_event_ts)


def roundtrip(conv: Conversation) -> Conversation:
    return Conversation.from_json(orjson.loads(orjson.dumps(conv.to_json())))


def busy_conversation() -> tuple[Conversation, list[dict[str, Any]]]:
    """Folded and pending events, a transfer, an assignment, replies (facts with values), two equal facts."""
    events = [
        ev(0, "conversation.opened", 0, queue="presales"),
        ev(1, "message", 1, sender="customer"),
        ev(2, "message", 1, sender="customer"),  # the same fact twice: a count of 2
        ev(3, "conversation.assigned", 3, agent_id="a1"),
        ev(4, "message", 9, sender="agent", agent_id="a1"),
        ev(5, "conversation.transferred", 20, to_queue="aftersales", to_agent_id="a2"),
        ev(6, "message", 200, sender="customer"),
        ev(7, "message", 230, sender="agent", agent_id="a2"),
        ev(8, "order.placed", 231, amount="1", currency="CNY"),
        ev(9, "message", 232, sender="bot"),
    ]
    conv = Conversation("acme", "acme-jd", "jd")
    for e in events:
        conv.apply(conv_event(e), e["ts"], GRACE, HORIZON)
    return conv, events


def test_a_record_round_trips_exactly() -> None:
    conv, events = busy_conversation()
    assert conv.base_ts > 0 and conv.pending and conv.folded_ids  # some folded, some pending
    assert conv.facts[Fact("msg_customer", T + 1000, "presales")] == 2
    back = roundtrip(conv)
    same(back, conv)
    assert back.facts == facts_after_base(conv) and back.facts[Fact("reply", T + 230_000, "aftersales", 30_000)] == 1
    for e in events:
        assert back.has_seen(e["event_id"])
    assert not back.has_seen("c-999")


def test_a_fresh_and_an_empty_conversation_round_trip() -> None:
    empty = Conversation("t", "s", "p")
    same(roundtrip(empty), empty)
    conv = Conversation("t", "s", "p")
    conv.apply(conv_event(ev(0, "message", 0, sender="customer")), T, GRACE)
    same(roundtrip(conv), conv)


def test_an_open_conversation_record_is_small() -> None:
    conv = Conversation("acme", "acme-tmall", "tmall")
    conv.apply(conv_event(ev(1, "conversation.opened", 0, cid="mem-acme-tmall-0000001", queue="presales")),
               T, GRACE)
    conv.apply(conv_event(ev(2, "message", 1.5, cid="mem-acme-tmall-0000001", sender="customer")), T, GRACE)
    assert len(orjson.dumps(conv.to_json())) < 200  # 519 bytes in the dict form


def test_folded_events_stay_duplicates_by_digest_only_at_digest_boundaries() -> None:
    conv, events = busy_conversation()
    n_folded = len(conv.folded_ids) // DIGEST_SIZE
    assert n_folded == len(events) - len(conv.pending)
    for e in events:
        before = (conv.state.to_json(), Counter(conv.facts))
        assert conv.apply(conv_event(e), e["ts"], GRACE) == ([], False)
        assert (conv.state.to_json(), Counter(conv.facts)) == before
    # A digest that only appears across two stored digests is not one of them.
    a, b = id_digest("x"), id_digest("y")
    probe = (a + b)[4:12]
    fresh = Conversation("t", "s", "p", folded_ids=a + b)
    assert not fresh.has_seen("z") and fresh.folded_ids.find(probe) == 4
    assert fresh.has_seen("x") and fresh.has_seen("y")


def test_an_idle_conversation_is_not_kept_decoded() -> None:
    s = InProcessScorer(event_partitions=1)
    events = []
    for i in range(200):
        cid = f"k{i}"
        events += [ev(0, "conversation.opened", i * 10, cid=cid, queue="presales"),
                   ev(1, "message", i * 10 + 1, cid=cid, sender="customer")]
    s.feed(events)
    # Events every 10 s: the conversations of the last minute of event time are kept, the others are bytes.
    assert 5 <= len(s.conversations.cache) <= 8
    assert sum(not k.startswith(b"\x00") for k in s.conv_table) == 200  # (besides the partition's watermark)
    assert all(sys.getsizeof(v) < 250 for v in s.conv_table.values())
    assert s.tick(0)[queue_total("presales")]["live"]["open"] == 200


def run_one_by_one(stream: list[dict[str, Any]], cache_max: int) -> dict[Any, Any]:
    """One event per batch (each batch is written to the table); `cache_max=0`: nothing is kept decoded,
    every event decodes its conversation from the table's bytes."""
    scorer = InProcessScorer()
    scorer.conversations.store.cache_max = cache_max
    for e in stream:
        scorer.feed([e])
        assert len(scorer.conversations.cache) <= cache_max
    return scorer.tick(0)


def run_halves(stream: list[dict[str, Any]], rebuild: bool) -> tuple[dict[Any, Any], dict[bytes, bytes]]:
    """Feed half, (drop every partition and rebuild it from the table,) feed the rest."""
    scorer = InProcessScorer()
    half = len(stream) // 2
    scorer.feed(stream[:half])
    if rebuild:
        everything = set(range(scorer.event_partitions))
        scorer.conversations.revoke(everything)
        scorer._route(scorer.conversations.rebuild(everything))
    scorer.feed(stream[half:])
    return scorer.tick(0), scorer.conv_table


@CHEAP_PROPERTY
@given(floors(max_conversations=12))
def test_decoding_every_event_from_the_table_changes_no_figure(floor: Floor) -> None:
    want = run_one_by_one(floor.stream, cache_max=200_000)
    assert run_one_by_one(floor.stream, cache_max=0) == want
    assert_matches_reference(want, reference_views(floor.events, final_now(floor.events)))


@CHEAP_PROPERTY
@given(floors(max_conversations=12))
def test_a_rebuild_from_the_table_changes_no_figure(floor: Floor) -> None:
    # Without agent statuses: their times move a partition's watermark but are not in the conversations
    # table, so a rebuild (before and after this change) starts from the newest conversation event's time.
    stream = [e for e in floor.stream if e["type"] != "agent.status"]
    assert run_halves(stream, rebuild=True) == run_halves(stream, rebuild=False)


def test_state_defaults_round_trip() -> None:
    for state in (ConvState(), ConvState(queue="q"), ConvState(opened=True),
                  ConvState(conversion=(("x", None, T - 3),)), ConvState(conversion=(("x", T, None), ("y", T, T)))):
        conv = Conversation("t", "s", "p", base=state, state=state.copy(), base_ts=T, last_event_ts=T + 5)
        same(roundtrip(conv), conv)
