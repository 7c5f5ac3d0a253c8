"""Per-tenant limits on the names a sender can create: one token must not exhaust the floor.

Every queue, shop and agent name becomes views, Prometheus series and state in the scorer and in
every API replica. `NameBudget` admits an event only while the names it brings keep its tenant
within the limits (and the tenants within theirs); a name unused for `idle_s` no longer counts,
so a floor that renames its queues is not locked out for ever. Ingest refuses an event over a
limit with 422 and a reason; stage 1 of the scorer keeps the same budget per partition (a
defence behind ingest: it never refuses what ingest admitted, since a partition sees a subset).

Defaults are generous for real floors (20-80 skill queues, a few thousand agents) and are set with
LIMIT_TENANTS, LIMIT_QUEUES_PER_TENANT, LIMIT_SHOPS_PER_TENANT, LIMIT_AGENTS_PER_TENANT,
LIMIT_QUEUES_PER_AGENT and LIMIT_IDLE_S (.env.example).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from .config import env_int
from .events import MAX_QUEUES_PER_AGENT, ChatEvent

KINDS: Final = ("queue", "shop", "agent")


@dataclass(frozen=True)
class TenantLimits:
    tenants: int = field(default_factory=lambda: env_int("LIMIT_TENANTS", 1_000))
    queues: int = field(default_factory=lambda: env_int("LIMIT_QUEUES_PER_TENANT", 500))
    shops: int = field(default_factory=lambda: env_int("LIMIT_SHOPS_PER_TENANT", 500))
    agents: int = field(default_factory=lambda: env_int("LIMIT_AGENTS_PER_TENANT", 10_000))
    queues_per_agent: int = field(default_factory=lambda: env_int("LIMIT_QUEUES_PER_AGENT", 16))
    idle_s: int = field(default_factory=lambda: env_int("LIMIT_IDLE_S", 86_400))

    def __post_init__(self) -> None:
        for name in ("tenants", "queues", "shops", "agents", "queues_per_agent", "idle_s"):
            if getattr(self, name) < 1:
                raise SystemExit(f"limit {name} must be at least 1")
        if self.queues_per_agent > MAX_QUEUES_PER_AGENT:
            raise SystemExit(f"LIMIT_QUEUES_PER_AGENT is at most {MAX_QUEUES_PER_AGENT} (the event contract's bound)")

    def of(self, kind: str) -> int:
        return {"queue": self.queues, "shop": self.shops, "agent": self.agents}[kind]


@dataclass(frozen=True, slots=True)
class OverLimit:
    code: str  # metric label: limit_tenants, limit_queues, limit_shops, limit_agents, limit_queues_per_agent
    reason: str


def names_of(ev: ChatEvent) -> dict[str, set[str]]:
    """The names an event brings, by kind."""
    queues = {q for q in (ev.queue, ev.to_queue) if q}
    queues.update(ev.queues or ())
    agents = {a for a in (ev.agent_id, ev.to_agent_id) if a}
    return {"queue": queues, "shop": {ev.shop_id}, "agent": agents}


class NameBudget:
    """The names in use per tenant, each with its last use (event time or wall time, as the caller
    counts), least recently used first. Bounded: at most `tenants` x (queues + shops + agents)."""

    def __init__(self, limits: TenantLimits | None = None) -> None:
        self.limits = limits or TenantLimits()
        self.tenants: OrderedDict[str, int] = OrderedDict()
        self.names: dict[str, dict[str, OrderedDict[str, int]]] = {}

    def admit(self, ev: ChatEvent, now_ms: int) -> OverLimit | None:
        """Count the event's names in, or say which limit it would break (then nothing is counted)."""
        lim = self.limits
        if ev.queues is not None and len(ev.queues) > lim.queues_per_agent:
            return OverLimit("limit_queues_per_agent",
                             f"agent {ev.agent_id!r} lists {len(ev.queues)} queues; at most {lim.queues_per_agent} "
                             "(LIMIT_QUEUES_PER_AGENT)")
        self._forget_idle(now_ms)
        tenant = ev.tenant
        if tenant not in self.tenants and len(self.tenants) >= lim.tenants:
            return OverLimit("limit_tenants", f"tenant {tenant!r} would be tenant {lim.tenants + 1}; at most "
                             f"{lim.tenants} are active at once (LIMIT_TENANTS)")
        per_kind = self.names.get(tenant) or {kind: OrderedDict() for kind in KINDS}
        wanted = names_of(ev)
        for kind in KINDS:
            known = per_kind[kind]
            new = [n for n in wanted[kind] if n not in known]
            if new and len(known) + len(new) > lim.of(kind):
                env = {"queue": "LIMIT_QUEUES_PER_TENANT", "shop": "LIMIT_SHOPS_PER_TENANT",
                       "agent": "LIMIT_AGENTS_PER_TENANT"}[kind]
                return OverLimit(f"limit_{kind}s", f"tenant {tenant!r} already has {len(known)} {kind}s in use; "
                                 f"{new[0]!r} would pass the limit of {lim.of(kind)} ({env}; names unused for "
                                 f"{lim.idle_s} s no longer count)")
        self.names[tenant] = per_kind
        self._touch(self.tenants, tenant, now_ms)
        for kind in KINDS:
            for n in wanted[kind]:
                self._touch(per_kind[kind], n, now_ms)
        return None

    @staticmethod
    def _touch(used: OrderedDict[str, int], name: str, now_ms: int) -> None:
        used[name] = max(now_ms, used.get(name, now_ms))
        used.move_to_end(name)

    def _forget_idle(self, now_ms: int) -> None:
        cutoff = now_ms - self.limits.idle_s * 1000
        for per_kind in self.names.values():
            for used in per_kind.values():
                while used and next(iter(used.values())) < cutoff:
                    used.popitem(last=False)
        while self.tenants and next(iter(self.tenants.values())) < cutoff:
            tenant, _ = self.tenants.popitem(last=False)
            self.names.pop(tenant, None)

    def in_use(self, tenant: str, kind: str) -> int:
        return len(self.names.get(tenant, {}).get(kind, ()))
