"""Stage 2: merge the partitions' partials into queue views (DESIGN.md, two-stage aggregation).

Partials arrive as full values keyed by (source, partition, scope, slot), so a re-sent
partial replaces what was there and nothing is counted twice. The window sums are the window
store's (`windows.WindowStore`: per scope, a running total per window, moved as time advances);
this module rolls scopes up into views, merges live counters, and builds the views. Figures are
recomputed only for the views whose totals or live counters changed.

Every window states the span it covers (`span_s`: now - its edge, between W and W + one slot,
see windows.py) and its per-minute rate divides by it, never by W; an agent's time per status is
taken over the same (edge, now].
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from typing import Any, Final, cast
from zlib import crc32

from .agents import AgentLive, AgentTimeline
from .buckets import Bucket, window_figures, with_span
from .config import sl_thresholds_for
from .figures import AgentFigures, LiveFigures, QueueView, WindowFigures
from .platform_rules import rule_for
from .scope import ALL, Scope, is_agent_scope
from .waits import LiveSums
from .windows import SrcKey, Twin, Widened, WindowStore


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=65_536)  # asked for every changed scope on every step: made once per scope
def view_keys(scope: Scope) -> tuple[Scope, ...]:
    """The views a scope rolls up into, '*' meaning all."""
    if is_agent_scope(scope.queue):  # an agent works in one shop: no roll-ups
        return (scope,)
    tenant, platform, queue = scope.tenant, scope.platform, scope.queue
    return (
        Scope(tenant=ALL, shop_id=ALL, platform=ALL, queue=queue),
        Scope(tenant=tenant, shop_id=ALL, platform=ALL, queue=queue),
        Scope(tenant=ALL, shop_id=ALL, platform=platform, queue=queue),
        Scope(tenant=tenant, shop_id=ALL, platform=platform, queue=queue),
        scope,
    )


NO_LIVE: Final = LiveSums()  # read only


def live_figures(live: LiveSums | None, agents: AgentLive | None, now: int) -> LiveFigures:
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
    if waits := live.waiting:
        out["oldest_wait_s"] = waits.oldest_ms(now) / 1000
        out["wait_p50_s"] = waits.wait_ms(0.5, now) / 1000
        out["wait_p90_s"] = waits.wait_ms(0.9, now) / 1000
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


class QueueMerger:
    """Stage 2's state. `views(now)` returns every view; `rebuilt` names those built at that `now`.

    With `agent_refresh_ticks` = k > 1, an agent's own view is rebuilt every k-th call (agents take
    turns), whatever changed in between: thousands of agents, each changing with every chat, would
    otherwise cost more than all queues together. Each view is exact as of its own `as_of`.

    `views(now, changed_queues_only=True)` is stage 2's fast step between ticks: it builds only the
    queue views whose inputs changed (a new figure shows within the fast step, not the next tick) and
    keeps every other view as last built; agents' changes wait for a full call.
    """

    def __init__(self, bucket_ms: int, agent_refresh_ticks: int = 1) -> None:
        self.agent_refresh_ticks = max(1, agent_refresh_ticks)
        self.ticks = 0
        self.built: dict[Scope, QueueView] = {}
        self.rebuilt: set[Scope] = set()
        # Agent views whose window figures / live counters changed but whose turn has not come.
        self.agents_waiting: tuple[set[Scope], set[Scope]] = (set(), set())
        self.store = WindowStore(bucket_ms)
        self.lives: dict[Scope, dict[tuple[str, int], LiveSums]] = {}
        self.agents: dict[Scope, dict[tuple[str, int], AgentLive]] = {}
        self.watermarks: dict[tuple[str, int], int] = {}
        self.widen_clocks: dict[tuple[str, int, int], int] = {}  # (src, part, partials partition): `put_watermark`
        self.agent_states: dict[Scope, dict[str, Any]] = {}
        self.timelines: dict[Scope, AgentTimeline] = {}
        self.live_changed: set[Scope] = set()  # live or agent counters changed since the last views()
        self.present: set[Scope] = set()
        self.members: dict[Scope, set[Scope]] = {}
        self.figures: dict[Scope, dict[str, WindowFigures]] = {}
        self.group_live: dict[Scope, tuple[LiveSums | None, AgentLive | None]] = {}
        # Per scope: the platform rule's deadlines (start + limit) of the counted waits open now, sorted,
        # with running totals of buyers; None = none. Derived from `lives`, dropped when they change.
        self.rule_deadlines: dict[Scope, tuple[array[int], array[int]] | None] = {}
        # Per scope with live counters: the sum of its partitions' (`LiveSums.view_sum`), dropped when one changes;
        # views of one scope share it.
        self.scope_live: dict[Scope, LiveSums] = {}

    # --- input -----------------------------------------------------------------------------
    def put_bucket(self, src: str, part: int, scope: Scope, start: int, new: Bucket | None,
                   width: int | None = None) -> None:
        self.store.put(src, part, scope, start, new, width)

    def put_live(self, src: str, part: int, scope: Scope, live: LiveSums | None) -> None:
        _put(self.lives, scope, (src, part), live)
        self.live_changed.add(scope)
        self.rule_deadlines.pop(scope, None)
        self.scope_live.pop(scope, None)

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

    def put_watermark(self, src: str, part: int, ts: int, partition: int | None = None) -> None:
        """A source's watermark; `partition`: the partials partition it came on (None: from a rebuild), after the
        partials sent with it there: that partition's buckets of the source widen by it (`widen`)."""
        self.watermarks[(src, part)] = max(ts, self.watermarks.get((src, part), 0))
        if partition is not None:
            key = (src, part, partition)
            self.widen_clocks[key] = max(ts, self.widen_clocks.get(key, 0))

    @property
    def watermark(self) -> int:
        return max(self.watermarks.values(), default=0)

    def prune(self, before: int) -> None:
        """Drop the buckets that left every window (`WindowStore.prune`: whole minutes at a time)."""
        self.store.prune(before)

    def restart_clock(self, src: str, part: int, partition: int) -> None:
        """A source begins to re-send all it holds on `partition` after a rebuild, whose clock may be behind the one
        its buckets widened by before (a crash lost its last watermark): they widen by the watermarks it sends from
        now on only. (Were they widened ahead of the new stage 1, a narrower change of it would replace a wide
        bucket holding parts it does not send again.)"""
        self.widen_clocks.pop((src, part, partition), None)

    def restart_widths(self, sources: set[tuple[str, int]], partition: int,
                       partition_of: Callable[[Scope], int]) -> None:
        """Their re-send ended: their buckets on `partition` widen from fresh boundaries (`restart_clock`)."""
        self.store.forget_widths(lambda key: (key[0], key[1]) in sources and partition_of(key[2]) == partition)

    def widen(self, now: int, partition_of: Callable[[Scope], int],
              paused: Container[tuple[str, int, int]] = (), twin: Twin | None = None) -> list[Widened]:
        """Widen each source's buckets with age by its watermark as received on their partition (never ahead of
        `now`): stage 1 widened them by that watermark or a later one, earlier (`services.core.bucket_widths`).
        Not by the newest watermark from any partition: another partition's partials may lag behind it. Not the
        buckets of a source (src, part) on a partition in `paused`: it is re-sending them all (QueueStage). `twin`:
        `WindowStore.widen`'s."""
        def clock_of(key: SrcKey) -> int | None:
            src_on = (key[0], key[1], partition_of(key[2]))
            wm = self.widen_clocks.get(src_on)
            return None if wm is None or src_on in paused else min(now, wm)

        return self.store.widen(clock_of, twin)

    # --- output ----------------------------------------------------------------------------
    def scopes(self) -> set[Scope]:
        out = {s for s, parts in self.lives.items() if parts} | {s for s, parts in self.agents.items() if parts}
        out.update(self.agent_states)
        out.update(self.store.scopes())
        return out

    def _regroup(self) -> set[Scope]:
        """Keep `members` (view key -> its scopes) in step with the scopes present; the keys that changed."""
        present = self.scopes()
        if present == self.present:
            return set()
        touched: set[Scope] = set()
        for scope in present - self.present:
            for key in view_keys(scope):
                self.members.setdefault(key, set()).add(scope)
                touched.add(key)
        for scope in self.present - present:
            self.store.forget(scope)
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

    def _waits(self, key: Scope) -> bool:
        """Whether an agent's own view keeps its last build this call (agents take turns)."""
        return (
            self.agent_refresh_ticks > 1 and is_agent_scope(key.queue) and key in self.built
            and (self.ticks + _turn(key)) % self.agent_refresh_ticks != 0
        )

    def views(self, now: int, *, changed_queues_only: bool = False) -> dict[Scope, QueueView]:
        """Every queue view at `now`: per queue, per tenant, platform, tenant+platform and shop.

        With `changed_queues_only`, only the queue views whose figures changed are built at `now` (named in
        `rebuilt`); the others are returned as last built, and what changed for agents waits for a full call."""
        self.store.advance(now)
        # The span each window covers now: the same for every view, and it moves with every tick.
        spans = {n: now - edge for n, edge in self.store.edges.items()}
        touched = self._regroup()
        windows_due = touched | self.agents_waiting[0] | \
            {k for s in self.store.take_changed() if s in self.present for k in view_keys(s)}
        live_due = touched | self.agents_waiting[1] | \
            {k for s in self.live_changed if s in self.present for k in view_keys(s)}
        self.live_changed.clear()
        if changed_queues_only:
            # Agents' changes wait for the next full call, which builds them on their turn.
            deferred = ({k for k in windows_due if is_agent_scope(k.queue)},
                        {k for k in live_due if is_agent_scope(k.queue)})
            self.agents_waiting = (self.agents_waiting[0] | deferred[0], self.agents_waiting[1] | deferred[1])
        else:
            self.ticks += 1
            # An agent's own view is built on its turn only (its as_of says when): what changed meanwhile waits.
            deferred = ({k for k in windows_due if self._waits(k)}, {k for k in live_due if self._waits(k)})
            self.agents_waiting = deferred
        windows_due -= deferred[0]
        live_due -= deferred[1]
        totals: dict[Scope, dict[str, Bucket]] = {}
        for key in windows_due & self.members.keys():
            group: dict[str, Bucket] | None = None
            members = self.members[key]
            for scope in members:
                one = totals.get(scope)
                if one is None:
                    one = totals[scope] = self.store.totals(scope)
                if group is None:  # one member (an agent, a shop's queue): its totals, only read
                    group = one if len(members) == 1 else {n: b.copy() for n, b in one.items()}
                else:
                    for n, b in one.items():
                        group[n].merge(b)
            assert group is not None
            sl = sl_thresholds_for(key.queue)
            self.figures[key] = {n: window_figures(b, spans[n], sl) for n, b in group.items()}
        for key in live_due & self.members.keys():
            lives: list[LiveSums] = []
            merged_agents: AgentLive | None = None
            for scope in self.members[key]:
                if (summed := self._scope_live(scope)) is not None:
                    lives.append(summed)
                for a in self.agents.get(scope, {}).values():
                    merged_agents = a if merged_agents is None else merged_agents.add(a)
            self.group_live[key] = (LiveSums.view_sum(lives) if lives else None, merged_agents)
        past_limit = self._waits_past_limit(now)
        as_of = iso(now)
        out: dict[Scope, QueueView] = {}
        self.rebuilt = set()
        due = windows_due | live_due
        for key, figures in self.figures.items():
            agent = is_agent_scope(key.queue)
            if changed_queues_only:  # agents are never due here: their changes wait for a full call
                if key not in due and key in self.built:
                    out[key] = self.built[key]
                    continue
                if agent:
                    continue  # new since the last full call: it shows from the next one
            elif agent and self._waits(key):
                out[key] = self.built[key]  # exact as of its own as_of; rebuilt on its turn
                continue
            live, agents = self.group_live.get(key, (None, None))
            view: QueueView = {
                "queue": key.queue,
                "scope": {"tenant": key.tenant, "shop_id": key.shop_id, "platform": key.platform},
                "as_of": as_of,
                "live": live_figures(live, agents, now),
                # Figures computed at an earlier tick keep their sums; their span and rates are now's.
                "windows": {n: with_span(f, spans[n]) for n, f in (
                    figures if key not in past_limit else with_waits_past_limit(figures, past_limit[key])
                ).items()},
            }
            if agent:
                state = self.agent_states.get(key, {})  # an agent's view key is its scope (`view_keys`)
                timeline = self.timelines.get(key)
                if timeline is None:
                    timeline = self.timelines[key] = AgentTimeline(state.get("history", []))
                view["agent"] = cast(AgentFigures, {k: v for k, v in state.items() if k != "history"})
                # Time per status over the very interval the window's buckets cover, (lo, now].
                view["windows"] = {n: {**w, **timeline.window(now, spans[n])} for n, w in view["windows"].items()}
            out[key] = view
            self.rebuilt.add(key)
        self.built = out
        return out

    def _scope_live(self, scope: Scope) -> LiveSums | None:
        summed = self.scope_live.get(scope)
        if summed is None and (parts := self.lives.get(scope)):
            summed = self.scope_live[scope] = LiveSums.view_sum(list(parts.values()))
        return summed

    def _waits_past_limit(self, now: int) -> dict[Scope, dict[str, int]]:
        """Per view, per window: the buyers still waiting whose platform rule's limit passed in the window.

        Their miss is a fact from the moment the limit passed, but no event tells of it until the reply
        or close comes (then stage 1 records it at that same moment, and it leaves the live state)."""
        lows = self.store.edges
        if not lows:
            return {}
        out: dict[Scope, dict[str, int]] = {}
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


def rule_deadlines(scope: Scope, lives: Iterable[LiveSums]) -> tuple[array[int], array[int]] | None:
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
    return array("q", deadlines), array("q", accumulate(per_deadline[d] for d in deadlines))


def passed_in_windows(deadlines: Sequence[int], totals: Sequence[int], now: int,
                      lows: dict[str, int]) -> dict[str, int]:
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


@lru_cache(maxsize=65_536)  # asked for every agent view on every tick: a crc32 once per agent
def _turn(key: Scope) -> int:
    """An agent view's turn: the same in every process (str hashes are salted per process, so two
    workers, or a worker after a restart, would rotate agents differently)."""
    return crc32("\x1f".join(key.queue_first()).encode())


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


def _put(table: dict[Scope, dict[tuple[str, int], Any]], scope: Scope, src: tuple[str, int], value: Any) -> None:
    parts = table.setdefault(scope, {})
    if value is None:
        parts.pop(src, None)
        if not parts:
            del table[scope]
    else:
        parts[src] = value
