"""The per-conversation state machine of shared/METRICS.md, with dedupe and event-time order.

`step` is the definition: it applies one event to a `ConvState` and returns the facts it
records (and retracts). `Conversation` wraps it for a stream that is duplicated and out of
order: it remembers applied event ids, keeps its events of the last `horizon` of event time
(the longest window plus grace) pending, and when an event arrives out of order it replays the
pending ones from the folded base in (ts, event_id) order and returns the difference in facts.
So every figure is a function of the set of events, however late (within the horizon) and
whatever other traffic moved the watermark: the grace only decides what is counted as late.
An event older than the folded base is beyond the horizon: too old, not applied.

What a conversation keeps is sized for millions of open ones (memory per conversation): it
remembers the ids of its pending events exactly (in the events themselves) and of its folded
events only a 64-bit digest each (`id_digest`); its current state and its facts are functions
of the base and the pending events, derived when read from the table and never stored there
(facts of folded events lie beyond the horizon, out of every window). `to_json` is a compact
positional record (event types as codes, times relative to the last event); `from_json` reads
it back.
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
    CONVERTED,
    CSAT,
    FRT,
    LAST_REPLY,
    LEFT,
    MSG_AGENT,
    MSG_CUSTOMER,
    REPLY,
    TRANSFER_OUT,
    UNANSWERED_BOT_CLOSED,
    UNANSWERED_CLOSED,
    WAIT_BOT_CLOSED,
    WAIT_CLOSED,
    Fact,
    gmv_fact,
)
from .config import horizon_ms
from .events import ChatEvent
from .scope import agent_scope, is_agent_scope

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
    amount: str | None = None  # order.placed: the decimal amount as sent, and its ISO 4217 currency
    currency: str | None = None

    @classmethod
    def of(cls, ev: ChatEvent) -> ConvEvent:
        # The type and sender as the one shared string each (a decoded event brings its own copies).
        return cls(
            ev.ts_ms, ev.event_id, _TYPE_NAME.get(ev.type, ev.type), ev.queue,
            None if ev.sender is None else _SENDER_NAME.get(ev.sender, ev.sender), ev.agent_id,
            ev.to_queue, ev.to_agent_id, ev.reason, ev.score, ev.amount, ev.currency,
        )


# Codes of event types in stored records. Append only: a stored code must keep its meaning.
EVENT_TYPE_CODES: Final = (
    "conversation.opened", "message", "conversation.assigned", "conversation.handoff",
    "conversation.transferred", "conversation.closed", "csat.rated", "order.placed",
)
_TYPE_CODE: Final = {name: i for i, name in enumerate(EVENT_TYPE_CODES)}
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
    # Per queue the conversation was in: (queue, its latest human reply ts, its latest order ts).
    conversion: tuple[tuple[str, int | None, int | None], ...] = ()

    def copy(self) -> ConvState:
        return ConvState(*self.to_json())

    def to_json(self) -> list[Any]:
        return [
            self.queue, self.opened, self.closed, self.frt_start, self.waiting_since, self.answered,
            self.assignee, self.first_assigned_ts, self.conversion,
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


def _convert(s: ConvState, q: str, out: Delta, reply: int | None = None, order: int | None = None) -> None:
    """A human reply or an order in queue q: move q's `last_reply` and `converted` facts (conversion_rate is
    per conversation and queue: an order counts in a queue only where that queue replied in the window)."""
    rows = s.conversion
    i = next((n for n, row in enumerate(rows) if row[0] == q), len(rows))
    _q, old_reply, old_order = rows[i] if i < len(rows) else (q, None, None)
    new_reply = old_reply if reply is None else reply
    new_order = old_order if order is None else order
    if reply is not None and reply != old_reply:
        if old_reply is not None:
            out.append((Fact(LAST_REPLY, old_reply, q), -1))
        out.append((Fact(LAST_REPLY, reply, q), 1))
    old = None if old_reply is None or old_order is None else min(old_reply, old_order)
    new = None if new_reply is None or new_order is None else min(new_reply, new_order)
    if new != old:
        if old is not None:
            out.append((Fact(CONVERTED, old, q), -1))
        if new is not None:
            out.append((Fact(CONVERTED, new, q), 1))
    s.conversion = (*rows[:i], (q, new_reply, new_order), *rows[i + 1:])


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
            _convert(s, q, out, reply=ts)
            if ev.agent_id:  # the agent's own chats handled (接待量) and conversion (SCORECARD.md)
                _convert(s, me, out, reply=ts)
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
            # A `bot_resolved` close ends it too: a miss only if the limit had passed by then (the rule decides).
            ended: tuple[str, int] | None = None
            bot = reason == "bot_resolved"
            if not s.answered and s.frt_start is not None:
                ended = UNANSWERED_BOT_CLOSED if bot else UNANSWERED_CLOSED, max(0, ts - s.frt_start)
            elif s.waiting_since is not None:
                ended = WAIT_BOT_CLOSED if bot else WAIT_CLOSED, max(0, ts - s.waiting_since)
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
            if s.assignee:  # the rating of the agent's conversation (SCORECARD.md csat_satisfied_share)
                out.append((Fact(CSAT, ts, agent_scope(s.assignee), ev.score), 1))
    elif etype == "order.placed":
        _convert(s, q, out, order=ts)
        # Every agent who replied before the order: it counts in their conversion, its amount in their GMV.
        for row_q, row_reply, _order in s.conversion:
            if is_agent_scope(row_q) and row_reply is not None:
                _convert(s, row_q, out, order=ts)
                if ev.amount is not None and ev.currency:
                    out.append((gmv_fact(ev.currency, ts, row_q, ev.amount), 1))
    return out


def _order_key(ev: ConvEvent) -> tuple[int, str]:
    return (ev.ts, ev.event_id)


DEFAULT_HORIZON_MS: Final = horizon_ms(60_000)  # the scorer's default (GRACE_S = 60)


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
    # Its contributions to the scorecard's day state (services.core.days.ConvDays), None until it has one:
    # kept beside `to_json` in the scorer's record, never derived (facts beyond the horizon are gone).
    days: dict[tuple[str, int], Counter[str]] | None = None

    def has_seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied (pending exactly, folded by digest)."""
        for ev in self.pending:
            if ev.event_id == event_id:
                return True
        return bool(self.folded_ids) and _has_digest(self.folded_ids, id_digest(event_id))

    def apply(self, ev: ConvEvent, watermark: int, grace_ms: int,
              horizon_ms: int = DEFAULT_HORIZON_MS) -> tuple[Delta, bool]:
        """Apply an event; returns (fact delta, late). A duplicate returns ([], False), one too old ([], True).

        `late` means older than the stream's watermark minus the grace period: counted, still applied
        where it belongs in event time.
        """
        if self.has_seen(ev.event_id):
            return [], False
        if self.too_old(ev):
            return [], True
        return self.apply_new(ev, watermark, grace_ms, horizon_ms)

    def too_old(self, ev: ConvEvent) -> bool:
        """Older than an event already folded into the base: beyond the horizon, it can no longer be
        put where it belongs (not applied; the caller counts it)."""
        return ev.ts <= self.base_ts

    def in_order(self, ev: ConvEvent) -> bool:
        """Whether `ev` goes after every event kept: applied by one step, nothing replayed."""
        return not self.pending or _order_key(ev) >= _order_key(self.pending[-1])

    def apply_new(self, ev: ConvEvent, watermark: int, grace_ms: int,
                  horizon_ms: int = DEFAULT_HORIZON_MS) -> tuple[Delta, bool]:
        """`apply` for an event the caller has checked is neither a duplicate (`has_seen`) nor `too_old`."""
        self.last_event_ts = max(self.last_event_ts, ev.ts)
        late = ev.ts < watermark - grace_ms
        if self.in_order(ev):
            self.pending.append(ev)
            delta = step(self.state, ev)
            self._add(delta)
        else:
            i = len(self.pending)
            while i > 0 and _order_key(self.pending[i - 1]) > _order_key(ev):
                i -= 1
            delta = self._insert(i, ev)
        # Only what is beyond the horizon settles: a conversation's own order is never lost to the grace.
        self.fold(watermark - horizon_ms)
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
        """The current state and the facts of the pending events, replayed from the base. Facts at or before
        the base's last event (retractions of folded events' facts) are beyond the horizon: left out."""
        state = self.base.copy()
        facts: Counter[Fact] = Counter()
        for ev in self.pending:
            for fact, sign in step(state, ev):
                facts[fact] += sign
        settled = self.base_ts
        return state, Counter({f: n for f, n in facts.items() if n and f.ts > settled})

    def _insert(self, i: int, ev: ConvEvent) -> Delta:
        """Put `ev` at position i of the pending events; the facts of the replayed events change by the delta."""
        state = self.base.copy()
        for e in self.pending[:i]:  # what comes before is unchanged: only its state is needed
            step(state, e)
        before: Counter[Fact] = Counter()
        replay = state.copy()
        for e in self.pending[i:]:
            for fact, sign in step(replay, e):
                before[fact] += sign
        self.pending.insert(i, ev)
        after: Counter[Fact] = Counter()
        for e in self.pending[i:]:
            for fact, sign in step(state, e):
                after[fact] += sign
        diff: Delta = []
        # Retractions first, in a fixed order: a distribution's max is exact again when the replacing
        # sample comes after the retraction, and the result does not depend on set order (hash seed).
        for fact in sorted(after.keys() | before.keys()):
            d = after.get(fact, 0) - before.get(fact, 0)
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

    def agent_spans(self) -> dict[str, list[list[int | None]]]:
        """The chat slot this conversation held, per agent, in event time: [start, end) spans, start None
        when it began before the kept events, end None while it lasts (the agent stage's max concurrent
        chats and active chats follow them, not the order the events arrived in)."""
        state = self.base.copy()
        current = state.active_agent
        spans: dict[str, list[list[int | None]]] = {current: [[None, None]]} if current else {}
        for ev in self.pending:
            step(state, ev)
            agent = state.active_agent
            if agent != current:
                if current:
                    spans[current][-1][1] = ev.ts
                if agent:
                    spans.setdefault(agent, []).append([ev.ts, None])
                current = agent
        return spans

    def prune_facts(self, before: int) -> None:
        """Forget facts older than every window: they can no longer change any figure."""
        for fact in [f for f in self.facts if f.ts < before]:
            del self.facts[fact]

    def to_json(self) -> list[Any]:
        """[tenant, shop, platform, last ts, base ts, base, pending, [], folded digests], every time but
        the last one as `last ts - time` (short), trailing defaults left out; see `from_json`. (The empty
        list is a slot no reader uses: kept so the record's layout stays as written.)"""
        lt = self.last_event_ts
        out: list[Any] = [
            self.tenant, self.shop_id, self.platform, lt, -1 if self.base_ts < 0 else lt - self.base_ts,
            state_to_compact(self.base, lt),
            [_event_to_json(ev, lt) for ev in self.pending],  # the state and pending facts replay from these
            [],
            binascii.b2a_base64(self.folded_ids, newline=False).decode() if self.folded_ids else "",
        ]
        while len(out) > 5 and not out[-1]:
            out.pop()
        return out

    @classmethod
    def from_json(cls, raw: list[Any]) -> Conversation:
        tenant, shop, platform, lt, bt, *rest = raw
        rest += [[], [], [], ""][len(rest):]
        base_raw, pending_raw, _unused, digests = rest
        conv = cls(
            tenant=sys.intern(tenant),
            shop_id=sys.intern(shop),
            platform=sys.intern(platform),
            base=state_from_compact(base_raw, lt),
            pending=[_event_of(ev, lt) for ev in pending_raw],
            folded_ids=binascii.a2b_base64(digests) if digests else b"",
            base_ts=-1 if bt < 0 else lt - bt,
            last_event_ts=lt,
        )
        conv.state, conv.facts = conv._derive()
        return conv


