"""Agents: presence, capacity and active chats, and what each contributes to its queues.

An agent's history follows event time, not arrival order: its status events are kept sorted by
(ts, event_id) (the latest is its status now), and the chat slots its conversations held are kept
as [start, end) spans per conversation, so a late status or a late assignment lands where it
belongs and the time per status and the most concurrent chats are those of what happened.
Duplicates change nothing (a status event is known by its id, a conversation's spans are replaced
whole, and a slot taken or left is known by its conversation and time). Both are kept for the
horizon only (`prune`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .events import AGENT_STATUS_ORDER
from .figures import AgentWindowFigures
from .scope import Scope

Span = list[int | None]  # [start, end): start None = before the history kept, end None = still held


class AgentLive(NamedTuple):
    online: int = 0  # last status is not offline
    available: int = 0  # online with a free chat slot
    away: int = 0
    serving: int = 0  # online or busy: their slots count
    slots_capacity: int = 0
    slots_active: int = 0
    known: int = 0  # agents with a status event, offline ones too: all offline is agent data (zeros), not null

    def add(self, other: AgentLive, sign: int = 1) -> AgentLive:
        return AgentLive(*(a + sign * b for a, b in zip(self, other, strict=True)))


@dataclass(slots=True)
class AgentState:
    # Shop, capacity and queues of the latest status event (by event time).
    tenant: str = ""
    shop_id: str = ""
    platform: str = ""
    capacity: int = 1
    queues: tuple[str, ...] = ()
    # (ts, event_id, status) of each status event, sorted: within the horizon plus the one in force at its edge.
    statuses: list[tuple[int, str, str]] = field(default_factory=list)
    # conversation id -> the spans of this agent's chat slot it held, sorted by start.
    chats: dict[str, list[Span]] = field(default_factory=dict)

    @property
    def status(self) -> str | None:
        return self.statuses[-1][2] if self.statuses else None

    @property
    def active(self) -> set[str]:
        """The conversations holding one of the agent's chat slots now."""
        return {c for c, spans in self.chats.items() if spans and spans[-1][1] is None}

    def apply_status(
        self, ts: int, event_id: str, tenant: str, shop_id: str, platform: str,
        status: str, capacity: int, queues: tuple[str, ...],
    ) -> bool:
        key = (ts, event_id)
        i = bisect_left(self.statuses, key)  # (ts, event_id) sorts before every entry that starts with it
        if i < len(self.statuses) and self.statuses[i][:2] == key:
            return False  # a duplicate
        self.statuses.insert(i, (ts, event_id, status))
        if i == len(self.statuses) - 1:  # the latest: it says where the agent works now
            self.tenant, self.shop_id, self.platform = tenant, shop_id, platform
            self.capacity, self.queues = capacity, queues
        return True

    def set_active(self, conversation_id: str, active: bool, ts: int | None = None) -> bool:
        """A conversation took (active) or left the agent's chat slot at ts, in event order for it.

        A change already applied is recognised by its time (a span starting or ending at ts) and changes nothing:
        after a crash the stage reads again the changes after its committed offset, onto a state that may hold
        them already (its table's writes are acknowledged before the offsets that cover them are committed, so the
        table can be ahead of those offsets). Taking a slot again that was taken and left at ts would otherwise
        open a second span (a closed chat held again until its replayed end), and leaving it again at an old time
        would end the chat the conversation took since."""
        spans = self.chats.setdefault(conversation_id, [])
        held = bool(spans) and spans[-1][1] is None
        seen = ts is not None and any((start if active else end) == ts for start, end in spans)
        if active == held or seen:
            if not spans:
                del self.chats[conversation_id]
            return False
        at = self.latest_ts() if ts is None else ts
        if active:
            spans.append([at, None])
        else:
            start = spans[-1][0]
            spans[-1][1] = at if start is None else max(at, start)
        return True

    def set_spans(self, conversation_id: str, spans: list[Span]) -> bool:
        """Replace what a conversation held (after it was re-derived in event order)."""
        new = sorted(([s, e] for s, e in spans), key=lambda sp: -1 if sp[0] is None else sp[0])
        if new == self.chats.get(conversation_id, []):
            return False
        if new:
            self.chats[conversation_id] = new
        else:
            self.chats.pop(conversation_id, None)
        return True

    def latest_ts(self) -> int:
        """The newest time the agent knows of."""
        latest = self.statuses[-1][0] if self.statuses else -1
        for spans in self.chats.values():
            for start, end in spans:
                last = end if end is not None else start
                if last is not None and last > latest:
                    latest = last
        return latest

    def prune(self, before: int) -> None:
        """Forget what ended before `before`, keeping the status in force at that moment."""
        st, i = self.statuses, 0
        while i + 1 < len(st) and st[i + 1][0] <= before:
            i += 1
        if i:
            del st[:i]
        for cid in list(self.chats):
            spans = [sp for sp in self.chats[cid] if sp[1] is None or sp[1] > before]
            if spans:
                self.chats[cid] = spans
            else:
                del self.chats[cid]

    def history(self) -> list[tuple[int, str | None, int]]:
        """(ts, status, active chats) at every change, in event time (what `AgentTimeline` reads)."""
        change: dict[int, int] = defaultdict(int)
        held = 0  # spans from before every kept change
        for spans in self.chats.values():
            for start, end in spans:
                if start is None:
                    held += 1
                else:
                    change[start] += 1
                if end is not None:
                    change[end] -= 1
        for ts, _id, _status in self.statuses:
            change[ts] += 0
        out: list[tuple[int, str | None, int]] = []
        statuses, i, status = self.statuses, 0, None
        for ts in sorted(change):
            held += change[ts]
            while i < len(statuses) and statuses[i][0] <= ts:
                status = statuses[i][2]
                i += 1
            if not out or out[-1][1:] != (status, held):
                out.append((ts, status, held))
        return out

    def contribution(self) -> dict[Scope, AgentLive]:
        status = self.status
        if status is None:
            return {}
        if status == "offline":
            return {Scope(self.tenant, self.shop_id, self.platform, q): AgentLive(known=1) for q in self.queues}
        serving = status in ("online", "busy")
        active = len(self.active)
        one = AgentLive(
            online=1,
            available=1 if status == "online" and active < self.capacity else 0,
            away=1 if status == "away" else 0,
            serving=1 if serving else 0,
            slots_capacity=self.capacity if serving else 0,
            slots_active=active if serving else 0,
            known=1,
        )
        return {Scope(self.tenant, self.shop_id, self.platform, q): one for q in self.queues}

    def to_json(self) -> dict[str, Any]:
        return {
            "t": [self.tenant, self.shop_id, self.platform],
            "c": self.capacity,
            "q": list(self.queues),
            "st": [list(e) for e in self.statuses],
            "ch": self.chats,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AgentState:
        tenant, shop, platform = raw["t"]
        agent = cls(tenant=tenant, shop_id=shop, platform=platform, capacity=int(raw["c"]), queues=tuple(raw["q"]))
        agent.statuses = [(int(ts), str(i), str(st)) for ts, i, st in raw["st"]]
        agent.chats = {str(c): [[s, e] for s, e in spans] for c, spans in raw["ch"].items()}
        return agent

    def summary(self) -> dict[str, Any]:
        """What stage 2 needs for the agent's own view (published whole on every change)."""
        return {
            "status": self.status, "capacity": self.capacity, "queues": list(self.queues),
            "active_chats": len(self.active), "history": [list(e) for e in self.history()],
        }


STATUSES = AGENT_STATUS_ORDER


class AgentTimeline:
    """An agent's status history (sorted by ts) prepared for window queries.

    Prefix sums of milliseconds per status and suffix maxima of active chats answer any window
    ending at or after the last change in O(log n), so views of thousands of agents cost little
    every tick. Milliseconds are summed as integers, so the seconds are exact.
    """

    __slots__ = ("active", "cum", "status", "suffix_max", "ts")

    def __init__(self, history: list[Any]) -> None:
        self.ts: list[int] = [int(e[0]) for e in history]
        self.status: list[str | None] = [e[1] for e in history]
        self.active: list[int] = [int(e[2]) for e in history]
        # cum[s][i]: ms in status s over the closed entries before i (entry m lasts ts[m+1] - ts[m]).
        self.cum: dict[str, list[int]] = {s: [0] for s in STATUSES}
        for i in range(len(self.ts) - 1):
            d = self.ts[i + 1] - self.ts[i]
            for s, sums in self.cum.items():
                sums.append(sums[-1] + (d if self.status[i] == s else 0))
        self.suffix_max = list(self.active)
        for i in range(len(self.active) - 2, -1, -1):
            self.suffix_max[i] = max(self.active[i], self.suffix_max[i + 1])

    def window(self, now: int, width: int) -> AgentWindowFigures:
        """Seconds in each status and the most concurrent chats over (now - width, now]."""
        lo, ts, n = now - width, self.ts, len(self.ts)
        ms = dict.fromkeys(STATUSES, 0)
        # Entries that overlap: from the one in force at lo (or the last) to the last not after now.
        first = min(max(bisect_right(ts, lo) - 1, 0), n - 1)
        end = bisect_right(ts, now)
        if n == 0 or first >= end:
            return {"status_seconds": {s: 0.0 for s in STATUSES}, "max_concurrent": None}
        last = end - 1
        for i in (first, last) if first < last else (first,):
            stop = ts[i + 1] if i + 1 < n and i < last else now
            overlap = min(stop, now) - max(ts[i], lo)
            st = self.status[i]
            if st in ms and overlap > 0:
                ms[st] += overlap
        if last - first > 1:  # the whole entries in between
            for s, sums in self.cum.items():
                ms[s] += sums[last] - sums[first + 1]
        most = self.suffix_max[first] if end == n else max(self.active[first:end])
        return {"status_seconds": {s: v / 1000 for s, v in ms.items()}, "max_concurrent": most}


class PartitionAgents:
    """The agent partials of one partition of the agent stage."""

    def __init__(self) -> None:
        self.live: dict[Scope, AgentLive] = {}
        self.dirty: set[Scope] = set()

    def replace(self, old: dict[Scope, AgentLive], new: dict[Scope, AgentLive]) -> None:
        if old == new:
            return
        for contribution, sign in ((old, -1), (new, 1)):
            for scope, one in contribution.items():
                self.live[scope] = self.live.get(scope, AgentLive()).add(one, sign)
                self.dirty.add(scope)

    def mark_all_dirty(self) -> None:
        self.dirty.update(self.live)

    def drain(self) -> list[tuple[Scope, list[int] | None]]:
        out: list[tuple[Scope, list[int] | None]] = []
        for scope in self.dirty:
            live = self.live.get(scope)
            out.append((scope, None if live is None or not any(live) else list(live)))
        self.dirty.clear()
        return out
