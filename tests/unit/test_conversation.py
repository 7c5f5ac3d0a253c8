"""Hand-written conversations through the state machine and the in-process scorer.

Every expected figure is worked out by hand in the test from shared/METRICS.md, EVENTS.md and the
interpretation list (tests/reference.py); each case is also checked against the reference.
Times are seconds after T (a minute boundary), so every event of a case lies in every window.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from services.core.buckets import ARRIVAL, CSAT, FRT, LEFT, MSG_AGENT, MSG_CUSTOMER, REPLY, Fact
from services.core.conversation import Conversation, ConvEvent, ConvState, step
from services.core.events import parse_event
from services.core.figures import QueueView, WindowFigures
from services.core.scope import Scope, is_agent_scope
from services.scorer.inprocess import InProcessScorer
from tests.reference import reference_views
from tests.unit.test_scorer_properties import assert_matches_reference

T = 1_800_000_000_000  # a minute boundary
TENANT, SHOP, PLATFORM = "acme", "acme-jd", "jd"
GRACE = 60_000


def at(seconds: float) -> int:
    return T + round(seconds * 1000)


class Script:
    """Builds events of one shop; ids number the events in the order they are written."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def ev(self, cid: str, etype: str, t: float, **extra: Any) -> dict[str, Any]:
        e = {"event_id": f"{cid}-{len(self.events):03d}", "type": etype, "ts": at(t), "tenant": TENANT,
             "shop_id": SHOP, "platform": PLATFORM, "conversation_id": cid, **extra}
        self.events.append(e)
        return e

    def opened(self, cid: str, t: float, queue: str = "presales") -> None:
        self.ev(cid, "conversation.opened", t, queue=queue)

    def customer(self, cid: str, t: float, **extra: Any) -> None:
        self.ev(cid, "message", t, sender="customer", **extra)

    def agent(self, cid: str, t: float, agent_id: str = "a1") -> None:
        self.ev(cid, "message", t, sender="agent", agent_id=agent_id)

    def bot(self, cid: str, t: float) -> None:
        self.ev(cid, "message", t, sender="bot")

    def status(self, agent_id: str, t: float, status: str, capacity: int, queues: list[str]) -> None:
        self.events.append({"event_id": f"st-{agent_id}-{len(self.events):03d}", "type": "agent.status", "ts": at(t),
                            "tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, "agent_id": agent_id,
                            "status": status, "capacity": capacity, "queues": queues})


def score(events: list[dict[str, Any]], **kwargs: Any) -> dict[Scope, QueueView]:
    scorer = InProcessScorer(**kwargs)
    scorer.feed(events)
    return scorer.tick(0)


def view(views: dict[Scope, QueueView], queue: str = "presales") -> QueueView:
    return views[Scope(TENANT, SHOP, PLATFORM, queue)]


def window(views: dict[Scope, QueueView], queue: str = "presales",
           name: str = "15m") -> WindowFigures:
    return view(views, queue)["windows"][name]  # type: ignore[no-any-return]


def facts_of(events: list[dict[str, Any]], agents: bool = False) -> list[Fact]:
    """The facts `step` records for one conversation's events in (ts, event_id) order (net of retractions):
    the queue's, or with `agents` the ones attributed to agents (the per-agent view)."""
    state = ConvState()
    out: list[Fact] = []
    for e in sorted((parse_event(o) for o in events), key=lambda e: (e.ts_ms, e.event_id)):
        for fact, sign in step(state, ConvEvent.of(e)):
            if is_agent_scope(fact.queue) != agents:
                continue
            if sign > 0:
                out.append(fact)
            else:
                out.remove(fact)
    return out


def values(facts: list[Fact], kind: str) -> list[int]:
    """Values of the queue's facts of a kind (not the copies attributed to agents)."""
    return [f.value for f in facts if f.kind == kind and not is_agent_scope(f.queue)]


def check_reference(events: list[dict[str, Any]], views: dict[Scope, QueueView]) -> None:
    assert_matches_reference(views, reference_views(events))


# --- cases -------------------------------------------------------------------------------------

