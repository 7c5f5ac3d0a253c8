"""Stage 2: merge the partitions' partials into queue views (DESIGN.md, two-stage aggregation).

Partials arrive as full values keyed by (source, partition, scope, slot), so a re-sent
partial replaces what was there and nothing is counted twice. Buckets are merged over
partitions into fine buckets (BUCKET_S, for the 1m and 5m windows) and minute buckets
(for 15m and 1h), so a tick sums at most a few hundred buckets per scope.

A window W at time `now` holds the buckets that overlap (now - W, now]: it covers between
W and W + one bucket of event time (5 s for 1m/5m, 60 s for 15m/1h).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from .agents import AgentLive, agent_window
from .buckets import Bucket, is_agent_scope, window_figures
from .config import WINDOWS
from .partials import Live, Scope

COARSE_MS: Final = 60_000
FINE_WINDOW_MAX_MS: Final = 300_000
ALL: Final = "*"

SrcKey = tuple[str, int, Scope]  # (source stage, partition, scope)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def view_keys(scope: Scope) -> Iterable[tuple[str, str, str, str]]:
    """The views a scope rolls up into: (queue, tenant, shop, platform), '*' meaning all."""
    t, s, p, q = scope
    if is_agent_scope(q):  # an agent works in one shop: no roll-ups
        yield (q, t, s, p)
        return
    yield (q, ALL, ALL, ALL)
    yield (q, t, ALL, ALL)
    yield (q, ALL, ALL, p)
    yield (q, t, ALL, p)
    yield (q, t, s, p)


def _nearest_rank(sorted_values: list[int], counts: list[int], total: int, q: float) -> int:
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))
    seen = 0
    for value, n in zip(sorted_values, counts, strict=True):
        seen += n
        if seen >= rank:
            return value
    return sorted_values[-1]


def live_figures(live: Live | None, agents: AgentLive | None, now: int) -> dict[str, Any]:
    # Counts are numbers (0 when nothing is open in the view); only the wait figures are null when none wait.
    if live is None:
        live = Live()
    out: dict[str, Any] = {
        "unanswered": live.unanswered,
        "unassigned": live.unassigned,
        "assigned": live.unanswered - live.unassigned,
        "awaiting_reply": live.awaiting_reply,
        "oldest_wait_s": None, "wait_p50_s": None, "wait_p90_s": None,
        "open": live.open,
    }
    if live.waiting:
        since = sorted(live.waiting, reverse=True)  # newest first = shortest wait first
        waits = [max(0, now - ts) for ts in since]
        counts = [live.waiting[ts] for ts in since]
        total = sum(counts)
        out["oldest_wait_s"] = waits[-1] / 1000
        out["wait_p50_s"] = _nearest_rank(waits, counts, total, 0.5) / 1000
        out["wait_p90_s"] = _nearest_rank(waits, counts, total, 0.9) / 1000
    a = agents
    out.update(
        agents_online=None if a is None else a.online,
        agents_available=None if a is None else a.available,
        agents_away=None if a is None else a.away,
        agents_serving=None if a is None else a.serving,
        slots_capacity=None if a is None else a.slots_capacity,
        slots_active=None if a is None else a.slots_active,
        slot_utilization=None if a is None or a.slots_capacity <= 0 else a.slots_active / a.slots_capacity,
        concurrency=None if a is None or a.serving <= 0 else a.slots_capacity / a.serving,
    )
    return out


class QueueMerger:
    def __init__(self, bucket_ms: int) -> None:
        self.bucket_ms = bucket_ms
        self.src_buckets: dict[SrcKey, dict[int, Bucket]] = {}
        self.sources_of: dict[Scope, set[tuple[str, int]]] = defaultdict(set)
        self.fine: dict[Scope, dict[int, Bucket]] = defaultdict(dict)
        self.coarse: dict[Scope, dict[int, Bucket]] = defaultdict(dict)
        self.lives: dict[SrcKey, Live] = {}
        self.agents: dict[SrcKey, AgentLive] = {}
        self.watermarks: dict[tuple[str, int], int] = {}
        self.agent_states: dict[Scope, dict[str, Any]] = {}

    # --- input -----------------------------------------------------------------------------
    def put_bucket(self, src: str, part: int, scope: Scope, start: int, new: Bucket | None) -> None:
        per_src = self.src_buckets.setdefault((src, part, scope), {})
        old = per_src.pop(start, None)
        if new is not None:
            per_src[start] = new
        self.sources_of[scope].add((src, part))
        minute = start - start % COARSE_MS
        for table, slot in ((self.fine[scope], start), (self.coarse[scope], minute)):
            merged = table.get(slot)
            if merged is None:
                merged = table[slot] = Bucket()
            if old is not None:
                merged.merge(old, -1)
            if new is not None:
                merged.merge(new, 1)
        self._fix_max(scope, start, minute)

    def _fix_max(self, scope: Scope, start: int, minute: int) -> None:
        # Maxima do not subtract: recompute them from the parts after every replacement.
        fine = self.fine[scope]
        merged = fine[start]
        if merged.is_empty():
            del fine[start]
        else:
            parts = [
                b for src, part in self.sources_of[scope]
                if (b := self.src_buckets.get((src, part, scope), {}).get(start)) is not None
            ]
            merged.frt.max_ms = max((b.frt.max_ms for b in parts), default=0)
            merged.reply.max_ms = max((b.reply.max_ms for b in parts), default=0)
        coarse = self.coarse[scope]
        merged_min = coarse[minute]
        if merged_min.is_empty():
            del coarse[minute]
        else:
            in_minute = [b for s in range(minute, minute + COARSE_MS, self.bucket_ms) if (b := fine.get(s))]
            merged_min.frt.max_ms = max((b.frt.max_ms for b in in_minute), default=0)
            merged_min.reply.max_ms = max((b.reply.max_ms for b in in_minute), default=0)

    def put_live(self, src: str, part: int, scope: Scope, live: Live | None) -> None:
        if live is None:
            self.lives.pop((src, part, scope), None)
        else:
            self.lives[(src, part, scope)] = live

    def put_agents(self, src: str, part: int, scope: Scope, agents: AgentLive | None) -> None:
        if agents is None:
            self.agents.pop((src, part, scope), None)
        else:
            self.agents[(src, part, scope)] = agents

    def put_agent_state(self, scope: Scope, state: dict[str, Any] | None) -> None:
        """One agent's own state (only its partition of the agent stage sends it: no merge needed)."""
        if state is None:
            self.agent_states.pop(scope, None)
        else:
            self.agent_states[scope] = state

    def put_watermark(self, src: str, part: int, ts: int) -> None:
        self.watermarks[(src, part)] = max(ts, self.watermarks.get((src, part), 0))

    @property
    def watermark(self) -> int:
        return max(self.watermarks.values(), default=0)

    def prune(self, before: int) -> None:
        for table, width in ((self.fine, self.bucket_ms), (self.coarse, COARSE_MS)):
            for per_scope in table.values():
                for slot in [s for s in per_scope if s + width <= before]:
                    del per_scope[slot]
        for per_src in self.src_buckets.values():
            for slot in [s for s in per_src if s + self.bucket_ms <= before]:
                del per_src[slot]

    # --- output ----------------------------------------------------------------------------
    def scopes(self) -> set[Scope]:
        out = {k[2] for k in self.lives} | {k[2] for k in self.agents} | set(self.agent_states)
        out.update(s for s, b in self.fine.items() if b)
        return out

    def window_totals(self, scope: Scope, now: int) -> dict[str, Bucket]:
        out: dict[str, Bucket] = {}
        for name, width in WINDOWS.items():
            table, size = (
                (self.fine.get(scope, {}), self.bucket_ms)
                if width <= FINE_WINDOW_MAX_MS else (self.coarse.get(scope, {}), COARSE_MS)
            )
            lo = now - width
            total = Bucket()
            for start, bucket in table.items():
                if start + size > lo and start <= now:
                    total.merge(bucket)
            out[name] = total
        return out

    def views(self, now: int) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        """Every queue view at `now`: per queue, per tenant, platform, tenant+platform and shop."""
        lives: dict[Scope, Live] = {}
        for (_src, _part, scope), live in self.lives.items():
            lives.setdefault(scope, Live()).merge(live)
        agents: dict[Scope, AgentLive] = {}
        for (_src, _part, scope), a in self.agents.items():
            agents[scope] = agents.get(scope, AgentLive()).add(a)

        group_live: dict[tuple[str, str, str, str], Live] = {}
        group_agents: dict[tuple[str, str, str, str], AgentLive] = {}
        group_windows: dict[tuple[str, str, str, str], dict[str, Bucket]] = {}
        for scope in self.scopes():
            totals = self.window_totals(scope, now)
            for key in view_keys(scope):
                if scope in lives:
                    group_live.setdefault(key, Live()).merge(lives[scope])
                if scope in agents:
                    group_agents[key] = group_agents.get(key, AgentLive()).add(agents[scope])
                windows = group_windows.get(key)
                if windows is None:
                    group_windows[key] = {n: b.copy() for n, b in totals.items()}
                else:
                    for n, b in totals.items():
                        windows[n].merge(b)
        as_of = iso(now)
        out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for key, windows in group_windows.items():
            queue, tenant, shop, platform = key
            view: dict[str, Any] = {
                "queue": queue,
                "scope": {"tenant": tenant, "shop_id": shop, "platform": platform},
                "as_of": as_of,
                "live": live_figures(group_live.get(key), group_agents.get(key), now),
                "windows": {n: window_figures(b, WINDOWS[n]) for n, b in windows.items()},
            }
            if is_agent_scope(queue):
                state = self.agent_states.get(Scope(tenant, shop, platform, queue), {})
                view["agent"] = {k: v for k, v in state.items() if k != "history"}
                for n, w in view["windows"].items():
                    w.update(agent_window(state, now, WINDOWS[n]))
            out[key] = view
        return out
