"""A reference model of every QueueView figure, written afresh from shared/METRICS.md.

It does not share a line or a shape with the production code (services/core: it takes only the key, `Scope`) nor
with tests/reference.py: each conversation's deduplicated events are sorted by (ts, event_id) and every figure
is read off that list by its definition ("the first customer message", "the first human reply after the buyer
started waiting", ...); the figures become timestamped *facts* recorded in the queue the conversation is in at
that moment, and a window (now − W, now] simply filters the facts by their time. Agent time per status and max
concurrent chats come from sorting the agent's status events and the assignment intervals by time. Nothing
depends on the order in which events were delivered: the input is a set.

Readings where METRICS.md (and EVENTS.md) are silent are marked `READING:`; they are listed in the report
that came with this file, for docs/metrics-notes.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.scope import Scope  # the key only (a view's, "*" = all): no production logic

WINDOWS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
SL_THRESHOLDS_S = (30, 180)
SLOW_REPLY_MS = 100_000
CHINA_OFFSET_MS = 8 * 3_600_000
# Platform rules: (limit ms, first counted hour, end hour exclusive), China time (UTC+8).
PLATFORM_RULES: dict[str, tuple[int, int, int]] = {
    "jd": (30_000, 9, 23),  # JD: first reply within 30 s; sessions started 23:00-09:00 not counted
    "pdd": (180_000, 8, 23),  # Pinduoduo: human reply within 3 min, counted 08:00-23:00
    "taobao": (180_000, 8, 23),
    "tmall": (180_000, 8, 23),  # READING: Tmall is Taobao's rule (same seller tool, Qianniu)
}
STAR = "*"
AgentKey = tuple[str, str]  # (tenant, agent_id)


def ts_ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).replace("Z", "+00:00")
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass(frozen=True)
class Ev:
    ts: int
    event_id: str
    raw: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw["type"])

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    def is_msg(self, sender: str) -> bool:
        return self.type == "message" and self.raw.get("sender") == sender


@dataclass(frozen=True)
class Fact:
    """Something recorded at `ts` in a queue of a scope: a window counts it when `ts` is in the window."""
    ts: int
    queue: str
    scope: tuple[str, str, str]
    kind: str
    value: float = 0.0
    flag: bool = False
    conv: str = ""
    agent: str = ""
    extra: tuple[bool, ...] = ()


@dataclass
class ConvLive:
    """What an open conversation contributes to the live figures at `now`."""
    queue: str
    scope: tuple[str, str, str]
    unanswered: bool
    assignee: str | None
    waiting_since: int | None


@dataclass
class AgentFacts:
    scope: tuple[str, str, str]
    status: str
    capacity: int
    queues: tuple[str, ...]
    status_events: list[Ev] = field(default_factory=list)


def dedupe_sorted(events: Iterable[Mapping[str, Any]]) -> list[Ev]:
    """The set of events: one per event_id (READING: the first copy seen; retries are identical), sorted
    by (ts, event_id)."""
    seen: dict[str, Ev] = {}
    for e in events:
        eid = str(e["event_id"])
        if eid not in seen:
            seen[eid] = Ev(ts_ms(e["ts"]), eid, e)
    return sorted(seen.values(), key=lambda e: (e.ts, e.event_id))


# --- one conversation --------------------------------------------------------------------------

def queue_before_each(evs: list[Ev]) -> tuple[list[str], list[str]]:
    """The conversation's queue just before and just after each event.

    READING (EVENTS.md): any first event opens the conversation, in its `queue` or `unknown`; afterwards the
    queue changes only by a transfer, or by a `conversation.opened` while the queue is still `unknown` (a
    `queue` field on other later events is informative only)."""
    before: list[str] = []
    after: list[str] = []
    current = str(evs[0].get("queue") or "unknown")
    for e in evs:
        before.append(current)
        if e.type == "conversation.transferred":
            current = str(e.get("to_queue"))
        elif e.type == "conversation.opened" and current == "unknown" and e.get("queue"):
            current = str(e.get("queue"))
        after.append(current)
    return before, after


def waits_by_segment(evs: list[Ev]) -> list[tuple[int, int | None, int | None]]:
    """Cut the events (up to the close) at every human reply; in each segment the buyer starts waiting at the
    last handoff of the segment (a handoff sets `waiting_since`), else at its first customer message (a
    customer message sets it only when empty). Returns (index of the reply ending the segment or None for the
    trailing segment, wait start or None, wait start index)."""
    out: list[tuple[int, int | None, int | None]] = []
    start: int | None = None
    start_i: int | None = None
    for i, e in enumerate(evs):
        if e.is_msg("agent"):
            out.append((i, start, start_i))
            start, start_i = None, None
        elif e.type == "conversation.handoff" or (e.is_msg("customer") and start is None):
            start, start_i = e.ts, i  # a handoff always (re)sets the wait; a customer message only when empty
    out.append((-1, start, start_i))
    return out


def conversation_facts(cid: str, evs: list[Ev], now: int) -> tuple[list[Fact], ConvLive | None,
                                                                   list[tuple[str, int, int | None]]]:
    """Facts of one conversation, its live state at `now` (None if closed), and its assignment intervals
    (agent, from, to or None while still open)."""
    first = evs[0]
    scope = (str(first.get("tenant", "default")), str(first.get("shop_id", "")), str(first.get("platform", "")))
    q_before, q_after = queue_before_each(evs)
    facts: list[Fact] = []

    def fact(i: int, kind: str, **kw: Any) -> None:
        facts.append(Fact(evs[i].ts, q_before[i], scope, kind, conv=cid, **kw))

    def queue_at(t: int) -> str:
        """The queue after every event with ts <= t."""
        q = q_before[0]
        for e, qa in zip(evs, q_after, strict=True):
            if e.ts > t:
                break
            q = qa
        return q

    close_i = next((i for i, e in enumerate(evs) if e.type == "conversation.closed"), None)
    # READING: the first close ends the conversation; later events change no wait, FRT or assignment, but
    # messages still count in the message figures, and ratings and orders count whenever they come.
    active = evs if close_i is None else evs[: close_i + 1]

    # Arrival: the conversation's first event opens it (explicitly or implicitly), once.
    fact(0, "arrival")

    # Waits, FRT, replies.
    segments = waits_by_segment(active[: close_i] if close_i is not None else active)
    answered_segments = [(ri, s) for ri, s, _ in segments if ri >= 0 and s is not None]
    first_reply_i: int | None = answered_segments[0][0] if answered_segments else None
    frt_start: int | None
    if answered_segments:
        frt_start = answered_segments[0][1]
    else:
        trailing = segments[-1]
        frt_start = trailing[1]
    for ri, start in answered_segments:
        reply_ms = evs[ri].ts - start
        fact(ri, "reply", value=reply_ms, flag=reply_ms > SLOW_REPLY_MS, agent=str(evs[ri].get("agent_id") or ""))
    if first_reply_i is not None and frt_start is not None:
        frt_ms = evs[first_reply_i].ts - frt_start
        fact(first_reply_i, "frt", value=frt_ms, agent=str(evs[first_reply_i].get("agent_id") or ""))
        fact(first_reply_i, "left", value=frt_ms, extra=tuple(frt_ms <= x * 1000 for x in SL_THRESHOLDS_S))

    # Messages, human replies (for conversion), orders, ratings: at the message, in the queue then.
    for i, e in enumerate(evs):
        if e.is_msg("customer"):
            fact(i, "msg_customer")
        elif e.is_msg("agent"):
            fact(i, "msg_agent", agent=str(e.get("agent_id") or ""))
            # READING: conversion's "human reply" is any agent message (METRICS.md's definition of a human reply).
            fact(i, "human_reply")
        elif e.type == "order.placed":
            fact(i, "order")
        elif e.type == "csat.rated":
            fact(i, "csat", value=float(e.get("score")))  # READING: every rating counts (no per-buyer dedup)
        elif e.type == "conversation.transferred" and (close_i is None or i < close_i):
            fact(i, "transfer_out")  # in the queue it leaves; READING: every transfer event, to_queue aside

    # Assignment: assigned events and transfers with a to_agent_id replace the assignee; READING (as the
    # platforms without assignment events imply): a human reply to an unassigned conversation assigns it to
    # the replier. A transfer without to_agent_id keeps the assignee.
    intervals: list[tuple[str, int, int | None]] = []
    assignee: str | None = None
    since = 0
    first_assigned: int | None = None
    for e in active[: close_i] if close_i is not None else active:
        new: str | None = None
        if e.type == "conversation.assigned" and e.get("agent_id"):
            new = str(e.get("agent_id"))
        elif e.type == "conversation.transferred" and e.get("to_agent_id"):
            new = str(e.get("to_agent_id"))
        elif e.is_msg("agent") and assignee is None and e.get("agent_id"):
            new = str(e.get("agent_id"))
        if new is not None and new != assignee:
            if assignee is not None:
                intervals.append((assignee, since, e.ts))
            assignee, since = new, e.ts
        if new is not None and first_assigned is None:
            first_assigned = e.ts
    if assignee is not None:
        intervals.append((assignee, since, evs[close_i].ts if close_i is not None else None))

    # Close: abandonment, handle time, resolution.
    if close_i is not None:
        reason = str(evs[close_i].get("reason"))
        handle = None if first_assigned is None else evs[close_i].ts - first_assigned
        fact(close_i, "closed", value=-1.0 if handle is None else float(handle),
             extra=(reason == "bot_resolved", reason in ("resolved", "bot_resolved")))
        if first_reply_i is None and frt_start is not None and reason in ("abandoned", "timeout"):
            # READING: abandoned = closed abandoned/timeout while in the unanswered state (the buyer had
            # written, or was handed off, and no human reply came after that).
            fact(close_i, "left", flag=True, value=float(evs[close_i].ts - frt_start),
                 extra=tuple(False for _ in SL_THRESHOLDS_S))
        # A close `resolved` or `bot_resolved` without a reply leaves the unanswered state as neither answered
        # nor abandoned: outside the SL and abandonment denominators. READING: `resolved` too (the SL
        # denominator is "answered or abandoned").

    # Platform rule: one outcome per buyer who needed a human reply in counted hours. READING: for Pinduoduo and
    # Taobao too the outcome is the buyer's *first* human reply (the denominator counts buyers, 咨询人数), not
    # every reply; an outcome is recorded in the queue the conversation is in at that moment.
    rule = PLATFORM_RULES.get(scope[2])
    if rule is not None and frt_start is not None:
        limit, start_h, end_h = rule
        hour = ((frt_start + CHINA_OFFSET_MS) // 3_600_000) % 24
        # READING: a "session start" / the counted hour is the moment the buyer starts waiting (frt_start).
        if start_h <= hour < end_h:
            deadline = frt_start + limit
            if first_reply_i is not None and evs[first_reply_i].ts <= deadline:
                fact(first_reply_i, "rule", flag=True)
            elif close_i is not None and first_reply_i is None and evs[close_i].ts <= deadline:
                if evs[close_i].get("reason") != "bot_resolved":
                    fact(close_i, "rule", flag=False)  # closed unanswered (abandoned, timeout, resolved)
                # READING: closed bot_resolved before the limit: the buyer did not need a human.
            elif deadline + 1 <= now:
                # A miss from the moment the limit passes (answered late, closed after it, or still waiting).
                # READING: that moment is limit + 1 ms (a reply at exactly the limit is within it, as SL's
                # "within X"). READING: it counts in the queue that answered (or closed) the buyer, or, while
                # the buyer still waits, the queue they wait in now: METRICS.md's "a conversation answered
                # after a transfer counts in the queue that answered it".
                t = deadline + 1
                told_by = first_reply_i if first_reply_i is not None else close_i
                where = q_before[told_by] if told_by is not None else queue_at(now)  # (as `fact` files it)
                facts.append(Fact(t, where, scope, "rule", flag=False, conv=cid))

    live: ConvLive | None = None
    if close_i is None:
        trailing_start = segments[-1][1]
        live = ConvLive(
            queue=q_after[-1], scope=scope, unanswered=first_reply_i is None and frt_start is not None,
            assignee=assignee, waiting_since=trailing_start,
        )
    return facts, live, intervals


# --- the floor -----------------------------------------------------------------------------------

@dataclass
class Floor:
    now: int
    facts: list[Fact]
    live: list[ConvLive]
    agents: dict[AgentKey, AgentFacts]
    intervals: dict[AgentKey, list[tuple[int, int | None]]]  # agent -> assignment intervals


def build_floor(events: Iterable[Mapping[str, Any]], now: int | None = None) -> Floor:
    evs = dedupe_sorted(events)
    if now is None:
        now = max(e.ts for e in evs)
    evs = [e for e in evs if e.ts <= now]
    # READING (issue 16): conversations and agents are per tenant; two tenants' "c1" or "a1" are two.
    by_conv: dict[tuple[str, str], list[Ev]] = defaultdict(list)
    by_agent: dict[AgentKey, list[Ev]] = defaultdict(list)
    for e in evs:
        tenant = str(e.get("tenant", "default"))
        if e.type == "agent.status":
            by_agent[(tenant, str(e.get("agent_id")))].append(e)
        else:
            by_conv[(tenant, str(e.get("conversation_id")))].append(e)
    facts: list[Fact] = []
    live: list[ConvLive] = []
    intervals: dict[AgentKey, list[tuple[int, int | None]]] = defaultdict(list)
    for (tenant, cid), cevs in by_conv.items():
        f, lv, iv = conversation_facts(cid, cevs, now)
        facts += f
        if lv is not None:
            live.append(lv)
        for agent, a, b in iv:
            intervals[(tenant, agent)].append((a, b))
    agents: dict[AgentKey, AgentFacts] = {}
    for agent_key, sevs in by_agent.items():
        last = sevs[-1]  # the latest by (ts, event_id): arrival order plays no part
        agents[agent_key] = AgentFacts(
            scope=(str(last.get("tenant", "default")), str(last.get("shop_id", "")), str(last.get("platform", ""))),
            status=str(last.get("status")), capacity=int(last.get("capacity", 1)),
            queues=tuple(str(q) for q in last.get("queues") or ()), status_events=sevs,
        )
    return Floor(now, facts, live, agents, intervals)


def in_scope(key: Scope, queue: str, scope: tuple[str, str, str]) -> bool:
    return key.queue == queue and key.tenant in (STAR, scope[0]) and key.shop_id in (STAR, scope[1]) \
        and key.platform in (STAR, scope[2])


def nearest_rank(values: Sequence[float], p: float) -> float:
    """READING: percentiles are nearest-rank (the ceil(p·n)-th smallest)."""
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


def ratio(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def dist(values_ms: Sequence[float]) -> dict[str, Any]:
    if not values_ms:
        return {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None, "max_s": None}
    return {
        "count": len(values_ms), "mean_s": sum(values_ms) / len(values_ms) / 1000,
        "p50_s": nearest_rank(values_ms, 0.5) / 1000, "p90_s": nearest_rank(values_ms, 0.9) / 1000,
        "max_s": max(values_ms) / 1000,
    }


def window_view(facts: list[Fact], span_ms: int) -> dict[str, Any]:
    """Figures of one window from the facts already filtered to (now − span, now] and to the view's scope."""
    kinds: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        kinds[f.kind].append(f)
    arrivals = len(kinds["arrival"])
    left = kinds["left"]
    abandoned = [f for f in left if f.flag]
    closed = kinds["closed"]
    handled = [f.value for f in closed if f.value >= 0]
    scores = [f.value for f in kinds["csat"]]
    replies = kinds["reply"]
    reply = dist([f.value for f in replies])
    # READING: with no reply in the window `slow` is null like the other reply figures ("a window with no
    # samples reports null"); `count` stays 0.
    reply["slow"] = sum(1 for f in replies if f.flag) if replies else None
    replied = {(f.scope[0], f.conv, f.queue) for f in kinds["human_reply"]}  # a conversation is (tenant, id)
    ordered = {(f.scope[0], f.conv, f.queue) for f in kinds["order"]} & replied
    rules = kinds["rule"]
    customers, agents_msgs = len(kinds["msg_customer"]), len(kinds["msg_agent"])
    return {
        "span_s": span_ms / 1000,
        "arrivals": arrivals,
        "arrivals_per_min": arrivals / (span_ms / 60_000),
        "frt": dist([f.value for f in kinds["frt"]]),
        "reply": reply,
        "sl": {str(x): ratio(sum(1 for f in left if f.extra[n]), len(left))
               for n, x in enumerate(SL_THRESHOLDS_S)},
        "left_unanswered": len(left),
        "abandoned": len(abandoned),
        "abandon_rate": ratio(len(abandoned), len(left)),
        # READING: patience (Erlang A's input) is the exponential-patience estimate from observed abandonment:
        # the time every buyer who left the unanswered state waited (until the answer, or until they gave up)
        # divided by the number who gave up; null when none did.
        "patience_s": None if not abandoned else sum(f.value for f in left) / len(abandoned) / 1000,
        "closed": len(closed),
        "aht_s": None if not handled else sum(handled) / len(handled) / 1000,
        "transfer_rate": ratio(len(kinds["transfer_out"]), arrivals),
        "self_service_rate": ratio(sum(1 for f in closed if f.extra[0]), len(closed)),
        "resolution_rate": ratio(sum(1 for f in closed if f.extra[1]), len(closed)),
        "csat": {
            "mean": None if not scores else sum(scores) / len(scores),
            "satisfied_share": ratio(sum(1 for s in scores if s >= 4), len(scores)),
            "participation": ratio(len(scores), len(closed)),  # READING: null with no close in the window
            "count": len(scores),
        },
        "conversion_rate": ratio(len(ordered), len(replied)),
        "replied_convs": len(replied),
        "platform_rule": {
            "counted": len(rules), "met": sum(1 for f in rules if f.flag),
            "met_rate": ratio(sum(1 for f in rules if f.flag), len(rules)),
        },
        "answer_question_ratio": ratio(agents_msgs, customers),
        "messages": {"customer": customers, "agent": agents_msgs},
    }