def test_events_md_example_first_response_17_5_s() -> None:
    events: list[dict[str, Any]] = [
        {"event_id": "jd-77-0001", "type": "conversation.opened", "ts": "2026-11-11T00:00:01+08:00",
         "tenant": "acme", "shop_id": "acme-jd", "platform": "jd", "conversation_id": "jd-77", "queue": "presales"},
        {"event_id": "jd-77-0002", "type": "message", "ts": "2026-11-11T00:00:01.500+08:00", "tenant": "acme",
         "shop_id": "acme-jd", "platform": "jd", "conversation_id": "jd-77", "sender": "customer", "chars": 18},
        {"event_id": "jd-77-0003", "type": "conversation.assigned", "ts": "2026-11-11T00:00:04+08:00",
         "tenant": "acme", "shop_id": "acme-jd", "platform": "jd", "conversation_id": "jd-77", "agent_id": "a-12"},
        {"event_id": "jd-77-0004", "type": "message", "ts": "2026-11-11T00:00:19+08:00", "tenant": "acme",
         "shop_id": "acme-jd", "platform": "jd", "conversation_id": "jd-77", "sender": "agent", "agent_id": "a-12",
         "chars": 40},
    ]
    facts = facts_of(events)
    assert values(facts, FRT) == [17_500]  # 19 - 1.5
    assert values(facts, REPLY) == [17_500]
    assert values(facts, LEFT) == [17_500]
    assert {f.queue for f in facts} == {"presales"}

    views = score(events)
    w = window(views, name="1m")
    assert w["arrivals"] == 1
    assert w["frt"]["count"] == 1 and w["frt"]["mean_s"] == 17.5 and w["frt"]["max_s"] == 17.5
    assert w["frt"]["p50_s"] == pytest.approx(17.5, rel=0.02)
    assert w["reply"]["count"] == 1 and w["reply"]["mean_s"] == 17.5 and w["reply"]["slow"] == 0
    assert w["sl"] == {"30": 1.0, "180": 1.0}
    assert w["abandoned"] == 0 and w["abandon_rate"] == 0.0
    assert w["aht_s"] is None  # not closed
    assert w["answer_question_ratio"] == 1.0
    assert w["conversion_rate"] == 0.0  # one conversation with a human reply, none with an order
    live = view(views)["live"]
    assert (live["open"], live["unanswered"], live["awaiting_reply"], live["oldest_wait_s"]) == (1, 0, 0, None)
    check_reference(events, views)


def test_several_customer_messages_keep_the_earliest_wait() -> None:
    s = Script()
    s.opened("c", 0)
    s.customer("c", 1)
    s.customer("c", 3)
    s.customer("c", 6)
    s.agent("c", 21)  # first reply: FRT 20 s (21 - 1), reply 20 s
    s.customer("c", 30)
    s.customer("c", 35)
    s.agent("c", 50)  # reply 20 s (50 - 30)
    s.agent("c", 52)  # nobody waits: no reply time
    s.customer("c", 60)  # waits again, since 60 s
    s.status("a1", 90, "online", 2, ["presales"])  # moves now to 90 s
    facts = facts_of([e for e in s.events if e["type"] != "agent.status"])
    assert values(facts, FRT) == [20_000]
    assert values(facts, REPLY) == [20_000, 20_000]

    views = score(s.events)
    w = window(views)
    assert w["frt"]["count"] == 1 and w["frt"]["mean_s"] == 20.0
    assert w["reply"]["count"] == 2 and w["reply"]["mean_s"] == 20.0 and w["reply"]["max_s"] == 20.0
    assert w["answer_question_ratio"] == 3 / 6
    live = view(views)["live"]
    assert live["unanswered"] == 0  # answered once: never unanswered again
    assert live["awaiting_reply"] == 1
    assert live["oldest_wait_s"] == 30.0 and live["wait_p50_s"] == 30.0 and live["wait_p90_s"] == 30.0
    assert live["agents_online"] == 1 and live["slots_active"] == 1  # a1 replied: implicitly assigned
    check_reference(s.events, views)


def test_bot_then_handoff_starts_the_human_wait_at_the_handoff() -> None:
    s = Script()
    s.opened("c", 0)
    s.customer("c", 0)
    s.bot("c", 1)
    s.bot("c", 4)  # bot messages clear nothing
    s.customer("c", 10)
    s.ev("c", "conversation.handoff", 40)  # frt_start and waiting_since = 40 s
    s.agent("c", 52)  # FRT 12 s, reply 12 s (not 52 s from the first customer message)
    s.bot("c", 60)
    s.ev("c", "conversation.handoff", 70)  # answered already: only the wait restarts
    s.agent("c", 75)  # reply 5 s, no second FRT
    facts = facts_of(s.events)
    assert values(facts, FRT) == [12_000]
    assert values(facts, REPLY) == [12_000, 5_000]

    views = score(s.events)
    w = window(views)
    assert w["frt"]["count"] == 1 and w["frt"]["mean_s"] == 12.0
    assert w["reply"]["count"] == 2 and w["reply"]["mean_s"] == 8.5
    assert w["sl"] == {"30": 1.0, "180": 1.0}
    assert w["answer_question_ratio"] == 2 / 2  # bot messages are in no ratio
    check_reference(s.events, views)


