"""Stage 2: merge the partitions' partials into queue views (DESIGN.md, two-stage aggregation).

Partials arrive as full values keyed by (source, partition, scope, slot), so a re-sent
partial replaces what was there and nothing is counted twice. Buckets are merged over
partitions into one table of slots per window size: each window W sums slots of W/60 at most
(`window_slot_ms`: 1 s for 1m, 5 s for 5m, 15 s for 15m, 60 s for 1h with the default 1 s
source buckets), so every window is summed from about 61 slots. Each scope keeps a running
total per window: a replaced bucket changes it by the difference, and a tick adds the slots
that entered and subtracts those that left, so a tick costs what changed, not scopes x windows
x slots. Figures are recomputed only for the views whose totals or live counters changed.

A window W at time `now` is (now - W, now] with its lower edge rounded down to its slot grid
(METRICS.md allows that for slots of at most W/60): it holds the slots from the one holding
now - W to the one holding now, and covers the span now - lo, between W and W + one slot. Every
window states that span (`span_s`) and its per-minute rate divides by it, never by W; an
agent's time per status is taken over the same (lo, now].
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final, cast
from zlib import crc32

from .agents import AgentLive, AgentTimeline
from .buckets import Bucket, window_figures, with_span
from .config import WINDOWS, sl_thresholds_for
from .figures import AgentFigures, LiveFigures, QueueView, WindowFigures
from .partials import Live
from .platform_rules import rule_for
from .scope import ALL, Scope, ViewKey, is_agent_scope

GRID_MS: Final = 60_000  # every slot size divides a minute, so all grids line up

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


NO_LIVE: Final = Live()  # read only


def live_figures(live: Live | None, agents: AgentLive | None, now: int) -> LiveFigures:
    # Counts are numbers (0 when nothing is open in the view); only the wait figures are null when none wait.
    if live is None:
        live = NO_LIVE
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
    return cast(LiveFigures, out)


class _Windows:
    """One scope's running total per window over the slots of the merger's current ranges.

    Adding keeps a total's maxima exact; taking out the bucket that held one may lower it, which
    only a look at the slots can tell: such windows are `stale` until their maxima are rescanned.
    """

    __slots__ = ("stale", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, Bucket] = {name: Bucket() for name in WINDOWS}
        self.stale: set[str] = set()

    def take_out(self, name: str, bucket: Bucket) -> None:
        total = self.totals[name]
        if bucket.frt.max_ms >= total.frt.max_ms or bucket.reply.max_ms >= total.reply.max_ms:
            self.stale.add(name)
        total.merge(bucket, -1)


def window_range(now: int, width: int, size: int) -> tuple[int, int]:
    """(first, last) slot start of the slots of `size` that overlap (now - width, now]; the window
    covers (first, now], a span of now - first."""
    lo = now - width
    return lo - lo % size, now - now % size


def window_slot_ms(width: int, bucket_ms: int) -> int:
    """The slot size a window of `width` is summed from: the largest multiple of `bucket_ms` that
    divides a minute and is at most width/60 (METRICS.md: only then may its edge be rounded), else
    `bucket_ms` itself (a source bucket cannot be split; the window states its longer span)."""
    best = bucket_ms
    for k in range(1, GRID_MS // bucket_ms + 1):
        size = k * bucket_ms
        if size * 60 <= width and GRID_MS % size == 0:
            best = size
    return best


class QueueMerger:
    """Stage 2's state. `views(now)` returns every view; `rebuilt` names those built at that `now`.

    With `agent_refresh_ticks` = k > 1, an agent's own view is rebuilt every k-th call (agents take
    turns), whatever changed in between: thousands of agents, each changing with every chat, would
    otherwise cost more than all queues together. Each view is exact as of its own `as_of`.
    """

    def __init__(self, bucket_ms: int, agent_refresh_ticks: int = 1) -> None:
        self.bucket_ms = bucket_ms
        self.agent_refresh_ticks = max(1, agent_refresh_ticks)
        self.ticks = 0
        self.built: dict[ViewKey, QueueView] = {}
        self.rebuilt: set[ViewKey] = set()
        # Agent views whose window figures / live counters changed but whose turn has not come.
        self.agents_waiting: tuple[set[ViewKey], set[ViewKey]] = (set(), set())
        self.src_buckets: dict[SrcKey, dict[int, Bucket]] = {}
        self.sources_of: dict[Scope, set[tuple[str, int]]] = defaultdict(set)
        self.sizes = {n: window_slot_ms(w, bucket_ms) for n, w in WINDOWS.items()}
        # One table of merged slots per slot size, finest first; the source bucket size is always one
        # (maxima are recomputed from it, and it says which scopes have any data).
        self.tables: dict[int, dict[Scope, dict[int, Bucket]]] = {
            size: defaultdict(dict) for size in sorted({bucket_ms, *self.sizes.values()})
        }
        self.fine = self.tables[bucket_ms]
        self.lives: dict[Scope, dict[tuple[str, int], Live]] = {}
        self.agents: dict[Scope, dict[tuple[str, int], AgentLive]] = {}
        self.watermarks: dict[tuple[str, int], int] = {}
        self.agent_states: dict[Scope, dict[str, Any]] = {}
        self.timelines: dict[Scope, AgentTimeline] = {}
        # The ranges every running total is summed over (None until the first views()).
        self.ranges: dict[str, tuple[int, int]] | None = None
        self.windows: dict[Scope, _Windows] = {}
        self.changed: set[Scope] = set()  # window totals changed since the last views()
        self.live_changed: set[Scope] = set()  # live or agent counters changed since the last views()
        self.present: set[Scope] = set()
        self.members: dict[ViewKey, set[Scope]] = {}
        self.figures: dict[ViewKey, dict[str, WindowFigures]] = {}
        self.group_live: dict[ViewKey, tuple[Live | None, AgentLive | None]] = {}
        self.pruned_to = -1
        # Per scope: the platform rule's deadlines (start + limit) of the counted waits open now, sorted,
        # with running totals of buyers; None = none. Derived from `lives`, dropped when they change.
        self.rule_deadlines: dict[Scope, tuple[list[int], list[int]] | None] = {}

    # --- input -----------------------------------------------------------------------------
    def put_bucket(self, src: str, part: int, scope: Scope, start: int, new: Bucket | None) -> None:
        per_src = self.src_buckets.setdefault((src, part, scope), {})
        old = per_src.pop(start, None)
        if new is not None:
            per_src[start] = new
        self.sources_of[scope].add((src, part))
        if start + self.bucket_ms <= self.pruned_to:
            self.pruned_to = -1  # a bucket already out of every window: the next prune must look
        for size, tables in self.tables.items():
            table = tables[scope]
            slot = start - start % size
            merged = table.get(slot)
            if merged is None:
                merged = table[slot] = Bucket()
            if old is not None:
                merged.merge(old, -1)
            if new is not None:
                merged.merge(new, 1)
        self._fix_max(scope, start, old, new)
        if self.ranges is None:
            return
        running = self.windows.get(scope)
        if running is None:  # summed from the tables when next read
            self.changed.add(scope)
            return
        for name, (lo, hi) in self.ranges.items():
            size = self.sizes[name]
            slot = start - start % size
            if lo <= slot <= hi:
                if old is not None:
                    running.take_out(name, old)
                if new is not None:
                    running.totals[name].merge(new, 1)
                self.changed.add(scope)

    def _fix_max(self, scope: Scope, start: int, old: Bucket | None, new: Bucket | None) -> None:
        """Maxima do not subtract: after a replacement, recompute a merged max only if it may have gone down.
        A source-sized slot takes its maxima from the sources, a larger slot from the source-sized slots in it."""
        fine = self.fine[scope]
        lowered = [
            dist for dist in ("frt", "reply")
            if (0 if old is None else getattr(old, dist).max_ms) > (0 if new is None else getattr(new, dist).max_ms)
        ]  # otherwise merging `new` already raised the merged maxima as far as they go
        for size, tables in self.tables.items():
            table = tables[scope]
            slot = start - start % size
            merged = table[slot]
            if merged.is_empty():
                del table[slot]
                continue
            for dist in lowered:
                if size == self.bucket_ms:
                    top = max(
                        (getattr(b, dist).max_ms for src, part in self.sources_of[scope]
                         if (b := self.src_buckets.get((src, part, scope), {}).get(slot)) is not None),
                        default=0,
                    )
                else:
                    top = max(
                        (getattr(b, dist).max_ms for s in range(slot, slot + size, self.bucket_ms)
                         if (b := fine.get(s)) is not None),
                        default=0,
                    )
                merged.set_max(dist, top)

    def put_live(self, src: str, part: int, scope: Scope, live: Live | None) -> None:
        _put(self.lives, scope, (src, part), live)
        self.live_changed.add(scope)
        self.rule_deadlines.pop(scope, None)

    def put_agents(self, src: str, part: int, scope: Scope, agents: AgentLive | None) -> None:
        _put(self.agents, scope, (src, part), agents)
        self.live_changed.add(scope)

    def put_agent_state(self, scope: Scope, state: dict[str, Any] | None) -> None:
        """One agent's own state (only its partition of the agent stage sends it: no merge needed)."""
        if state is None:
            self.agent_states.pop(scope, None)
        else:
            self.agent_states[scope] = state
        self.timelines.pop(scope, None)  # prepared again when the view is next built
        self.live_changed.add(scope)

    def put_watermark(self, src: str, part: int, ts: int) -> None:
        self.watermarks[(src, part)] = max(ts, self.watermarks.get((src, part), 0))

    @property
    def watermark(self) -> int:
        return max(self.watermarks.values(), default=0)

    def prune(self, before: int) -> None:
        """Drop slots that ended before `before` rounded down to the minute. A prune walks every slot,
        so it runs once a minute of event time (as stage 1's), not once a 1 s bucket."""
        boundary = before - before % GRID_MS
        if boundary == self.pruned_to:  # nothing new can have ended since the last prune
            return
        self.pruned_to = boundary
        before = boundary
        for width, table in self.tables.items():
            for scope, per_scope in table.items():
                gone = [s for s in per_scope if s + width <= before]
                for slot in gone:
                    del per_scope[slot]
                if gone and self.ranges is not None and max(gone) >= min(lo for lo, _ in self.ranges.values()):
                    self.windows.pop(scope, None)  # a slot inside a window went: sum that scope again
                    self.changed.add(scope)
        for per_src in self.src_buckets.values():
            for slot in [s for s in per_src if s + self.bucket_ms <= before]:
                del per_src[slot]

    # --- running window totals ---------------------------------------------------------------
    def _table(self, scope: Scope, name: str) -> dict[int, Bucket]:
        return self.tables[self.sizes[name]].get(scope, {})

    def _sum(self, scope: Scope) -> _Windows:
        assert self.ranges is not None
        out = _Windows()
        for name, (lo, hi) in self.ranges.items():
            out.totals[name] = _sum_range(self._table(scope, name), lo, hi)
        return out

    def _advance(self, ranges: dict[str, tuple[int, int]]) -> None:
        """Move every running total to `ranges`: add the slots that entered, subtract those that left."""
        old = self.ranges
        self.ranges = ranges
        moved = {n: r for n, r in ranges.items() if old is None or old[n] != r}
        if not moved:
            return
        for scope in self.fine.keys() | self.windows.keys():
            running = self.windows.get(scope)
            if running is None or old is None:
                self.windows[scope] = self._sum(scope)
                self.changed.add(scope)
                continue
            for name, (lo, hi) in moved.items():
                size, (old_lo, old_hi) = self.sizes[name], old[name]
                table = self._table(scope, name)
                if lo < old_lo or hi < old_hi or lo > old_hi:  # backwards or no overlap: sum again
                    running.stale.discard(name)
                    running.totals[name] = _sum_range(table, lo, hi)
                    self.changed.add(scope)
                    continue
                for slot in range(old_lo, lo, size):  # left the window
                    if (leaving := table.get(slot)) is not None:
                        running.take_out(name, leaving)
                        self.changed.add(scope)
                for slot in range(old_hi + size, hi + size, size):  # entered it
                    if (entering := table.get(slot)) is not None:
                        running.totals[name].merge(entering)
                        self.changed.add(scope)

    def _totals(self, scope: Scope) -> dict[str, Bucket]:
        """The scope's window totals, with the maxima of stale windows rescanned from their slots."""
        assert self.ranges is not None
        running = self.windows.get(scope)
        if running is None:
            running = self.windows[scope] = self._sum(scope)
        for name in running.stale:
            (lo, hi), total, table, size = self.ranges[name], running.totals[name], self._table(scope, name), \
                self.sizes[name]
            frt_max = reply_max = 0
            for slot in range(lo, hi + size, size):
                bucket = table.get(slot)
                if bucket is not None:
                    frt_max = max(frt_max, bucket.frt.max_ms)
                    reply_max = max(reply_max, bucket.reply.max_ms)
            total.set_max("frt", frt_max)
            total.set_max("reply", reply_max)
        running.stale.clear()
        return running.totals

    # --- output ----------------------------------------------------------------------------
    def scopes(self) -> set[Scope]:
        out = {s for s, parts in self.lives.items() if parts} | {s for s, parts in self.agents.items() if parts}
        out.update(self.agent_states)
        out.update(s for s, b in self.fine.items() if b)
        return out

    def _regroup(self) -> set[ViewKey]:
        """Keep `members` (view key -> its scopes) in step with the scopes present; the keys that changed."""
        present = self.scopes()
        if present == self.present:
            return set()
        touched: set[ViewKey] = set()
        for scope in present - self.present:
            for key in view_keys(scope):
                self.members.setdefault(key, set()).add(scope)
                touched.add(key)
        for scope in self.present - present:
            self.windows.pop(scope, None)
            for key in view_keys(scope):
                members = self.members.get(key)
                if members is not None:
                    members.discard(scope)
                    if not members:
                        del self.members[key]
                        self.figures.pop(key, None)
                        self.group_live.pop(key, None)
                touched.add(key)
        self.present = present
        return touched

    def _waits(self, key: ViewKey) -> bool:
        """Whether an agent's own view keeps its last build this call (agents take turns)."""
        return (
            self.agent_refresh_ticks > 1 and is_agent_scope(key[0]) and key in self.built
            and (self.ticks + _turn(key)) % self.agent_refresh_ticks != 0
        )

    def views(self, now: int) -> dict[ViewKey, QueueView]:
        """Every queue view at `now`: per queue, per tenant, platform, tenant+platform and shop."""
        self._advance({n: window_range(now, w, self.sizes[n]) for n, w in WINDOWS.items()})
        assert self.ranges is not None
        # The span each window covers now: the same for every view, and it moves with every tick.
        spans = {n: now - lo for n, (lo, _hi) in self.ranges.items()}
        touched = self._regroup()
        windows_due = touched | self.agents_waiting[0] | \
            {k for s in self.changed if s in self.present for k in view_keys(s)}
        live_due = touched | self.agents_waiting[1] | \
            {k for s in self.live_changed if s in self.present for k in view_keys(s)}
        self.changed.clear()
        self.live_changed.clear()
        self.ticks += 1
        # An agent's own view is built on its turn only (its as_of says when): what changed meanwhile waits.
        self.agents_waiting = ({k for k in windows_due if self._waits(k)}, {k for k in live_due if self._waits(k)})
        windows_due -= self.agents_waiting[0]
        live_due -= self.agents_waiting[1]
        totals: dict[Scope, dict[str, Bucket]] = {}
        for key in windows_due & self.members.keys():
            group: dict[str, Bucket] | None = None
            members = self.members[key]
            for scope in members:
                one = totals.get(scope)
                if one is None:
                    one = totals[scope] = self._totals(scope)
                if group is None:  # one member (an agent, a shop's queue): its totals, only read
                    group = one if len(members) == 1 else {n: b.copy() for n, b in one.items()}
                else:
                    for n, b in one.items():
                        group[n].merge(b)
            assert group is not None
            sl = sl_thresholds_for(key[0])
            self.figures[key] = {n: window_figures(b, spans[n], sl) for n, b in group.items()}
        for key in live_due & self.members.keys():
            merged_live: Live | None = None
            merged_agents: AgentLive | None = None
            for scope in self.members[key]:
                for part_live in self.lives.get(scope, {}).values():
                    merged_live = merged_live or Live()
                    merged_live.merge(part_live)
                for a in self.agents.get(scope, {}).values():
                    merged_agents = a if merged_agents is None else merged_agents.add(a)
            self.group_live[key] = (merged_live, merged_agents)
        past_limit = self._waits_past_limit(now)
        as_of = iso(now)
        out: dict[ViewKey, QueueView] = {}
        self.rebuilt = set()
        for key, figures in self.figures.items():
            queue, tenant, shop, platform = key
            agent = is_agent_scope(queue)
            if agent and self._waits(key):
                out[key] = self.built[key]  # exact as of its own as_of; rebuilt on its turn
                continue
            live, agents = self.group_live.get(key, (None, None))
            view: QueueView = {
                "queue": queue,
                "scope": {"tenant": tenant, "shop_id": shop, "platform": platform},
                "as_of": as_of,
                "live": live_figures(live, agents, now),
                # Figures computed at an earlier tick keep their sums; their span and rates are now's.
                "windows": {n: with_span(f, spans[n]) for n, f in (
                    figures if key not in past_limit else with_waits_past_limit(figures, past_limit[key])
                ).items()},
            }
            if agent:
                scope = Scope(tenant, shop, platform, queue)
                state = self.agent_states.get(scope, {})
                timeline = self.timelines.get(scope)
                if timeline is None:
                    timeline = self.timelines[scope] = AgentTimeline(state.get("history", []))
                view["agent"] = cast(AgentFigures, {k: v for k, v in state.items() if k != "history"})
                # Time per status over the very interval the window's buckets cover, (lo, now].
                view["windows"] = {n: {**w, **timeline.window(now, spans[n])} for n, w in view["windows"].items()}
            out[key] = view
            self.rebuilt.add(key)
        self.built = out
        return out

    def _waits_past_limit(self, now: int) -> dict[ViewKey, dict[str, int]]:
        """Per view, per window: the buyers still waiting whose platform rule's limit passed in the window.

        Their miss is a fact from the moment the limit passed, but no event tells of it until the reply
        or close comes (then stage 1 records it at that same moment, and it leaves the live state)."""
        if self.ranges is None:
            return {}
        lows = {name: lo for name, (lo, _hi) in self.ranges.items()}
        out: dict[ViewKey, dict[str, int]] = {}
        for scope in self.lives:
            if scope in self.rule_deadlines:
                known = self.rule_deadlines[scope]
            else:
                known = self.rule_deadlines[scope] = rule_deadlines(scope, self.lives[scope].values())
            if known is None:
                continue
            counts = passed_in_windows(known[0], known[1], now, lows)
            if not counts:
                continue
            for key in view_keys(scope):
                per_window = out.get(key)
                if per_window is None:
                    per_window = out[key] = dict.fromkeys(lows, 0)
                for name, n in counts.items():
                    per_window[name] += n
        return out