def active_chats(floor: Floor, agent: AgentKey, t: int) -> int:
    """Open conversations assigned to `agent` at time t (an interval [from, to))."""
    return sum(1 for a, b in floor.intervals.get(agent, []) if a <= t and (b is None or t < b))


def live_view(floor: Floor, key: Scope) -> dict[str, Any]:
    mine = [c for c in floor.live if in_scope(key, c.queue, c.scope)]
    unanswered = [c for c in mine if c.unanswered]
    waits = [floor.now - c.waiting_since for c in mine if c.waiting_since is not None]
    staff = [a for aid, a in floor.agents.items() if key.queue in a.queues and in_scope(key, key.queue, a.scope)]
    ids = [aid for aid, a in floor.agents.items() if key.queue in a.queues and in_scope(key, key.queue, a.scope)]
    serving = [(aid, a) for aid, a in zip(ids, staff, strict=True) if a.status in ("online", "busy")]
    cap = sum(a.capacity for _, a in serving)
    act = sum(active_chats(floor, aid, floor.now) for aid, _ in serving)
    # READING: where no agent (whatever their status) serves the queue in the scope, the staffing figures are
    # null (no data), not 0; once one does, they are counts.
    known = bool(staff)
    return {
        "unanswered": len(unanswered),
        "unassigned": sum(1 for c in unanswered if c.assignee is None),
        "assigned": sum(1 for c in unanswered if c.assignee is not None),
        "awaiting_reply": len(waits),
        "oldest_wait_s": max(waits) / 1000 if waits else None,
        "wait_p50_s": nearest_rank(waits, 0.5) / 1000 if waits else None,
        "wait_p90_s": nearest_rank(waits, 0.9) / 1000 if waits else None,
        "open": len(mine),
        "agents_online": sum(1 for a in staff if a.status != "offline") if known else None,
        "agents_available": sum(1 for aid, a in zip(ids, staff, strict=True)
                                if a.status == "online" and active_chats(floor, aid, floor.now) < a.capacity
                                ) if known else None,
        "agents_away": sum(1 for a in staff if a.status == "away") if known else None,
        "agents_serving": len(serving) if known else None,
        "slots_capacity": cap if known else None,
        "slots_active": act if known else None,
        "slot_utilization": ratio(act, cap),
        # Exact fraction Σ capacity ÷ agents on duty; published as a float here (compared to 1e-9).
        "concurrency": ratio(cap, len(serving)),
    }


