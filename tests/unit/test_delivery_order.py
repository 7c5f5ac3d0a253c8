"""Order and lateness never change a number (shared/METRICS.md): hand-worked cases of issue 10's
defects 1, 3 and 7 (defect 2 is `test_late_event_beyond_grace_is_counted_late_and_applied`).

Each case feeds the same set of events in event order and as a platform retrying after an outage
delivers them (minutes late, shuffled, while other traffic flows), and checks the figures worked
out by hand from the definitions. Times are seconds after T (a minute boundary).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.core.agents import AgentState, AgentTimeline
from services.core.conversation import Conversation, ConvEvent
from services.core.events import parse_event
from services.core.figures import QueueView, WindowFigures
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer
from tests.reference import reference_views
from tests.unit.test_conversation_memory import run_halves, run_one_by_one
from tests.unit.test_scorer_properties import (
    CHEAP_PROPERTY,
    Floor,
    assert_matches_reference,
    figures_of,
    final_now,
    floors,
    run,
)

T = 1_800_000_000_000
TENANT, SHOP, PLATFORM = "acme", "acme-web", "web"  # no platform rule: only the definitions at play
GRACE = 60_000
HORIZON = 3_720_000


def at(seconds: float) -> int:
    return T + round(seconds * 1000)


def ev(event_id: str, etype: str, t: float, cid: str = "x", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": etype, "ts": at(t), "tenant": TENANT, "shop_id": SHOP,
            "platform": PLATFORM, "conversation_id": cid, **extra}


def status(event_id: str, t: float, state: str, agent_id: str = "a1", capacity: int = 2) -> dict[str, Any]:
    return {"event_id": event_id, "type": "agent.status", "ts": at(t), "tenant": TENANT, "shop_id": SHOP,
            "platform": PLATFORM, "agent_id": agent_id, "status": state, "capacity": capacity,
            "queues": ["presales"]}


def score(stream: list[dict[str, Any]], **kwargs: Any) -> dict[Scope, QueueView]:
    """Each event in its own batch (what a live stream does), then one tick."""
    scorer = InProcessScorer(**kwargs)
    for e in stream:
        scorer.feed([e])
    return scorer.tick(0)


def window(views: dict[Scope, QueueView], queue: str = "presales", name: str = "15m") -> WindowFigures:
    return views[Scope(TENANT, SHOP, PLATFORM, queue)]["windows"][name]  # type: ignore[no-any-return]


# --- defect 1: a conversation's own order, whatever the partition's other traffic ---------------------

def own_conversation() -> list[dict[str, Any]]:
    return [
        ev("x1", "conversation.opened", 0, queue="presales"),
        ev("x2", "message", 1, sender="customer"),
        ev("x3", "message", 11, sender="agent", agent_id="a1"),  # FRT 10 s, reply 10 s
        ev("x4", "message", 20, sender="customer"),
        ev("x5", "message", 25, sender="agent", agent_id="a1"),  # reply 5 s
    ]


def other_traffic() -> list[dict[str, Any]]:
    # Another conversation of the same partition, about two minutes ahead: it moves the watermark.
    return [ev("y1", "message", 120, cid="y", sender="customer", queue="presales"),
            ev("y2", "message", 130, cid="y", sender="agent", agent_id="a2")]


def test_a_shuffled_conversation_minutes_late_gives_its_own_figures_whatever_other_traffic_did() -> None:
    x = own_conversation()
    in_order = sorted(x + other_traffic(), key=lambda e: e["ts"])
    late = [*other_traffic(), x[2], x[4], x[3], x[0], x[1]]  # the retried webhook: old and shuffled
    want = score(in_order, event_partitions=1)
    got = score(late, event_partitions=1)
    assert got == want
    w = window(got)
    assert w["frt"]["count"] == 2 and w["frt"]["max_s"] == 10.0  # x: 11 - 1; y: 130 - 120
    assert w["reply"]["count"] == 3 and w["reply"]["max_s"] == 10.0  # x: 10 s and 5 s; y: 10 s
    assert w["sl"]["30"] == 1.0 and w["arrivals"] == 2
    assert queue_total("unknown") not in got  # x's reply came first: its `unknown` arrival is gone again
    assert_matches_reference(got, reference_views(in_order))


def test_the_state_machine_replays_an_event_older_than_the_grace_where_it_belongs() -> None:
    conv = Conversation(TENANT, SHOP, PLATFORM)
    x = [ConvEvent.of(parse_event(e)) for e in own_conversation()]
    watermark = at(130)  # other traffic: x's events are all more than the 60 s grace behind
    for e in (x[2], x[4], x[3], x[0]):
        conv.apply(e, watermark, GRACE, HORIZON)
    _delta, late = conv.apply(x[1], watermark, GRACE, HORIZON)
    assert late  # counted as late, and still lands where it belongs
    frts = sorted(f.value for f in conv.facts if f.kind == "frt" and f.queue == "presales")
    replies = sorted(f.value for f in conv.facts if f.kind == "reply" and f.queue == "presales")
    assert frts == [10_000] and replies == [5_000, 10_000]
    assert conv.state.waiting_since is None and conv.state.queue == "presales"
    # The net facts equal those of the same events in order.
    in_order = Conversation(TENANT, SHOP, PLATFORM)
    for e in x:
        in_order.apply(e, e.ts, GRACE, HORIZON)
    assert conv.facts == in_order.facts and conv.state == in_order.state


def test_an_event_older_than_what_was_folded_beyond_the_horizon_is_too_old() -> None:
    scorer = InProcessScorer(event_partitions=1)
    scorer.feed([ev("x1", "message", 0, sender="customer", queue="presales")])
    scorer.feed([ev("x2", "message", 4_000, sender="customer")])  # folds x1: it is past the horizon
    scorer.feed([ev("x0", "message", -10, sender="agent", agent_id="a1")])  # older than x1, 67 min late
    assert scorer.metrics.events.labels("too_old")._value.get() == 1
    assert scorer.metrics.events.labels("applied")._value.get() == 2


# --- a late reply that retracts a bucket's maximum ----------------------------------------------------

def test_a_late_reply_that_retracts_a_buckets_maximum_leaves_the_exact_runner_up() -> None:
    # Both waits are answered within the same second, so both reply times (and FRTs) land in one bucket. B's
    # earlier reply, delivered late, answers B at 10 s instead: its 100.5 s sample is retracted from that bucket,
    # and the maximum left there is A's 60.2 s, exactly (never the edge of the bin it fell in).
    a = [ev("a1", "conversation.opened", 40, cid="a", queue="presales"),
         ev("a2", "message", 40, cid="a", sender="customer"),
         ev("a3", "message", 100.2, cid="a", sender="agent", agent_id="a1")]
    b = [ev("b1", "conversation.opened", 0, cid="b", queue="presales"),
         ev("b2", "message", 0, cid="b", sender="customer"),
         ev("b3", "message", 100.5, cid="b", sender="agent", agent_id="a2")]
    b_late = ev("b4", "message", 10, cid="b", sender="agent", agent_id="a2")
    in_order = sorted([*a, *b, b_late], key=lambda e: e["ts"])
    want = score(in_order, event_partitions=1)
    got = score([*a, *b, b_late], event_partitions=1)
    assert got == want
    for figure in ("frt", "reply"):
        assert window(got)[figure]["max_s"] == 60.2, figure  # A's; B's is 10 s now
        assert window(got)[figure]["count"] == 2, figure
    assert_matches_reference(got, reference_views(in_order))


# --- defect 3: an agent's history follows event time --------------------------------------------------

def test_an_older_status_arriving_late_takes_its_place_in_the_agents_history() -> None:
    statuses = [status("s1", 0, "online"), status("s2", 100, "away"), status("s3", 50, "busy")]
    views = []
    for stream in (statuses, [statuses[0], statuses[2], statuses[1]]):
        scorer = InProcessScorer(event_clock=False)
        for e in stream:
            scorer.feed([e])
        views.append(scorer.tick(at(100)))
    late, in_order = views
    assert late == in_order
    agent = late[Scope(TENANT, SHOP, PLATFORM, "@agent:a1")]
    assert agent["agent"]["status"] == "away"  # the latest by event time
    assert agent["windows"]["5m"]["status_seconds"] == {"online": 50.0, "busy": 50.0, "away": 0.0, "offline": 0.0}


def test_max_concurrent_chats_follow_event_time_not_arrival_order() -> None:
    # c1 is assigned at 100 s; c2 was assigned at 50 s and closed at 80 s, but its changes come later
    # (another partition lagging): a1 never had two chats at once.
    agent = AgentState()
    agent.apply_status(at(0), "s1", TENANT, SHOP, PLATFORM, "online", 3, ("presales",))
    agent.set_active("c1", True, at(100))
    agent.set_active("c2", True, at(50))
    agent.set_active("c2", False, at(80))
    w = AgentTimeline(agent.summary()["history"]).window(at(120), 300_000)
    assert w["max_concurrent"] == 1
    assert agent.summary()["active_chats"] == 1


def test_an_assignment_replayed_out_of_order_still_occupies_the_agent_while_it_lasted() -> None:
    events = [
        status("s1", 0, "online"),
        ev("x1", "message", 1, sender="customer", queue="presales"),
        ev("x2", "conversation.assigned", 10, agent_id="a1"),
        ev("x3", "conversation.closed", 50, reason="abandoned"),
    ]
    shuffled = [events[0], events[1], events[3], events[2]]  # the close comes before the assignment
    got = [InProcessScorer(event_clock=False) for _ in range(2)]
    for scorer, stream in zip(got, (events, shuffled), strict=True):
        for e in stream:
            scorer.feed([e])
    in_order, late = (scorer.tick(at(60)) for scorer in got)
    assert late == in_order
    a1 = late[Scope(TENANT, SHOP, PLATFORM, "@agent:a1")]
    assert a1["windows"]["5m"]["max_concurrent"] == 1 and a1["agent"]["active_chats"] == 0


# --- defect 7: conversion per (conversation, queue), never above 1 ------------------------------------

def test_conversion_counts_each_queue_that_replied_and_never_exceeds_one() -> None:
    events: list[dict[str, Any]] = []
    for cid in ("c1", "c2", "c3"):
        events += [ev(f"{cid}-1", "message", 0, cid=cid, sender="customer", queue="presales"),
                   ev(f"{cid}-2", "message", 5, cid=cid, sender="agent", agent_id="a1")]  # replied in presales
    for cid in ("c1", "c2"):
        events += [ev(f"{cid}-3", "order.placed", 10, cid=cid, amount="9", currency="CNY"),  # ordered in presales
                   ev(f"{cid}-4", "conversation.transferred", 20, cid=cid, to_queue="aftersales"),
                   ev(f"{cid}-5", "message", 30, cid=cid, sender="agent", agent_id="a2")]  # replied in aftersales
    # c4 orders in presales, which never replied to it (it is answered only after its transfer).
    events += [ev("c4-1", "message", 0, cid="c4", sender="customer", queue="presales"),
               ev("c4-2", "order.placed", 3, cid="c4", amount="9", currency="CNY"),
               ev("c4-3", "conversation.transferred", 4, cid="c4", to_queue="aftersales"),
               ev("c4-4", "message", 8, cid="c4", sender="agent", agent_id="a2")]
    views = score(events)
    assert window(views, "presales")["conversion_rate"] == 2 / 3  # c1, c2 of c1, c2, c3 (c4 not replied there)
    assert window(views, "aftersales")["conversion_rate"] == 0.0  # c1, c2, c4 replied there; no order there
    assert_matches_reference(views, reference_views(events))


def test_conversion_needs_the_reply_and_the_order_in_the_window() -> None:
    # The reply at 0 s leaves the 1m window at 60 s; the order at 50 s stays in it until 110 s.
    events = [ev("x1", "message", 0, sender="customer", queue="presales"),
              ev("x2", "message", 1, sender="agent", agent_id="a1"),
              ev("x3", "order.placed", 50, amount="9", currency="CNY"),
              ev("y1", "message", 90, cid="y", sender="customer", queue="presales")]  # moves now to 90 s
    views = score(events)
    assert window(views, name="1m")["conversion_rate"] is None  # no reply in (30 s, 90 s]: nothing to convert
    assert window(views, name="5m")["conversion_rate"] == 1.0
    assert_matches_reference(views, reference_views(events))


# --- any floor: delivered minutes late and shuffled, the same figures as delivered in order -----------

def delivered_late(floor: Floor, rnd: Any, lateness_ms: int) -> list[dict[str, Any]]:
    """Some events (a retried webhook's, a lagging platform's) arrive up to `lateness_ms` after their ts,
    interleaved with the rest of the floor arriving on time; some twice."""
    late_share = rnd.choice([0.2, 0.5, 1.0])
    copies = floor.events + [e for e in floor.events if rnd.random() < 0.1]
    arrival = [(e["ts"] + (rnd.uniform(0, lateness_ms) if rnd.random() < late_share else 0), rnd.random(), e)
               for e in copies]
    return [e for _, _, e in sorted(arrival, key=lambda a: (a[0], a[1]))]


@CHEAP_PROPERTY
@given(floors(max_conversations=20), st.randoms(use_true_random=False), st.sampled_from([1, 2, 6]),
       st.sampled_from([120_000, 300_000]))
def test_a_floor_delivered_minutes_late_and_shuffled_gives_the_in_order_figures(
        floor: Floor, rnd: Any, partitions: int, lateness_ms: int) -> None:
    shuffled = delivered_late(floor, rnd, lateness_ms)
    in_order = sorted(floor.events, key=lambda e: (e["ts"], e["event_id"]))
    want = run(in_order, event_partitions=partitions)
    got = run(shuffled, event_partitions=partitions)
    assert_matches_reference(got, reference_views(floor.events, final_now(floor.events)))
    # Beyond the reference (which has no agent history): every figure is identical, the agents' time per status
    # and max concurrent chats too.
    assert figures_of(got) == figures_of(want)
    assert {k: v.get("agent") for k, v in got.items()} == {k: v.get("agent") for k, v in want.items()}
    for v in got.values():
        for w in v["windows"].values():
            assert w["conversion_rate"] is None or 0 <= w["conversion_rate"] <= 1


def test_an_agents_history_is_kept_for_the_horizon_and_round_trips() -> None:
    agent = AgentState()
    for i, state in enumerate(["online", "busy", "online", "away"]):
        agent.apply_status(at(i * 1_200), f"s{i}", TENANT, SHOP, PLATFORM, state, 3, ("presales",))  # every 20 min
    assert not agent.apply_status(at(1_200), "s1", TENANT, SHOP, PLATFORM, "busy", 3, ("presales",))  # duplicate
    agent.set_active("c1", True, at(100))
    agent.set_active("c1", False, at(200))
    agent.set_active("c2", True, at(3_000))
    agent.set_spans("c3", [[None, at(3_500)]])
    agent.prune(agent.latest_ts() - HORIZON)  # latest: 3,600 s; the edge: -120 s
    assert len(agent.statuses) == 4
    agent.prune(at(2_500))
    # What ended before the edge is gone; the status in force at the edge stays.
    assert [s for _ts, _id, s in agent.statuses] == ["online", "away"] and set(agent.chats) == {"c2", "c3"}
    back = AgentState.from_json(orjson.loads(orjson.dumps(agent.to_json())))
    assert back == agent and back.summary() == agent.summary()
    assert agent.summary()["history"] == [[at(2_400), "online", 1], [at(3_000), "online", 2],
                                          [at(3_500), "online", 1], [at(3_600), "away", 1]]


@CHEAP_PROPERTY
@given(floors(max_conversations=12), st.randoms(use_true_random=False))
def test_minutes_late_a_conversation_read_back_from_the_table_changes_no_figure(floor: Floor, rnd: Any) -> None:
    # A record keeps the events of the horizon, not facts: decoded for every event, or rebuilt from the table
    # midway, the replays of late events give the same figures as a scorer that kept everything decoded.
    stream = delivered_late(floor, rnd, 300_000)
    assert run_one_by_one(stream, cache_max=0) == run_one_by_one(stream, cache_max=200_000)
    no_status = [e for e in stream if e["type"] != "agent.status"]  # (see test_a_rebuild_from_the_table_...)
    assert run_halves(no_status, rebuild=True)[0] == run_halves(no_status, rebuild=False)[0]
