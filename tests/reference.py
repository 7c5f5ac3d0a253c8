"""A slow, obviously-correct reference for every number of a queue view (shared/METRICS.md).

Written straight from METRICS.md and the interpretation list the scorer's tests are held to,
without any production code (only `parse_event`, to validate, and `Scope`, the key). Given the complete list of
events and `now`, it sorts each conversation's events, walks them once with plain variables,
keeps every figure as a list of records (kind, ts, queue, value), and computes each window
from plain lists of samples: exact nearest-rank percentiles, exact maxima, exact means.

The rules it follows, in short:
1. A conversation's events apply in (ts, event_id) order; a repeated event_id is ignored.
2. The first event of any type opens the conversation (one arrival) at its ts, in its `queue`
   or `unknown`. The queue changes only by `conversation.opened` (if it was `unknown`) and by
   `conversation.transferred` (a transfer counts out of the old queue; `to_agent_id` assigns).
3-7. Messages, handoffs, closes, ratings and orders as in the interpretation list (see `_walk`).
8. Every figure is recorded in the conversation's queue at the moment of its event.
9. Window W at `now` is (now - W, now] with its lower edge rounded down to a grid of W/60
   (1 s for 1m, 5 s for 5m, 15 s for 15m, 60 s for 1h; METRICS.md allows no coarser): it holds
   the records from the grid point at or before now - W to now, states that span (`span_s`) and
   divides its per-minute rate by it. (Before issue 10 this read "every 5 s / 60 s bucket that
   overlaps", divided by the nominal W: the window-rule reading that METRICS.md now rules out.)
   A platform rule's wait has one record: met at the reply within the limit, else missed at
   start + limit (answered late, closed later, or still open at `now`), or at a close before the
   limit; a `bot_resolved` close records none.
10. Percentiles are nearest-rank.
11-12. Live figures and roll-ups as in `_live` and `view_keys_of`.

Conventions where nothing is written: counts of the live block are numbers (0 when nothing is
open); agent figures are null in a view no agent with a status event counts in; a view exists
for a scope with any record, any open conversation or any agent status.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from services.core.events import ChatEvent, parse_event
from services.core.scope import Scope  # the key only (a view's, "*" = all): no production logic

ALL = "*"
UNKNOWN = "unknown"
WINDOWS = {"1m": (60_000, 1_000), "5m": (300_000, 5_000), "15m": (900_000, 15_000), "1h": (3_600_000, 60_000)}
SL_THRESHOLDS_MS = {"30": 30_000, "180": 180_000}
SLOW_REPLY_MS = 100_000



@dataclass
class Record:
    """One figure a conversation recorded: where (scope + queue), when, and its value."""

    kind: str  # arrival, frt, reply, left, transfer_out, csat, msg_customer, msg_agent, closed, replied, ordered
    ts: int
    queue: str
    value: Any = None  # frt/reply ms; left: frt ms or None (abandoned); csat: score; closed: (reason, handle ms|None);
    # replied (any human reply) / ordered: (tenant, conversation id) (conversion counts distinct conversations)


@dataclass
class ConvResult:
    tenant: str
    shop_id: str
    platform: str
    records: list[Record] = field(default_factory=list)
    # final state
    queue: str = UNKNOWN
    closed: bool = False
    frt_start: int | None = None
    waiting_since: int | None = None
    answered: bool = False
    assignee: str | None = None


# The platforms' reply-time rules (METRICS.md): which waits count ("frt": the buyer's first wait for a
# human, "reply": every wait), the limit, the counted China-time hours of the wait's start.
PLATFORM_RULES: dict[str, tuple[str, int, tuple[int, int] | None]] = {
    "jd": ("frt", 30_000, (9, 23)),
    # The denominator is buyers (METRICS.md): Pinduoduo and Taobao count the first wait too.
    "pdd": ("frt", 180_000, (8, 23)),
    "taobao": ("frt", 180_000, (8, 23)),
    "tmall": ("frt", 180_000, (8, 23)),
}
CHINA = timezone(timedelta(hours=8))


def _rule_record(platform: str, kind: str, q: str, started: int, ended: int, answered: bool,
                 bot: bool = False) -> Record | None:
    """The one outcome of a counted wait from `started` that a reply (`answered`) or a close ended at
    `ended`: met at the reply within the limit; else missed when the limit passed, or at the close
    if that came first."""
    rule = PLATFORM_RULES.get(platform)
    if rule is None or rule[0] != kind or not _rule_counts(rule, started):
        return None
    deadline = started + rule[1]
    if ended <= deadline:
        # A bot that resolved the chat within the limit served a buyer who needed no human.
        return None if bot else Record("rule", ended, q, answered)
    # The limit passes 1 ms after the deadline: a reply at the deadline itself is within it.
    return Record("rule", deadline + 1, q, False)


def _rule_counts(rule: tuple[str, int, tuple[int, int] | None], started: int) -> bool:
    hours = rule[2]
    return hours is None or hours[0] <= datetime.fromtimestamp(started / 1000, tz=CHINA).hour < hours[1]


def _still_waiting_misses(c: ConvResult, now: int) -> list[Record]:
    """An open conversation's waits still unanswered past the limit at `now`: a miss from that moment."""
    rule = PLATFORM_RULES.get(c.platform)
    if rule is None or c.closed:
        return []
    # "frt": the buyer's first wait, until the first human reply; "reply": the current wait.
    started = (None if c.answered else c.frt_start) if rule[0] == "frt" else c.waiting_since
    if started is None or not _rule_counts(rule, started) or started + rule[1] + 1 > now:
        return []
    return [Record("rule", started + rule[1] + 1, c.queue, False)]