def queue_view(floor: Floor, key: Scope, spans_ms: Mapping[str, int] | None = None) -> dict[str, Any]:
    mine = [f for f in floor.facts if in_scope(key, f.queue, f.scope)]
    windows = {}
    for name, width in WINDOWS.items():
        span = (spans_ms or {}).get(name, width)
        lo = floor.now - span
        windows[name] = window_view([f for f in mine if lo < f.ts <= floor.now], span)
    return {
        "queue": key.queue, "scope": {"tenant": key.tenant, "shop_id": key.shop_id, "platform": key.platform},
        "live": live_view(floor, key), "windows": windows,
    }


def scope_keys(queue: str, scope: tuple[str, str, str]) -> list[Scope]:
    """The published roll-ups: the shop, (tenant, platform), tenant, platform, and all."""
    t, s, p = scope
    return [Scope(t, s, p, queue), Scope(t, STAR, p, queue), Scope(t, STAR, STAR, queue), Scope(STAR, STAR, p, queue),
            Scope(STAR, STAR, STAR, queue)]


def view_keys(floor: Floor) -> set[Scope]:
    keys: set[Scope] = set()
    for f in floor.facts:
        keys.update(scope_keys(f.queue, f.scope))
    for c in floor.live:
        keys.update(scope_keys(c.queue, c.scope))
    for a in floor.agents.values():
        for q in a.queues:
            keys.update(scope_keys(q, a.scope))
    return keys


