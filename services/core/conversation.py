"""The per-conversation state machine of shared/METRICS.md, with dedupe and event-time order.

`step` is the definition: it applies one event to a `ConvState` and returns the facts it
records (and retracts). `Conversation` wraps it for a stream that is duplicated and out of
order: it remembers applied event ids, keeps the events of the last `grace` of event time
pending, and when an event arrives out of order it replays the pending ones from the folded
base in (ts, event_id) order and returns the difference in facts. Events older than the base
are late: applied at the front of the pending list, where the state still allows.

What a conversation keeps is sized for millions of open ones (memory per conversation): it
remembers the ids of its pending events exactly (in the events themselves) and of its folded
events only a 64-bit digest each (`id_digest`); its current state and the pending events' net
facts are functions of the base and the pending events, derived when needed and never stored.
`to_json` is a compact positional record (event types and fact kinds as codes, times relative
to the last event); `from_json` reads it and the earlier dict form.
"""

from __future__ import annotations

import binascii
import hashlib
import sys
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
    UNANSWERED_CLOSED,
    WAIT_CLOSED,
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
        # The type and sender as the one shared string each (a decoded event brings its own copies).
        return cls(
            ev.ts_ms, ev.event_id, _TYPE_NAME.get(ev.type, ev.type), ev.queue,
            None if ev.sender is None else _SENDER_NAME.get(ev.sender, ev.sender), ev.agent_id,
            ev.to_queue, ev.to_agent_id, ev.reason, ev.score,
        )


# Codes of event types and fact kinds in stored records. Append only: a stored code must keep its meaning.
EVENT_TYPE_CODES: Final = (
    "conversation.opened", "message", "conversation.assigned", "conversation.handoff",
    "conversation.transferred", "conversation.closed", "csat.rated", "order.placed",
)
FACT_KIND_CODES: Final = (
    ARRIVAL, FRT, LEFT, ABANDON_WAIT, REPLY, TRANSFER_OUT, CSAT, MSG_CUSTOMER, MSG_AGENT, LAST_REPLY, LAST_ORDER,
    CLOSED_PREFIX + "resolved", CLOSED_PREFIX + "abandoned", CLOSED_PREFIX + "timeout", CLOSED_PREFIX + "bot_resolved",
    UNANSWERED_CLOSED, WAIT_CLOSED,
)
_TYPE_CODE: Final = {name: i for i, name in enumerate(EVENT_TYPE_CODES)}
_KIND_CODE: Final = {name: i for i, name in enumerate(FACT_KIND_CODES)}
_TYPE_NAME: Final = {name: name for name in EVENT_TYPE_CODES}
_SENDER_NAME: Final = {name: name for name in ("customer", "agent", "bot")}


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
            # A wait for a human the close ends unanswered: a miss of the platform rules (platform_rules.py).
            # The bot served a `bot_resolved` buyer, who never needed a human reply: no wait counts.
            ended: tuple[str, int] | None = None
            if reason != "bot_resolved":
                if not s.answered and s.frt_start is not None:
                    ended = UNANSWERED_CLOSED, max(0, ts - s.frt_start)
                elif s.waiting_since is not None:
                    ended = WAIT_CLOSED, max(0, ts - s.waiting_since)
            if ended is not None:
                out.append((Fact(ended[0], ts, q, ended[1]), 1))
                if s.assignee:
                    out.append((Fact(ended[0], ts, agent_scope(s.assignee), ended[1]), 1))
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


DIGEST_SIZE: Final = 8


def id_digest(event_id: str) -> bytes:
    """The 64-bit digest a folded event is remembered by (for dedupe), stable across processes.

    A new event is taken for a duplicate if its digest equals one of the k folded events' of its
    conversation: for distinct ids that happens with probability k / 2**64 (5.4e-18 for k = 100),
    so over 10**12 events of conversations of up to 100 events, below 1e-5 that it happens once
    (it would drop that one event). Ids of pending events are compared exactly.
    """
    return hashlib.blake2b(event_id.encode(), digest_size=DIGEST_SIZE).digest()


def _has_digest(blob: bytes, digest: bytes) -> bool:
    i = blob.find(digest)
    while i >= 0:
        if i % DIGEST_SIZE == 0:  # at a digest's start, not across two
            return True
        i = blob.find(digest, i + 1)
    return False


