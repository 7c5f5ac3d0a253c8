"""Agents: presence, capacity and active chats, and what each contributes to its queues.

An agent's status is last-writer-wins by event time (ts, event_id), so replays and
duplicates change nothing; active chats are a set of conversation ids, so assignment
changes are idempotent too.
"""

from __future__ import annotations

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

    def apply_status(
        self, ts: int, event_id: str, tenant: str, shop_id: str, platform: str,
        status: str, capacity: int, queues: tuple[str, ...],
    ) -> bool:
        if (ts, event_id) <= self.status_key:
            return False
        self.status_key = (ts, event_id)
        self.tenant, self.shop_id, self.platform = tenant, shop_id, platform
        self.status, self.capacity, self.queues = status, capacity, queues
        return True

    def set_active(self, conversation_id: str, active: bool) -> bool:
        if active == (conversation_id in self.active):
            return False
        if active:
            self.active.add(conversation_id)
        else:
            self.active.discard(conversation_id)
        return True

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
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AgentState:
        tenant, shop, platform = raw["t"]
        return cls(
            tenant=tenant, shop_id=shop, platform=platform, status=raw["s"],
            status_key=(int(raw["k"][0]), str(raw["k"][1])), capacity=int(raw["c"]),
            queues=tuple(raw["q"]), active=set(raw["a"]),
        )


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