def reference_views(events: Iterable[Mapping[str, Any]], now: int | None = None,
                    keys: Iterable[Scope] = (), spans_ms: Mapping[str, int] | None = None,
                    ) -> dict[Scope, dict[str, Any]]:
    """Every queue view (the floor's own keys plus `keys`) at `now` (default: the newest event time)."""
    floor = build_floor(events, now)
    return {k: queue_view(floor, k, spans_ms) for k in view_keys(floor) | set(keys)}


# --- agents (the Chitu view): only the figures METRICS.md names for agents --------------------------

def agent_figures(events: Iterable[Mapping[str, Any]], agent_id: str, now: int | None = None,
                  spans_ms: Mapping[str, int] | None = None, tenant: str | None = None) -> dict[str, dict[str, Any]]:
    """Per window: time per status (s), max concurrent chats, FRT and reply of this agent's replies, messages
    sent. READING: an agent's time before their first status event is in no status; FRT and reply times
    belong to the agent who replied. The agent is the tenant's (`tenant` may be left out when only one
    tenant has an agent of that id)."""
    floor = build_floor(events, now)
    if tenant is None:
        tenants = {t for t, a in floor.agents if a == agent_id} | {t for t, a in floor.intervals if a == agent_id} \
            | {f.scope[0] for f in floor.facts if f.agent == agent_id}
        assert len(tenants) <= 1, f"agent {agent_id!r} in several tenants {sorted(tenants)}: name one"
        tenant = next(iter(tenants), "default")
    agent_key = (tenant, agent_id)
    sevs = floor.agents[agent_key].status_events if agent_key in floor.agents else []
    mine = [f for f in floor.facts if f.kind in ("msg_agent", "frt", "reply") and f.agent == agent_id
            and f.scope[0] == tenant]
    out: dict[str, dict[str, Any]] = {}
    for name, width in WINDOWS.items():
        span = (spans_ms or {}).get(name, width)
        lo, hi = floor.now - span, floor.now
        seconds = {s: 0.0 for s in ("online", "busy", "away", "offline")}
        for i, e in enumerate(sevs):
            end = sevs[i + 1].ts if i + 1 < len(sevs) else hi
            a, b = max(e.ts, lo), min(end, hi)
            if b > a:
                seconds[str(e.get("status"))] += (b - a) / 1000
        # Max concurrent chats over the window: the count at its start and at every assignment inside it.
        # READING: a chat assigned and handed on in the same millisecond (events apart in (ts, event_id)
        # order) is held for no time, so it occupies no slot (docs/metrics-notes.md).
        held = [(a, b) for a, b in floor.intervals.get(agent_key, []) if b is None or b > a]
        points = [lo + 1] + [a for a, _ in held if lo < a <= hi]
        peak = max(sum(1 for a, b in held if a <= t and (b is None or t < b)) for t in points)
        out[name] = {
            "status_seconds": seconds,
            "max_concurrent": peak,
            "messages_agent": sum(1 for f in mine if f.kind == "msg_agent" and lo < f.ts <= hi),
            "frt_count": sum(1 for f in mine if f.kind == "frt" and lo < f.ts <= hi),
            "reply_count": sum(1 for f in mine if f.kind == "reply" and lo < f.ts <= hi),
        }
    return out