def _walk(events: list[ChatEvent]) -> ConvResult:
    """One conversation, its events already deduplicated: apply them in (ts, event_id) order."""
    events = sorted(events, key=lambda e: (e.ts_ms, e.event_id))
    first = events[0]
    conv = ConvResult(first.tenant, first.shop_id, first.platform)
    first_assigned_ts: int | None = None
    repliers: set[str] = set()  # agents who replied so far
    out = conv.records
    for i, e in enumerate(events):
        ts = e.ts_ms
        if i == 0:
            conv.queue = e.queue or UNKNOWN
            out.append(Record("arrival", ts, conv.queue))
        elif e.type == "conversation.opened" and conv.queue == UNKNOWN and e.queue:
            conv.queue = e.queue
        q = conv.queue

        if e.type == "message" and e.sender == "customer":
            out.append(Record("msg_customer", ts, q))
            if conv.assignee is not None and not conv.closed:
                out.append(Record("msg_customer", ts, AGENT + conv.assignee))
            if not conv.closed:
                if conv.waiting_since is None:
                    conv.waiting_since = ts
                if conv.frt_start is None:
                    conv.frt_start = ts
        elif e.type == "message" and e.sender == "agent":
            me = AGENT + (e.agent_id or "")
            out.append(Record("msg_agent", ts, q))
            out.append(Record("msg_agent", ts, me))
            out.append(Record("replied", ts, q, (e.tenant, e.conversation_id)))
            if e.agent_id:  # the agent's own chats handled and conversion
                out.append(Record("replied", ts, me, (e.tenant, e.conversation_id)))
                repliers.add(e.agent_id)
            if not conv.closed:
                if conv.assignee is None:
                    conv.assignee = e.agent_id
                    if first_assigned_ts is None:
                        first_assigned_ts = ts
                if conv.waiting_since is not None:
                    out.append(Record("reply", ts, q, ts - conv.waiting_since))
                    out.append(Record("reply", ts, me, ts - conv.waiting_since))
                    for where in (q, me):  # the queue's compliance, and the replying agent's
                        if (rr := _rule_record(conv.platform, "reply", where, conv.waiting_since, ts, True)):
                            out.append(rr)
                    conv.waiting_since = None
                if not conv.answered and conv.frt_start is not None:
                    out.append(Record("frt", ts, q, ts - conv.frt_start))
                    out.append(Record("frt", ts, me, ts - conv.frt_start))
                    for where in (q, me):
                        if (rr := _rule_record(conv.platform, "frt", where, conv.frt_start, ts, True)):
                            out.append(rr)
                    out.append(Record("left", ts, q, ts - conv.frt_start))
                    conv.answered = True
        elif e.type == "conversation.assigned":
            if not conv.closed:
                conv.assignee = e.agent_id
                if first_assigned_ts is None:
                    first_assigned_ts = ts
        elif e.type == "conversation.handoff":
            if not conv.closed:
                conv.waiting_since = ts
                if not conv.answered:
                    conv.frt_start = ts
        elif e.type == "conversation.transferred":
            if not conv.closed:
                out.append(Record("transfer_out", ts, q))
                assert e.to_queue is not None
                conv.queue = e.to_queue
                if e.to_agent_id:
                    conv.assignee = e.to_agent_id
                    if first_assigned_ts is None:
                        first_assigned_ts = ts
        elif e.type == "conversation.closed":
            if not conv.closed:
                if not conv.answered and conv.frt_start is not None and e.reason in ("abandoned", "timeout"):
                    out.append(Record("left", ts, q, None))
                # Closed unanswered (abandoned, or by an agent): a miss of the platform rule; a bot that
                # resolved it within the limit served a buyer who never needed a human (past it: a miss).
                bot = e.reason == "bot_resolved"
                wheres = [q] if conv.assignee is None else [q, AGENT + conv.assignee]
                for where in wheres:
                    if not conv.answered and conv.frt_start is not None:
                        rr = _rule_record(conv.platform, "frt", where, conv.frt_start, ts, False, bot)
                        if rr:
                            out.append(rr)
                    if conv.waiting_since is not None:
                        rr = _rule_record(conv.platform, "reply", where, conv.waiting_since, ts, False, bot)
                        if rr:
                            out.append(rr)
                handle = None if first_assigned_ts is None else ts - first_assigned_ts
                out.append(Record("closed", ts, q, (e.reason, handle)))
                if conv.assignee is not None:
                    out.append(Record("closed", ts, AGENT + conv.assignee, (e.reason, handle)))
                conv.closed = True
                conv.waiting_since = None
        elif e.type == "csat.rated":
            out.append(Record("csat", ts, q, e.score))
            if conv.assignee is not None:  # the rating of the agent's conversation
                out.append(Record("csat", ts, AGENT + conv.assignee, e.score))
        elif e.type == "order.placed":
            out.append(Record("ordered", ts, q, (e.tenant, e.conversation_id)))
            for agent in repliers:  # each agent who replied before the order
                out.append(Record("ordered", ts, AGENT + agent, (e.tenant, e.conversation_id)))
                if e.amount is not None and e.currency:  # the scorecard's GMV (read by reference_day_sums only)
                    out.append(Record("gmv", ts, AGENT + agent, (e.currency, e.amount)))
    return conv


