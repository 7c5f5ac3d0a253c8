"""The per-conversation state machine of shared/METRICS.md, with dedupe and event-time order.

`step` is the definition: it applies one event to a `ConvState` and returns the facts it
records (and retracts). `Conversation` wraps it for a stream that is duplicated and out of
order: it remembers applied event ids, keeps the events of the last `grace` of event time
pending, and when an event arrives out of order it replays the pending ones from the folded
base in (ts, event_id) order and returns the difference in facts. Events older than the base
are late: applied at the front of the pending list, where the state still allows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .buckets import (
    ABANDON_WAIT,
    ARRIVAL,
    CLOSED_PREFIX,
    CSAT,
    FRT,
    LAST_ORDER,
    LAST_REPLY,
    LEFT,
    MSG_AGENT,
    MSG_CUSTOMER,
    REPLY,
    TRANSFER_OUT,
    Fact,
    agent_scope,
)
from .events import ChatEvent

UNKNOWN_QUEUE: Final = "unknown"
ABANDON_REASONS: Final = frozenset({"abandoned", "timeout"})

Delta = list[tuple[Fact, int]]


class ConvEvent(NamedTuple):
    """The fields of a chat event the state machine reads (compact enough to keep pending)."""

    ts: int
    event_id: str
    type: str
    queue: str | None = None
    sender: str | None = None
    agent_id: str | None = None
    to_queue: str | None = None
    to_agent_id: str | None = None
    reason: str | None = None
    score: int | None = None

    @classmethod
    def of(cls, ev: ChatEvent) -> ConvEvent:
        return cls(
            ev.ts_ms, ev.event_id, ev.type, ev.queue, ev.sender, ev.agent_id,
            ev.to_queue, ev.to_agent_id, ev.reason, ev.score,
        )


@dataclass(slots=True)
class ConvState:
    queue: str = UNKNOWN_QUEUE
    opened: bool = False
    closed: bool = False
    frt_start: int | None = None
    waiting_since: int | None = None
    answered: bool = False
    assignee: str | None = None
    first_assigned_ts: int | None = None
    last_reply_ts: int | None = None
    last_reply_queue: str | None = None
    last_order_ts: int | None = None
    last_order_queue: str | None = None

    def copy(self) -> ConvState:
        return ConvState(*self.to_json())

    def to_json(self) -> list[Any]:
        return [
            self.queue, self.opened, self.closed, self.frt_start, self.waiting_since, self.answered,
            self.assignee, self.first_assigned_ts, self.last_reply_ts, self.last_reply_queue,
            self.last_order_ts, self.last_order_queue,
        ]

    @property
    def unanswered(self) -> bool:
        return self.opened and not self.closed and self.frt_start is not None and not self.answered

    @property
    def active_agent(self) -> str | None:
        """The agent this conversation occupies a chat slot of, if any."""
        return self.assignee if self.opened and not self.closed else None


def _assign(s: ConvState, agent_id: str, ts: int) -> None:
    s.assignee = agent_id
    if s.first_assigned_ts is None:
        s.first_assigned_ts = ts


def step(s: ConvState, ev: ConvEvent) -> Delta:
    """Apply one event in place; return the facts recorded (+1) and retracted (-1)."""
    out: Delta = []
    ts, etype = ev.ts, ev.type
    if not s.opened:
        # A conversation first seen through any of its events opens implicitly at that event.
        s.opened = True
        s.queue = ev.queue or UNKNOWN_QUEUE
        out.append((Fact(ARRIVAL, ts, s.queue), 1))
    elif etype == "conversation.opened" and s.queue == UNKNOWN_QUEUE and ev.queue:
        s.queue = ev.queue
    q = s.queue

    if etype == "message":
        if ev.sender == "customer":
            out.append((Fact(MSG_CUSTOMER, ts, q), 1))
            if s.assignee and not s.closed:  # the question is the assigned agent's to answer
                out.append((Fact(MSG_CUSTOMER, ts, agent_scope(s.assignee)), 1))
            if not s.closed:
                if s.waiting_since is None:
                    s.waiting_since = ts
                if s.frt_start is None:
                    s.frt_start = ts
        elif ev.sender == "agent":
            me = agent_scope(ev.agent_id or "")
            out.append((Fact(MSG_AGENT, ts, q), 1))
            if ev.agent_id:
                out.append((Fact(MSG_AGENT, ts, me), 1))
            if s.last_reply_ts is not None and s.last_reply_queue is not None:
                out.append((Fact(LAST_REPLY, s.last_reply_ts, s.last_reply_queue), -1))
            s.last_reply_ts, s.last_reply_queue = ts, q
            out.append((Fact(LAST_REPLY, ts, q), 1))
            if not s.closed:
                if s.assignee is None and ev.agent_id:
                    _assign(s, ev.agent_id, ts)
                if s.waiting_since is not None:
                    reply = max(0, ts - s.waiting_since)
                    out.append((Fact(REPLY, ts, q, reply), 1))
                    if ev.agent_id:
                        out.append((Fact(REPLY, ts, me, reply), 1))
                    s.waiting_since = None
                if not s.answered and s.frt_start is not None:
                    frt = max(0, ts - s.frt_start)
                    out.append((Fact(FRT, ts, q, frt), 1))
                    out.append((Fact(LEFT, ts, q, frt), 1))
                    if ev.agent_id:
                        out.append((Fact(FRT, ts, me, frt), 1))
                    s.answered = True
        # Bot messages are not replies: they clear nothing and count in no ratio.
    elif etype == "conversation.assigned":
        if not s.closed and ev.agent_id:
            _assign(s, ev.agent_id, ts)
    elif etype == "conversation.handoff":
        if not s.closed:
            s.waiting_since = ts
            if not s.answered:
                s.frt_start = ts
    elif etype == "conversation.transferred":
        if not s.closed and ev.to_queue:
            out.append((Fact(TRANSFER_OUT, ts, q), 1))
            s.queue = ev.to_queue
            if ev.to_agent_id:
                _assign(s, ev.to_agent_id, ts)
    elif etype == "conversation.closed":
        if not s.closed:
            reason = ev.reason or "resolved"
            if not s.answered and s.frt_start is not None and reason in ABANDON_REASONS:
                out.append((Fact(LEFT, ts, q, -1), 1))
                # How long the buyer waited before giving up: with the answered waits, it estimates patience.
                out.append((Fact(ABANDON_WAIT, ts, q, max(0, ts - s.frt_start)), 1))
            handle = -1 if s.first_assigned_ts is None else max(0, ts - s.first_assigned_ts)
            out.append((Fact(CLOSED_PREFIX + reason, ts, q, handle), 1))
            if s.assignee:  # a chat the agent handled (接待), with its handle time
                out.append((Fact(CLOSED_PREFIX + reason, ts, agent_scope(s.assignee), handle), 1))
            s.closed = True
            s.waiting_since = None
    elif etype == "csat.rated":
        if ev.score is not None:
            out.append((Fact(CSAT, ts, q, ev.score), 1))
    elif etype == "order.placed":
        if s.last_order_ts is not None and s.last_order_queue is not None:
            out.append((Fact(LAST_ORDER, s.last_order_ts, s.last_order_queue), -1))
        s.last_order_ts, s.last_order_queue = ts, q
        out.append((Fact(LAST_ORDER, ts, q), 1))
    return out


def _order_key(ev: ConvEvent) -> tuple[int, str]:
    return (ev.ts, ev.event_id)


@dataclass(slots=True)
class Conversation:
    """One conversation's record in the scorer's table; see the module docstring."""

    tenant: str
    shop_id: str
    platform: str
    base: ConvState = field(default_factory=ConvState)
    state: ConvState = field(default_factory=ConvState)
    pending: list[ConvEvent] = field(default_factory=list)
    pending_delta: Counter[Fact] = field(default_factory=Counter)
    facts: Counter[Fact] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    base_ts: int = -1  # ts of the last event folded into `base`
    last_event_ts: int = -1

    def apply(self, ev: ConvEvent, watermark: int, grace_ms: int) -> tuple[Delta, bool]:
        """Apply an event; returns (fact delta, late). A duplicate returns ([], False).

        `late` means older than the stream's watermark minus the grace period: counted, still applied.
        """
        if ev.event_id in self.seen:
            return [], False
        self.seen.add(ev.event_id)
        self.last_event_ts = max(self.last_event_ts, ev.ts)
        late = ev.ts < watermark - grace_ms
        if ev.ts < self.base_ts:
            # Before what is already folded: apply it first among the pending events, with its own ts.
            self.pending.insert(0, ev)
            delta = self._replay()
        elif not self.pending or _order_key(ev) >= _order_key(self.pending[-1]):
            self.pending.append(ev)
            delta = step(self.state, ev)
            for fact, sign in delta:
                self.pending_delta[fact] += sign
            self._add(delta)
        else:
            i = len(self.pending)
            while i > 0 and _order_key(self.pending[i - 1]) > _order_key(ev):
                i -= 1
            self.pending.insert(i, ev)
            delta = self._replay()
        self.fold(watermark - grace_ms)
        return delta, late

    def _add(self, delta: Delta) -> None:
        facts = self.facts
        for fact, sign in delta:
            n = facts[fact] + sign
            if n:
                facts[fact] = n
            else:
                del facts[fact]

    def _derive(self) -> tuple[ConvState, Counter[Fact]]:
        """The current state and the pending events' net facts, replayed from the base."""
        state = self.base.copy()
        delta: Counter[Fact] = Counter()
        for ev in self.pending:
            for fact, sign in step(state, ev):
                delta[fact] += sign
        return state, Counter({f: n for f, n in delta.items() if n})

    def _replay(self) -> Delta:
        state, new_delta = self._derive()
        diff: Delta = []
        # Retractions first, in a fixed order: a distribution's max is exact again when the replacing
        # sample comes after the retraction, and the result does not depend on set order (hash seed).
        for fact in sorted(new_delta.keys() | self.pending_delta.keys()):
            d = new_delta.get(fact, 0) - self.pending_delta.get(fact, 0)
            if d:
                diff.extend([(fact, 1 if d > 0 else -1)] * abs(d))
        diff.sort(key=lambda change: change[1])
        self.state = state
        self.pending_delta = new_delta
        self._add(diff)
        return diff

    def fold(self, settle_before: int) -> None:
        """Fold pending events older than `settle_before` into the base: they can no longer move."""
        n = 0
        while n < len(self.pending) and self.pending[n].ts < settle_before:
            n += 1
        if n == 0:
            return
        folded, self.pending = self.pending[:n], self.pending[n:]
        for ev in folded:
            step(self.base, ev)
            self.base_ts = max(self.base_ts, ev.ts)
        _state, self.pending_delta = self._derive()

    def prune_facts(self, before: int) -> None:
        """Forget facts older than every window: they can no longer change any figure."""
        for fact in [f for f in self.facts if f.ts < before]:
            del self.facts[fact]

    def to_json(self) -> dict[str, Any]:
        return {
            "t": [self.tenant, self.shop_id, self.platform],
            "b": self.base.to_json(),
            "p": [list(ev) for ev in self.pending],  # the state and pending facts replay from base + these
            "f": [[*f, n] for f, n in self.facts.items()],
            "seen": list(self.seen),
            "bt": self.base_ts,
            "lt": self.last_event_ts,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Conversation:
        tenant, shop, platform = raw["t"]
        conv = cls(
            tenant=tenant,
            shop_id=shop,
            platform=platform,
            base=ConvState(*raw["b"]),
            pending=[ConvEvent(*ev) for ev in raw["p"]],
            facts=Counter({Fact(k, t, q, v): n for k, t, q, v, n in raw["f"]}),
            seen=set(raw["seen"]),
            base_ts=raw["bt"],
            last_event_ts=raw["lt"],
        )
        conv.state, conv.pending_delta = conv._derive()
        return conv
