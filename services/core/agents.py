"""Agents: presence, capacity and active chats, and what each contributes to its queues.

An agent's status is last-writer-wins by event time (ts, event_id), so replays and
duplicates change nothing; active chats are a set of conversation ids, so assignment
changes are idempotent too.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .partials import Scope


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
    tenant: str = ""
    shop_id: str = ""
    platform: str = ""
    status: str | None = None
    status_key: tuple[int, str] = (-1, "")
    capacity: int = 1
    queues: tuple[str, ...] = ()
    active: set[str] = field(default_factory=set)
    # (ts, status, active chats) at every change, within the longest window plus the state before it:
    # time per status and the most concurrent chats in a window come from it.
    history: list[tuple[int, str | None, int]] = field(default_factory=list)

    def apply_status(
        self, ts: int, event_id: str, tenant: str, shop_id: str, platform: str,
        status: str, capacity: int, queues: tuple[str, ...],
    ) -> bool:
        if (ts, event_id) <= self.status_key:
            return False
        self.status_key = (ts, event_id)
        self.tenant, self.shop_id, self.platform = tenant, shop_id, platform
        self.status, self.capacity, self.queues = status, capacity, queues
        self._record(ts)
        return True

    def set_active(self, conversation_id: str, active: bool, ts: int | None = None) -> bool:
        if active == (conversation_id in self.active):
            return False
        if active:
            self.active.add(conversation_id)
        else:
            self.active.discard(conversation_id)
        if ts is not None:
            self._record(ts)
        return True

    def _record(self, ts: int) -> None:
        entry = (ts, self.status, len(self.active))
        h = self.history
        # Keep it in time order: a late change is inserted where it belongs (status is last-writer-wins).
        i = len(h)
        while i > 0 and h[i - 1][0] > ts:
            i -= 1
        h.insert(i, entry)

    def prune_history(self, before: int) -> None:
        """Forget changes before `before`, keeping the one in force at that moment."""
        h = self.history
        i = 0
        while i + 1 < len(h) and h[i + 1][0] <= before:
            i += 1
        if i:
            del h[:i]

    def contribution(self) -> dict[Scope, AgentLive]:
        status = self.status
        if status is None:
            return {}
        if status == "offline":
            return {Scope(self.tenant, self.shop_id, self.platform, q): AgentLive(known=1) for q in self.queues}
        serving = status in ("online", "busy")
        one = AgentLive(
            online=1,
            available=1 if status == "online" and len(self.active) < self.capacity else 0,
            away=1 if status == "away" else 0,
            serving=1 if serving else 0,
            slots_capacity=self.capacity if serving else 0,
            slots_active=len(self.active) if serving else 0,
            known=1,
        )
        return {Scope(self.tenant, self.shop_id, self.platform, q): one for q in self.queues}

    def to_json(self) -> dict[str, Any]:
        return {
            "t": [self.tenant, self.shop_id, self.platform],
            "s": self.status,
            "k": list(self.status_key),
            "c": self.capacity,
            "q": list(self.queues),
            "a": sorted(self.active),
            "h": [list(e) for e in self.history],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AgentState:
        tenant, shop, platform = raw["t"]
        return cls(
            tenant=tenant, shop_id=shop, platform=platform, status=raw["s"],
            status_key=(int(raw["k"][0]), str(raw["k"][1])), capacity=int(raw["c"]),
            queues=tuple(raw["q"]), active=set(raw["a"]),
            history=[(int(t), st, int(n)) for t, st, n in raw.get("h", [])],
        )

    def summary(self) -> dict[str, Any]:
        """What stage 2 needs for the agent's own view (published whole on every change)."""
        return {
            "status": self.status, "capacity": self.capacity, "queues": list(self.queues),
            "active_chats": len(self.active), "history": [list(e) for e in self.history],
        }


STATUSES = ("online", "busy", "away", "offline")


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

    def window(self, now: int, width: int) -> dict[str, Any]:
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


def agent_window(summary: dict[str, Any], now: int, width: int) -> dict[str, Any]:
    """Seconds in each status and the most concurrent chats over (now - width, now]."""
    return AgentTimeline(summary.get("history", [])).window(now, width)


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