@dataclass
class AgentResult:
    agent_id: str
    tenant: str
    shop_id: str
    platform: str
    status: str
    capacity: int
    queues: tuple[str, ...]


AGENT = "@agent:"  # records attributed to an agent (the per-agent view) use this pseudo-queue


def view_keys_of(scope: Scope) -> list[Scope]:
    t, p, q = scope.tenant, scope.platform, scope.queue
    if q.startswith(AGENT):
        return [scope]  # an agent belongs to one shop: no roll-ups
    return [Scope(ALL, ALL, ALL, q), Scope(t, ALL, ALL, q), Scope(ALL, ALL, p, q), Scope(t, ALL, p, q), scope]


def nearest_rank(values: list[int], q: Fraction) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None, "max_s": None}
    return {
        "count": len(values),
        "mean_s": sum(values) / len(values) / 1000,
        "p50_s": nearest_rank(values, Fraction(1, 2)) / 1000,
        "p90_s": nearest_rank(values, Fraction(9, 10)) / 1000,
        "max_s": max(values) / 1000,
    }


def window_start(now: int, width: int, grid: int) -> int:
    """The window's lower edge: now - W rounded down to the grid (the grid point at or before it)."""
    return (now - width) // grid * grid


def in_window(ts: int, now: int, width: int, grid: int) -> bool:
    # (edge, now]: METRICS.md's (now - W, now] with the edge moved down to the grid; the edge itself is out.
    return window_start(now, width, grid) < ts <= now