def test_bot_resolved_conversation_is_outside_service_level_and_abandonment() -> None:
    s = Script()
    s.opened("c", 0)
    s.customer("c", 1)
    s.bot("c", 2)
    s.ev("c", "conversation.closed", 30, reason="bot_resolved")
    views = score(s.events)
    w = window(views)
    assert w["sl"] == {"30": None, "180": None} and w["abandon_rate"] is None and w["abandoned"] == 0
    assert w["self_service_rate"] == 1.0 and w["resolution_rate"] == 1.0
    assert w["aht_s"] is None  # no agent handled it
    assert view(views)["live"]["open"] == 0
    check_reference(s.events, views)


def test_transfer_counts_out_of_the_old_queue_and_the_answer_in_the_new_one() -> None:
    s = Script()
    s.opened("c", 0, "presales")
    s.customer("c", 1)
    s.ev("c", "conversation.transferred", 10, to_queue="aftersales", to_agent_id="a2")  # assigns a2 at 10 s
    s.agent("c", 25, "a2")  # FRT 24 s and reply 24 s, in aftersales
    s.customer("c", 40, queue="presales")  # a queue on a later event changes nothing
    facts = facts_of(s.events)
    assert [(f.kind, f.queue) for f in facts if f.kind in (ARRIVAL, "transfer_out", FRT, MSG_CUSTOMER, MSG_AGENT)] == [
        (ARRIVAL, "presales"), (MSG_CUSTOMER, "presales"), ("transfer_out", "presales"), (MSG_AGENT, "aftersales"),
        (FRT, "aftersales"), (MSG_CUSTOMER, "aftersales"),
    ]

    views = score(s.events)
    pre, after = window(views, "presales"), window(views, "aftersales")
    assert pre["arrivals"] == 1 and pre["transfer_rate"] == 1.0
    assert pre["frt"]["count"] == 0 and pre["sl"] == {"30": None, "180": None}
    assert pre["answer_question_ratio"] == 0.0  # one customer message, no agent message in presales
    assert after["arrivals"] == 0 and after["transfer_rate"] is None
    assert after["frt"]["count"] == 1 and after["frt"]["mean_s"] == 24.0 and after["sl"]["30"] == 1.0
    assert after["answer_question_ratio"] == 1.0
    assert view(views, "presales")["live"]["open"] == 0
    live = view(views, "aftersales")["live"]
    assert (live["open"], live["unanswered"], live["awaiting_reply"]) == (1, 0, 1)
    check_reference(s.events, views)


def test_abandoned_timeout_bot_resolved_and_resolved_without_reply() -> None:
    s = Script()
    s.customer("c1", 0, queue="presales")
    s.ev("c1", "conversation.closed", 50, reason="abandoned")  # abandoned
    s.customer("c2", 0, queue="presales")
    s.ev("c2", "conversation.closed", 70, reason="timeout")  # abandoned
    s.customer("c3", 0, queue="presales")
    s.bot("c3", 1)
    s.ev("c3", "conversation.closed", 5, reason="bot_resolved")  # neither answered nor abandoned
    s.customer("c4", 0, queue="presales")
    s.ev("c4", "conversation.closed", 10, reason="resolved")  # resolved without a human reply: neither
    s.customer("c5", 0, queue="presales")
    s.agent("c5", 10)  # answered in 10 s
    s.ev("c5", "conversation.closed", 20, reason="resolved")
    s.opened("c6", 0)
    s.ev("c6", "conversation.closed", 40, reason="abandoned")  # never wrote: never unanswered, not abandoned
    views = score(s.events)
    w = window(views)
    assert w["arrivals"] == 6
    assert w["abandoned"] == 2
    assert w["abandon_rate"] == 2 / 3  # c1, c2 of the three that left the unanswered state (c1, c2, c5)
    assert w["sl"] == {"30": 1 / 3, "180": 1 / 3}
    assert w["self_service_rate"] == 1 / 6 and w["resolution_rate"] == 3 / 6
    assert w["aht_s"] == 10.0  # only c5 was handled: assigned by its reply at 10 s, closed at 20 s
    live = view(views)["live"]
    assert (live["open"], live["unanswered"], live["awaiting_reply"]) == (0, 0, 0)
    check_reference(s.events, views)