def rule_deadlines(scope: Scope, lives: Iterable[Live]) -> tuple[list[int], list[int]] | None:
    """The deadlines (start + limit) of the waits open in `scope` that its platform's rule counts, sorted,
    and the running total of buyers up to each; None when there are none."""
    rule = rule_for(scope.platform)
    if rule is None or is_agent_scope(scope.queue):
        return None
    per_deadline: Counter[int] = Counter()
    for live in lives:
        for started, n in (live.first_waiting if rule.first_reply_only else live.waiting).items():
            if rule.counts(started):
                per_deadline[started + rule.limit_ms] += n
    if not per_deadline:
        return None
    deadlines = sorted(per_deadline)
    return deadlines, list(accumulate(per_deadline[d] for d in deadlines))


def passed_in_windows(deadlines: list[int], totals: list[int], now: int, lows: dict[str, int]) -> dict[str, int]:
    """Per window, the waits whose limit has passed by `now` (a miss from deadline + 1 ms: a reply at the
    deadline itself is within the limit) and whose miss falls in the window, (`lows`, now]: the deadline is
    at or after the window's edge. Empty when none has passed."""
    end = bisect_left(deadlines, now)
    if end == 0:
        return {}
    out: dict[str, int] = {}
    for name, lo in lows.items():
        first = bisect_left(deadlines, lo, 0, end)
        if first < end:
            out[name] = totals[end - 1] - (totals[first - 1] if first else 0)
    return out