def window_figures(records: list[Record], span_ms: int) -> dict[str, Any]:
    by: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by[r.kind].append(r)
    arrivals = len(by["arrival"])
    frt = [r.value for r in by["frt"]]
    replies = [r.value for r in by["reply"]]
    left = by["left"]
    answered = [r.value for r in left if r.value is not None]
    abandoned = len(left) - len(answered)
    closed = [r.value for r in by["closed"]]
    handles = [handle for _reason, handle in closed if handle is not None]
    scores = [r.value for r in by["csat"]]
    replied = {r.value for r in by["replied"]}
    reply = _summary(replies)
    reply["slow"] = sum(1 for v in replies if v > SLOW_REPLY_MS) if replies else None
    return {
        "arrivals": arrivals,
        "arrivals_per_min": arrivals * 60_000 / span_ms,
        "span_s": span_ms / 1000,
        "frt": _summary(frt),
        "reply": reply,
        "sl": {name: _ratio(sum(1 for v in answered if v <= x), len(left)) for name, x in SL_THRESHOLDS_MS.items()},
        "abandoned": abandoned,
        "abandon_rate": _ratio(abandoned, len(left)),
        "closed": len(closed),
        "aht_s": sum(handles) / len(handles) / 1000 if handles else None,
        "transfer_rate": _ratio(len(by["transfer_out"]), arrivals),
        "self_service_rate": _ratio(sum(1 for why, _ in closed if why == "bot_resolved"), len(closed)),
        "resolution_rate": _ratio(sum(1 for why, _ in closed if why in ("resolved", "bot_resolved")), len(closed)),
        "csat": {
            "mean": sum(scores) / len(scores) if scores else None,
            "satisfied_share": _ratio(sum(1 for s in scores if s >= 4), len(scores)),
            "participation": _ratio(len(scores), len(closed)),
            "count": len(scores),
        },
        # Per queue (a view's records are all of one queue): distinct conversations with an order in the window
        # that this queue also replied to in the window, over distinct conversations it replied to in it.
        "conversion_rate": _ratio(len({r.value for r in by["ordered"]} & replied), len(replied)),
        "replied_convs": len(replied),
        "platform_rule": {
            "counted": len(by["rule"]),
            "met": sum(1 for r in by["rule"] if r.value),
            "met_rate": _ratio(sum(1 for r in by["rule"] if r.value), len(by["rule"])),
        },
        "answer_question_ratio": _ratio(len(by["msg_agent"]), len(by["msg_customer"])),
        "messages": {"customer": len(by["msg_customer"]), "agent": len(by["msg_agent"])},
    }


def _live(convs: list[ConvResult], agents: list[AgentResult], active: dict[tuple[str, str], int],
          now: int) -> dict[str, Any]:
    open_ = [c for c in convs if not c.closed]
    unanswered = [c for c in open_ if c.frt_start is not None and not c.answered]
    waits = [max(0, now - c.waiting_since) for c in open_ if c.waiting_since is not None]
    out: dict[str, Any] = {
        "open": len(open_),
        "unanswered": len(unanswered),
        "unassigned": sum(1 for c in unanswered if c.assignee is None),
        "assigned": sum(1 for c in unanswered if c.assignee is not None),
        "awaiting_reply": len(waits),
        "oldest_wait_s": max(waits) / 1000 if waits else None,
        "wait_p50_s": nearest_rank(waits, Fraction(1, 2)) / 1000 if waits else None,
        "wait_p90_s": nearest_rank(waits, Fraction(9, 10)) / 1000 if waits else None,
    }
    if not agents:
        out.update(agents_online=None, agents_available=None, agents_away=None, slots_capacity=None,
                   slots_active=None, slot_utilization=None)
        return out
    serving = [a for a in agents if a.status in ("online", "busy")]
    capacity = sum(a.capacity for a in serving)
    busy_slots = sum(active.get((a.tenant, a.agent_id), 0) for a in serving)
    out.update(
        agents_online=sum(1 for a in agents if a.status != "offline"),
        agents_available=sum(1 for a in agents
                             if a.status == "online" and active.get((a.tenant, a.agent_id), 0) < a.capacity),
        agents_away=sum(1 for a in agents if a.status == "away"),
        slots_capacity=capacity,
        slots_active=busy_slots,
        slot_utilization=busy_slots / capacity if capacity > 0 else None,
    )
    return out