def test_handle_time_from_the_first_assignment_and_agent_slots() -> None:
    s = Script()
    s.status("a1", 0, "online", 1, ["presales"])
    s.status("a2", 0, "busy", 2, ["presales"])
    s.opened("c1", 0)
    s.customer("c1", 1)
    s.ev("c1", "conversation.assigned", 10, agent_id="a1")
    s.ev("c1", "conversation.assigned", 20, agent_id="a2")  # replaces the assignee; handle time still from 10 s
    s.agent("c1", 30, "a2")
    s.ev("c1", "conversation.closed", 100, reason="resolved")  # handle 90 s
    s.opened("c2", 0)
    s.customer("c2", 2)
    s.agent("c2", 30, "a1")  # implicit assignment at 30 s
    s.ev("c2", "conversation.closed", 90, reason="resolved")  # handle 60 s
    s.opened("c3", 0)
    s.customer("c3", 3)
    s.ev("c3", "conversation.closed", 50, reason="abandoned")  # never handled
    s.opened("c4", 5)
    s.customer("c4", 5)
    s.ev("c4", "conversation.assigned", 6, agent_id="a1")  # open, assigned, unanswered
    views = score(s.events)
    w = window(views)
    assert w["aht_s"] == 75.0  # (90 + 60) / 2
    assert w["resolution_rate"] == 2 / 3
    live = view(views)["live"]
    assert (live["open"], live["unanswered"], live["unassigned"], live["assigned"]) == (1, 1, 0, 1)
    assert live["agents_online"] == 2 and live["agents_away"] == 0
    assert live["agents_available"] == 0  # a1 has 1 of 1 chats; a2 is busy
    assert (live["slots_capacity"], live["slots_active"]) == (3, 1)
    assert live["slot_utilization"] == 1 / 3
    check_reference(s.events, views)


def test_after_close_only_counts_ratings_orders_and_messages() -> None:
    s = Script()
    s.opened("c", 0)
    s.customer("c", 1)
    s.agent("c", 5)
    s.ev("c", "conversation.closed", 10, reason="resolved")
    s.ev("c", "conversation.closed", 12, reason="abandoned")  # second close: ignored
    s.customer("c", 20)  # counted as a message; a closed conversation waits for nobody
    s.agent("c", 25)  # counted; the latest human reply moves, no reply time
    s.ev("c", "csat.rated", 30, score=4)
    s.ev("c", "csat.rated", 31, score=2)
    s.ev("c", "order.placed", 40, amount="10", currency="CNY")
    s.ev("c", "order.placed", 41, amount="12", currency="CNY")  # the same conversation: counted once
    views = score(s.events)
    w = window(views)
    assert w["reply"]["count"] == 1 and w["abandoned"] == 0
    assert w["answer_question_ratio"] == 1.0  # 2 agent / 2 customer messages
    assert w["csat"] == {"mean": 3.0, "satisfied_share": 0.5, "participation": 2.0, "count": 2}
    assert w["conversion_rate"] == 1.0
    assert w["resolution_rate"] == 1.0
    assert view(views)["live"]["awaiting_reply"] == 0
    check_reference(s.events, views)


def test_proactive_agent_message_is_not_a_first_response() -> None:
    s = Script()
    s.opened("c", 0)
    s.agent("c", 2)  # nobody asked yet: no FRT, no reply time
    s.customer("c", 10)
    s.agent("c", 16)  # FRT 6 s from the first customer message
    facts = facts_of(s.events)
    assert values(facts, FRT) == [6_000] and values(facts, REPLY) == [6_000]
    check_reference(s.events, score(s.events))


def test_duplicates_change_nothing() -> None:
    s = Script()
    s.status("a1", 0, "online", 2, ["presales", "aftersales"])
    s.opened("c1", 0)
    s.customer("c1", 1)
    s.agent("c1", 9)
    s.ev("c1", "conversation.transferred", 12, to_queue="aftersales")
    s.customer("c1", 20)
    s.ev("c1", "conversation.closed", 70, reason="timeout")
    s.customer("c2", 3, queue="presales")
    s.ev("c2", "conversation.closed", 33, reason="abandoned")
    once = score(s.events)

    scorer = InProcessScorer()
    for e in s.events:
        scorer.feed([e, e])
        scorer.tick(0)
    scorer.feed(s.events)  # a full redelivery
    scorer.feed(s.events[::2])
    assert scorer.tick(0) == once
    assert scorer.metrics.events.labels("duplicate")._value.get() == 2 * (len(s.events) - 1) + len(s.events[::2]) - 1
    check_reference(s.events + s.events, once)