@dataclass(slots=True)
class Conversation:
    """One conversation's record in the scorer's table; see the module docstring."""

    tenant: str
    shop_id: str
    platform: str
    base: ConvState = field(default_factory=ConvState)
    state: ConvState = field(default_factory=ConvState)  # derived: base + pending
    pending: list[ConvEvent] = field(default_factory=list)
    facts: Counter[Fact] = field(default_factory=Counter)
    folded_ids: bytes = b""  # id_digest of each folded event, concatenated
    base_ts: int = -1  # ts of the last event folded into `base`
    last_event_ts: int = -1

    def has_seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied (pending exactly, folded by digest)."""
        for ev in self.pending:
            if ev.event_id == event_id:
                return True
        return bool(self.folded_ids) and _has_digest(self.folded_ids, id_digest(event_id))

    def apply(self, ev: ConvEvent, watermark: int, grace_ms: int) -> tuple[Delta, bool]:
        """Apply an event; returns (fact delta, late). A duplicate returns ([], False).

        `late` means older than the stream's watermark minus the grace period: counted, still applied.
        """
        if self.has_seen(ev.event_id):
            return [], False
        return self.apply_new(ev, watermark, grace_ms)

    def apply_new(self, ev: ConvEvent, watermark: int, grace_ms: int) -> tuple[Delta, bool]:
        """`apply` for an event the caller has checked is not a duplicate (`has_seen`)."""
        self.last_event_ts = max(self.last_event_ts, ev.ts)
        late = ev.ts < watermark - grace_ms
        if ev.ts < self.base_ts:
            # Before what is already folded: apply it first among the pending events, with its own ts.
            before = self._pending_delta()
            self.pending.insert(0, ev)
            delta = self._replay(before)
        elif not self.pending or _order_key(ev) >= _order_key(self.pending[-1]):
            self.pending.append(ev)
            delta = step(self.state, ev)
            self._add(delta)
        else:
            before = self._pending_delta()
            i = len(self.pending)
            while i > 0 and _order_key(self.pending[i - 1]) > _order_key(ev):
                i -= 1
            self.pending.insert(i, ev)
            delta = self._replay(before)
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

    def _derive_state(self) -> ConvState:
        state = self.base.copy()
        for ev in self.pending:
            step(state, ev)
        return state

    def _pending_delta(self) -> Counter[Fact]:
        return self._derive()[1]

    def _replay(self, before: Counter[Fact]) -> Delta:
        """Re-derive after the pending events changed; `before` is their net facts before the change."""
        state, new_delta = self._derive()
        diff: Delta = []
        # Retractions first, in a fixed order: a distribution's max is exact again when the replacing
        # sample comes after the retraction, and the result does not depend on set order (hash seed).
        for fact in sorted(new_delta.keys() | before.keys()):
            d = new_delta.get(fact, 0) - before.get(fact, 0)
            if d:
                diff.extend([(fact, 1 if d > 0 else -1)] * abs(d))
        diff.sort(key=lambda change: change[1])
        self.state = state
        self._add(diff)
        return diff

    def fold(self, settle_before: int) -> None:
        """Fold pending events older than `settle_before` into the base: they can no longer move.
        (The current state is base + pending either way: folding leaves it as it is.)"""
        n = 0
        while n < len(self.pending) and self.pending[n].ts < settle_before:
            n += 1
        if n == 0:
            return
        folded, self.pending = self.pending[:n], self.pending[n:]
        digests = [self.folded_ids]
        for ev in folded:
            step(self.base, ev)
            self.base_ts = max(self.base_ts, ev.ts)
            digests.append(id_digest(ev.event_id))
        self.folded_ids = b"".join(digests)

    def prune_facts(self, before: int) -> None:
        """Forget facts older than every window: they can no longer change any figure."""
        for fact in [f for f in self.facts if f.ts < before]:
            del self.facts[fact]

    def to_json(self) -> list[Any]:
        """[tenant, shop, platform, last ts, base ts, base, pending, facts, folded digests], every time but
        the last one as `last ts - time` (short), trailing defaults left out; see `from_json`."""
        lt = self.last_event_ts
        out: list[Any] = [
            self.tenant, self.shop_id, self.platform, lt, -1 if self.base_ts < 0 else lt - self.base_ts,
            _state_to_json(self.base, lt),
            [_event_to_json(ev, lt) for ev in self.pending],  # the state and pending facts replay from these
            _facts_to_json(self.facts, lt),
            binascii.b2a_base64(self.folded_ids, newline=False).decode() if self.folded_ids else "",
        ]
        while len(out) > 5 and not out[-1]:
            out.pop()
        return out

    @classmethod
    def from_json(cls, raw: list[Any] | dict[str, Any]) -> Conversation:
        if isinstance(raw, dict):
            return cls._from_dict(raw)
        tenant, shop, platform, lt, bt, *rest = raw
        rest += [[], [], [], ""][len(rest):]
        base_raw, pending_raw, facts_raw, digests = rest
        conv = cls(
            tenant=sys.intern(tenant),
            shop_id=sys.intern(shop),
            platform=sys.intern(platform),
            base=_state_of(base_raw, lt),
            pending=[_event_of(ev, lt) for ev in pending_raw],
            facts=_facts_of(facts_raw, lt),
            folded_ids=binascii.a2b_base64(digests) if digests else b"",
            base_ts=-1 if bt < 0 else lt - bt,
            last_event_ts=lt,
        )
        conv.state = conv._derive_state()
        return conv

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> Conversation:
        """The record form before the compact one: full event ids in "seen", absolute times."""
        tenant, shop, platform = raw["t"]
        pending = [ConvEvent(*ev) for ev in raw["p"]]
        pending_ids = {ev.event_id for ev in pending}
        conv = cls(
            tenant=sys.intern(tenant),
            shop_id=sys.intern(shop),
            platform=sys.intern(platform),
            base=ConvState(*raw["b"]),
            pending=pending,
            facts=Counter({Fact(k, t, q, v): n for k, t, q, v, n in raw["f"]}),
            folded_ids=b"".join(id_digest(i) for i in sorted(raw["seen"]) if i not in pending_ids),
            base_ts=raw["bt"],
            last_event_ts=raw["lt"],
        )
        conv.state = conv._derive_state()
        return conv


# --- the compact record's parts ------------------------------------------------------------------
_DEFAULT_STATE: Final = ConvState()
_STATE_DEFAULTS: Final = tuple(_DEFAULT_STATE.to_json())
_STATE_TIMES: Final = (3, 4, 7, 8, 10)  # frt_start, waiting_since, first_assigned_ts, last_reply_ts, last_order_ts
_STATE_NAMES: Final = (0, 6, 9, 11)  # queue, assignee, last_reply_queue, last_order_queue


def _state_to_json(s: ConvState, lt: int) -> list[Any]:
    if s == _DEFAULT_STATE:  # the base of every conversation none of whose events has settled yet
        return []
    out = s.to_json()
    for i in _STATE_TIMES:
        if out[i] is not None:
            out[i] = lt - out[i]
    while out and type(out[-1]) is type(_STATE_DEFAULTS[len(out) - 1]) and out[-1] == _STATE_DEFAULTS[len(out) - 1]:
        out.pop()
    return out


def _state_of(raw: list[Any], lt: int) -> ConvState:
    values = [*raw, *_STATE_DEFAULTS[len(raw):]]
    for i in _STATE_TIMES:
        if values[i] is not None:
            values[i] = lt - values[i]
    for i in _STATE_NAMES:
        if values[i] is not None:
            values[i] = sys.intern(values[i])
    return ConvState(*values)


def _event_to_json(ev: ConvEvent, lt: int) -> list[Any]:
    out: list[Any] = [lt - ev.ts, ev.event_id, _TYPE_CODE.get(ev.type, ev.type), *ev[3:]]
    while out[-1] is None:
        out.pop()
    return out


def _event_of(raw: list[Any], lt: int) -> ConvEvent:
    dt, event_id, etype, *rest = raw
    name = EVENT_TYPE_CODES[etype] if isinstance(etype, int) else etype
    rest = [sys.intern(x) if isinstance(x, str) else x for x in rest]
    return ConvEvent(lt - dt, event_id, name, *rest)


def _facts_to_json(facts: Counter[Fact], lt: int) -> list[list[Any]]:
    # [kind, lt - ts, queue] + [value] unless 0 + [count] unless 1; one loop, no call per fact (hot in flush).
    code = _KIND_CODE.get
    return [
        [code(kind, kind), lt - ts, queue] if n == 1 and not value
        else [code(kind, kind), lt - ts, queue, value] if n == 1
        else [code(kind, kind), lt - ts, queue, value, n]
        for (kind, ts, queue, value), n in facts.items()
    ]


def _facts_of(raw: list[list[Any]], lt: int) -> Counter[Fact]:
    # The one hot loop of decoding (a conversation has tens of facts): tuple.__new__ skips Fact's Python __new__.
    out: Counter[Fact] = Counter()
    kinds, intern, new = FACT_KIND_CODES, sys.intern, tuple.__new__
    for f in raw:
        kind = f[0]
        fact = new(Fact, (kinds[kind] if type(kind) is int else kind, lt - f[1], intern(f[2]),
                          f[3] if len(f) > 3 else 0))
        out[fact] = f[4] if len(f) > 4 else 1
    return out