def empty_view(now: int | None = None) -> dict[str, Any]:
    """The view of a scope with no data at all at `now` (what a missing view stands for); its windows
    state the span they cover at `now` (the nominal widths when no `now` is given)."""
    return {
        "live": _live([], [], {}, 0),
        "windows": {
            name: window_figures([], width if now is None else now - window_start(now, width, size))
            for name, (width, size) in WINDOWS.items()
        },
    }


def reference_views(raw_events: list[dict[str, Any]], now: int | None = None) -> dict[Scope, dict[str, Any]]:
    """Every view at `now` (default: the largest ts fed): {view key: {"live": ..., "windows": ...}}."""
    seen: set[str] = set()
    events: list[ChatEvent] = []
    for obj in raw_events:
        ev = parse_event(obj)
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            events.append(ev)
    if now is None:
        now = max(ev.ts_ms for ev in events)

    # Conversations and agents are per tenant (issue 16): two tenants' "c1" or "a1" are two.
    by_conv: dict[tuple[str, str], list[ChatEvent]] = defaultdict(list)
    by_agent: dict[tuple[str, str], list[ChatEvent]] = defaultdict(list)
    for ev in events:
        if ev.type == "agent.status":
            assert ev.agent_id is not None
            by_agent[(ev.tenant, ev.agent_id)].append(ev)
        else:
            assert ev.conversation_id is not None
            by_conv[(ev.tenant, ev.conversation_id)].append(ev)
    convs = [_walk(evs) for evs in by_conv.values()]

    agents: list[AgentResult] = []
    for (_tenant, agent_id), evs in by_agent.items():
        last = max(evs, key=lambda e: (e.ts_ms, e.event_id))
        assert last.status is not None and last.capacity is not None and last.queues is not None
        agents.append(AgentResult(agent_id, last.tenant, last.shop_id, last.platform, last.status, last.capacity,
                                  last.queues))
    active: dict[tuple[str, str], int] = defaultdict(int)  # (tenant, agent) -> open conversations assigned
    for c in convs:
        if not c.closed and c.assignee is not None:
            active[(c.tenant, c.assignee)] += 1

    records_of: dict[Scope, list[Record]] = defaultdict(list)
    open_of: dict[Scope, list[ConvResult]] = defaultdict(list)
    agents_of: dict[Scope, list[AgentResult]] = defaultdict(list)
    keys: set[Scope] = set()
    for c in convs:
        for r in c.records:
            for key in view_keys_of(Scope(c.tenant, c.shop_id, c.platform, r.queue)):
                records_of[key].append(r)
                keys.add(key)
        if not c.closed:
            for key in view_keys_of(Scope(c.tenant, c.shop_id, c.platform, c.queue)):
                open_of[key].append(c)
                records_of[key].extend(_still_waiting_misses(c, now))
                keys.add(key)
    for a in agents:
        for queue in a.queues:
            for key in view_keys_of(Scope(a.tenant, a.shop_id, a.platform, queue)):
                agents_of[key].append(a)
                keys.add(key)

    views: dict[Scope, dict[str, Any]] = {}
    for key in keys:
        windows = {
            name: window_figures([r for r in records_of[key] if in_window(r.ts, now, width, size)],
                                 now - window_start(now, width, size))
            for name, (width, size) in WINDOWS.items()
        }
        views[key] = {"live": _live(open_of[key], agents_of[key], active, now), "windows": windows}
    return views