def test_reply_arriving_before_the_customer_message_is_replayed_in_event_time_order() -> None:
    s = Script()
    s.customer("c", 2, queue="presales")
    s.agent("c", 12)  # carries no queue
    customer, reply = s.events

    # The reply comes first: the conversation opens at 12 s in `unknown`, with no FRT yet.
    conv = Conversation(TENANT, SHOP, PLATFORM)
    first, late = conv.apply(ConvEvent.of(parse_event(reply)), at(12), GRACE)
    assert not late
    assert (Fact(ARRIVAL, at(12), "unknown"), 1) in first and not values([f for f, _ in first], FRT)
    # The customer message is 10 s older: replayed in (ts, event_id) order, the unknown arrival is retracted.
    second, late = conv.apply(ConvEvent.of(parse_event(customer)), at(12), GRACE)
    assert not late
    assert (Fact(ARRIVAL, at(12), "unknown"), -1) in second
    assert (Fact(ARRIVAL, at(2), "presales"), 1) in second
    assert (Fact(FRT, at(12), "presales", 10_000), 1) in second
    assert {f.queue for f in conv.facts if not is_agent_scope(f.queue)} == {"presales"}

    views = score([reply, customer])
    assert views == score([customer, reply])
    assert all(k.queue != "unknown" for k in views)  # nothing is left behind in `unknown`
    assert window(views)["frt"]["mean_s"] == 10.0 and window(views)["arrivals"] == 1
    check_reference(s.events, views)


def test_out_of_order_within_grace_matches_the_reference() -> None:
    s = Script()
    for i in range(6):
        cid = f"c{i}"
        s.opened(cid, 10 * i)
        s.customer(cid, 10 * i + 1)
        s.customer(cid, 10 * i + 4)
        s.agent(cid, 10 * i + 7 + i)
        s.customer(cid, 10 * i + 30)
        s.agent(cid, 10 * i + 45)
    in_order = score(s.events)
    rnd = random.Random(3)
    for _ in range(5):
        shuffled = sorted(s.events, key=lambda e: e["ts"] + rnd.uniform(0, GRACE))
        assert_matches_reference(score(shuffled), reference_views(s.events))  # a max may be bounded (4%)
    check_reference(s.events, in_order)


def test_late_event_beyond_grace_is_counted_late_and_applied() -> None:
    s = Script()
    s.customer("a", 0, queue="presales")
    s.agent("a", 10)  # FRT 10 s
    s.opened("b", 200)  # moves the watermark (one partition) to 200 s
    rating = s.ev("a", "csat.rated", 5, score=5)  # 195 s behind: beyond the 60 s grace
    customer = s.ev("a", "message", 3, sender="customer")  # older than the reply that answered it

    # The state machine: the rating is late (5 s < 200 s - 60 s), still applied in its own bucket.
    conv = Conversation(TENANT, SHOP, PLATFORM)
    for e, wm in ((s.events[0], at(0)), (s.events[1], at(10))):
        assert conv.apply(ConvEvent.of(parse_event(e)), wm, GRACE)[1] is False
    delta, late = conv.apply(ConvEvent.of(parse_event(rating)), at(200), GRACE)
    assert late and delta == [(Fact(CSAT, at(5), "presales", 5), 1)]
    # The late customer message lands where it belongs, before the reply at 10 s that answered it: one
    # more question (and the reply's wait is still from 0 s), not a buyer waiting since 3 s (METRICS.md:
    # "a late customer message older than the reply that answered it is not a waiting buyer").
    delta, late = conv.apply(ConvEvent.of(parse_event(customer)), at(200), GRACE)
    assert late and delta == [(Fact(MSG_CUSTOMER, at(3), "presales"), 1)]
    assert conv.state.waiting_since is None and values(list(conv.facts), FRT) == [10_000]
    assert values(list(conv.facts), REPLY) == [10_000]

    # The scorer: both are counted as late (the late-events counter) and applied.
    scorer = InProcessScorer(event_partitions=1)
    scorer.feed(s.events)
    views = scorer.tick(0)
    assert scorer.metrics.late_events._value.get() == 2
    w = window(views)
    assert w["csat"]["mean"] == 5.0 and w["answer_question_ratio"] == 1 / 2
    assert w["frt"]["count"] == 1 and w["frt"]["mean_s"] == 10.0
    live = view(views)["live"]
    assert live["awaiting_reply"] == 0 and live["oldest_wait_s"] is None  # nobody waits: no oldest_wait page
    check_reference(s.events, views)
    # A late duplicate is still a duplicate.
    scorer.feed([rating, customer])
    assert scorer.tick(0) == views
