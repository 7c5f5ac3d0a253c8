"""The platform rules at any `now` and in any order of delivery equal the rule's definition, computed
here from the events alone (not from the state machine): per counted wait one outcome, met at a reply
within the limit, missed at start + limit, or at a close before it (none for `bot_resolved`).

Floors of chats whose waits start around the rules' counted-hour edges (08:00, 09:00 and 23:00 China
time) are fed in event order up to each of several `now`s, or all at once shuffled, and every tick's
1h window must hold exactly the outcomes whose time is at or before `now`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.scope import Scope
from services.scorer.inprocess import InProcessScorer

CHINA = timezone(timedelta(hours=8))
# (platform, counts only the first wait, limit ms, counted China-time hours [start, end))
RULES = {"jd": (True, 30_000, (9, 23)), "pdd": (True, 180_000, (8, 23)), "taobao": (True, 180_000, (8, 23))}
EDGES = [datetime(2026, 11, 11, h, 0, tzinfo=CHINA) for h in (8, 9, 23)]


@st.composite
def floors(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[int]]:
    platform = draw(st.sampled_from(sorted(RULES)))
    edge = int(draw(st.sampled_from(EDGES)).timestamp() * 1000)
    base = edge - 20 * 60_000
    events: list[dict[str, Any]] = []
    used: set[int] = set()
    for c in range(draw(st.integers(1, 6))):
        cid = f"c{c}"
        shape = {"tenant": "t", "shop_id": "s", "platform": platform, "conversation_id": cid}
        ts = base + draw(st.integers(0, 25 * 60_000))
        events.append({**shape, "event_id": f"{cid}-o", "type": "conversation.opened", "ts": ts, "queue": "q"})
        for n in range(draw(st.integers(1, 6))):
            # Gaps around the limits; distinct times so that the order of a conversation is its time order.
            ts += draw(st.sampled_from([1_000, 29_000, 30_000, 31_000, 179_000, 180_000, 181_000, 400_000]))
            while ts in used:
                ts += 1
            used.add(ts)
            kind = draw(st.sampled_from(["customer", "customer", "agent", "close"]))
            if kind == "close":
                reason = draw(st.sampled_from(["resolved", "abandoned", "timeout", "bot_resolved"]))
                events.append({**shape, "event_id": f"{cid}-{n}", "type": "conversation.closed", "ts": ts,
                               "reason": reason})
                break
            extra = {"agent_id": "a"} if kind == "agent" else {}
            events.append({**shape, "event_id": f"{cid}-{n}", "type": "message", "ts": ts, "sender": kind, **extra})
    # Every outcome (at or after `base`) stays inside the 1h window, whatever its rounding to buckets.
    nows = sorted(draw(st.lists(st.integers(base, base + 50 * 60_000), min_size=1, max_size=4)))
    return platform, events, nows


def counted_hour(started: int, hours: tuple[int, int]) -> bool:
    return hours[0] <= datetime.fromtimestamp(started / 1000, tz=CHINA).hour < hours[1]


def definition(platform: str, events: list[dict[str, Any]], now: int) -> dict[str, Any]:
    """The rule's outcomes at `now` from the events that happened by then (no handoffs, transfers or bots)."""
    first_only, limit, hours = RULES[platform]
    outcomes: list[bool] = []
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["ts"] <= now:
            by_conv.setdefault(e["conversation_id"], []).append(e)
    for evs in by_conv.values():
        waits: list[tuple[int, int | None, str | None]] = []  # (start, end, "reply" or close reason or None)
        start: int | None = None
        answered = False
        for e in sorted(evs, key=lambda e: e["ts"]):
            if e["type"] == "conversation.closed":
                if start is not None:
                    waits.append((start, e["ts"], e["reason"]))
                    start = None
                break
            if e["type"] == "message" and e.get("sender") == "customer" and start is None:
                if not (first_only and answered):
                    start = e["ts"]
            elif e["type"] == "message" and e.get("sender") == "agent" and start is not None:
                # (a greeting before the buyer wrote answers nobody)
                waits.append((start, e["ts"], "reply"))
                start = None
                answered = True
        if start is not None:
            waits.append((start, None, None))
        for started, end, how in waits:
            if not counted_hour(started, hours):
                continue
            if how == "bot_resolved" and end is not None and end <= started + limit:
                continue  # a bot resolved the chat within the limit: no human reply was needed
            if end is None and started + limit > now:
                continue  # still waiting, within the limit: no outcome yet
            outcomes.append(how == "reply" and end is not None and end <= started + limit)
    met = sum(outcomes)
    return {"counted": len(outcomes), "met": met, "met_rate": met / len(outcomes) if outcomes else None}


def figure(views: dict[Any, Any], platform: str) -> dict[str, Any]:
    view = views.get(Scope("*", "*", platform, "q"))
    if view is None:
        return {"counted": 0, "met": 0, "met_rate": None}
    return dict(view["windows"]["1h"]["platform_rule"])


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(floors(), st.randoms(use_true_random=False))
def test_rules_equal_their_definition_at_any_now_in_any_order(
    floor: tuple[str, list[dict[str, Any]], list[int]], rnd: random.Random
) -> None:
    platform, events, nows = floor
    in_order = InProcessScorer(event_clock=False)
    fed = 0
    ordered = sorted(events, key=lambda e: e["ts"])
    for now in nows:
        upto = [e for e in ordered[fed:] if e["ts"] <= now]
        in_order.feed(upto)
        fed += len(upto)
        assert figure(in_order.tick(now), platform) == definition(platform, events, now), now
    now = nows[-1]
    shuffled = [e for e in events if e["ts"] <= now]
    rnd.shuffle(shuffled)
    at_once = InProcessScorer(event_clock=False, grace_ms=3_600_000)  # any order within the horizon
    at_once.feed(shuffled)
    assert figure(at_once.tick(now), platform) == definition(platform, events, now)