def _turn(key: ViewKey) -> int:
    """An agent view's turn: the same in every process (str hashes are salted per process, so two
    workers, or a worker after a restart, would rotate agents differently)."""
    return crc32("\x1f".join(key).encode())


def with_waits_past_limit(figures: dict[str, WindowFigures], past: dict[str, int]) -> dict[str, WindowFigures]:
    """A view's window figures with the still-waiting misses added to the platform rule (copies: the
    window figures are cached between ticks and must not change)."""
    out: dict[str, WindowFigures] = {}
    for name, w in figures.items():
        n = past.get(name, 0)
        rule = w.get("platform_rule")
        if not n or rule is None:
            out[name] = w
            continue
        counted = rule["counted"] + n
        out[name] = {**w, "platform_rule": {**rule, "counted": counted, "met_rate": rule["met"] / counted}}
    return out


def _sum_range(table: dict[int, Bucket], lo: int, hi: int) -> Bucket:
    """The sum of the slots of `table` from `lo` to `hi` (slot starts, inclusive)."""
    total = Bucket()
    for start, bucket in table.items():
        if lo <= start <= hi:
            total.merge(bucket)
    return total


def _put(table: dict[Scope, dict[tuple[str, int], Any]], scope: Scope, src: tuple[str, int], value: Any) -> None:
    parts = table.setdefault(scope, {})
    if value is None:
        parts.pop(src, None)
        if not parts:
            del table[scope]
    else:
        parts[src] = value