# --- the compact record's parts ------------------------------------------------------------------
_DEFAULT_STATE: Final = ConvState()
_STATE_TIMES: Final = (3, 4, 7)  # frt_start, waiting_since, first_assigned_ts
_STATE_NAMES: Final = (0, 6)  # queue, assignee
_CONVERSION: Final = 8  # [[queue, latest reply, latest order], ...]
_STATE_DEFAULTS: Final = (*_DEFAULT_STATE.to_json()[:_CONVERSION], [])  # as written


def _rel(lt: int, ts: int | None) -> int | None:
    return None if ts is None else lt - ts


def state_to_compact(s: ConvState, lt: int) -> list[Any]:
    """A state as the compact record keeps it (times relative to `lt`, defaults left off; `state_from_compact`)."""
    if s == _DEFAULT_STATE:  # the base of every conversation none of whose events has settled yet
        return []
    out = s.to_json()
    for i in _STATE_TIMES:
        if out[i] is not None:
            out[i] = lt - out[i]
    out[_CONVERSION] = [[q, _rel(lt, r), _rel(lt, o)] for q, r, o in s.conversion]
    while out and type(out[-1]) is type(_STATE_DEFAULTS[len(out) - 1]) and out[-1] == _STATE_DEFAULTS[len(out) - 1]:
        out.pop()
    return out


def state_from_compact(raw: list[Any], lt: int) -> ConvState:
    values = [*raw, *_STATE_DEFAULTS[len(raw):]]
    for i in _STATE_TIMES:
        if values[i] is not None:
            values[i] = lt - values[i]
    for i in _STATE_NAMES:
        if values[i] is not None:
            values[i] = sys.intern(values[i])
    values[_CONVERSION] = tuple((sys.intern(q), _rel(lt, r), _rel(lt, o)) for q, r, o in values[_CONVERSION])
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