# --- the scorecard's day state (shared/SCORECARD.md) ----------------------------------------------------------

GMV_UNITS = 10_000  # amounts summed in 1/10000 of the currency unit


def _local_start(ts: int, tz: str, hour: bool) -> int:
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(ts / 1000, tz=ZoneInfo(tz))
    start = local.replace(minute=0, second=0, microsecond=0) if hour else local.replace(
        hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000)


def reference_day_sums(raw_events: list[dict[str, Any]], tz: str = "Asia/Shanghai"
                       ) -> dict[tuple[str, str, str, str, int], dict[str, int]]:
    """The scorecard's sums from the records: per agent (`@agent:<id>`) and local day, per shop (`@shop:<id>`)
    and local hour. Keys (tenant, shop, platform, who, period start ms). A conversation counts in an agent's
    chats on the day of the agent's latest reply to it, as converted on the day of the earlier of that reply
    and the conversation's latest order after the agent's reply; everything else on the day of its record."""
    from collections import Counter
    from decimal import ROUND_HALF_EVEN, Decimal

    seen: set[str] = set()
    by_conv: dict[str, list[ChatEvent]] = defaultdict(list)
    for obj in raw_events:
        ev = parse_event(obj)
        if ev.event_id in seen or ev.type == "agent.status":
            continue
        seen.add(ev.event_id)
        assert ev.conversation_id is not None
        by_conv[ev.conversation_id].append(ev)
    out: dict[tuple[str, str, str, str, int], Counter[str]] = defaultdict(Counter)
    for evs in by_conv.values():
        c = _walk(evs)

        def add(who: str, ts: int, hour: bool, **amounts: int) -> None:
            key = (c.tenant, c.shop_id, c.platform, who, _local_start(ts, tz, hour))  # noqa: B023
            out[key].update(amounts)

        last_reply: dict[str, int] = {}
        last_order: dict[str, int] = {}
        for r in c.records:
            if r.queue.startswith(AGENT):
                if r.kind == "frt":
                    add(r.queue, r.ts, False, frt_ms=r.value, frt_n=1)
                elif r.kind == "reply":
                    add(r.queue, r.ts, False, reply_ms=r.value, reply_n=1)
                elif r.kind == "rule":
                    add(r.queue, r.ts, False, rule_counted=1, rule_met=int(bool(r.value)))
                elif r.kind == "csat":
                    add(r.queue, r.ts, False, csat_n=1, csat_satisfied=int(r.value >= 4))
                elif r.kind == "closed":
                    add(r.queue, r.ts, False, closed=1, closed_resolved=int(r.value[0] == "resolved"))
                elif r.kind == "replied":
                    last_reply[r.queue] = max(last_reply.get(r.queue, r.ts), r.ts)
                elif r.kind == "ordered":
                    last_order[r.queue] = max(last_order.get(r.queue, r.ts), r.ts)
                elif r.kind == "gmv":
                    currency, amount = r.value
                    units = int((Decimal(amount) * GMV_UNITS).to_integral_value(rounding=ROUND_HALF_EVEN))
                    add(r.queue, r.ts, False, **{"gmv:" + currency: units})
            else:
                shop = "@shop:" + c.shop_id
                if r.kind == "arrival":
                    add(shop, r.ts, True, arrivals=1)
                elif r.kind == "reply":
                    add(shop, r.ts, True, reply_ms=r.value, reply_n=1)
                elif r.kind == "rule":
                    add(shop, r.ts, True, rule_counted=1, rule_met=int(bool(r.value)))
        for who, ts in last_reply.items():
            add(who, ts, False, chats_handled=1)
            if who in last_order:
                add(who, min(ts, last_order[who]), False, converted=1)
    return {k: {name: n for name, n in v.items() if n} for k, v in out.items() if any(v.values())}
