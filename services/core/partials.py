"""Stage 1's per-partition partial aggregates (DESIGN.md, two-stage aggregation).

One `PartitionPartials` per input partition holds, per scope (tenant, shop, platform, queue),
the time buckets of facts and the live counters of the conversations it owns. Everything
is a sum, so stage 2 gets exact per-queue figures by adding the partitions' partials.
Each tick, only what changed is handed on, as full values (idempotent to re-send).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .bucket_widths import STAGE1_MARGIN_MS, Widths
from .buckets import LEFT, Bucket, Fact, SourceBucket, sl_counters_for
from .conversation import ConvState
from .platform_rules import PlatformRule, platform_rules
from .scope import Scope, is_agent_scope
from .wire import SLOT_LIVE


class LiveKey(NamedTuple):
    """What one open conversation contributes to its queue's live figures."""

    queue: str
    unanswered: bool
    assigned: bool
    waiting_since: int | None


def live_key(state: ConvState) -> LiveKey | None:
    if not state.opened or state.closed:
        return None
    return LiveKey(state.queue, state.unanswered, state.assignee is not None, state.waiting_since)


@dataclass(slots=True)
class Live:
    open: int = 0
    unanswered: int = 0
    unassigned: int = 0
    awaiting_reply: int = 0
    waiting: Counter[int] = field(default_factory=Counter)  # waiting_since ms -> conversations
    # The same for the conversations never answered yet: their first wait, which JD's rule counts (while a
    # conversation is unanswered its waiting_since is its frt_start: both are set together, and only a
    # human reply, which answers it, or the close clears waiting_since).
    first_waiting: Counter[int] = field(default_factory=Counter)

    def apply(self, key: LiveKey, sign: int) -> None:
        self.open += sign
        if key.unanswered:
            self.unanswered += sign
            if not key.assigned:
                self.unassigned += sign
        if key.waiting_since is not None:
            self.awaiting_reply += sign
            _count(self.waiting, key.waiting_since, sign)
            if key.unanswered:
                _count(self.first_waiting, key.waiting_since, sign)

    def is_empty(self) -> bool:
        return self.open == 0 and not self.waiting

    def to_json(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "unanswered": self.unanswered,
            "unassigned": self.unassigned,
            "awaiting_reply": self.awaiting_reply,
            # orjson writes the (ts, n) tuples as arrays: the same JSON as lists, without building them.
            "waiting": list(self.waiting.items()),
            **({"first_waiting": list(self.first_waiting.items())} if self.first_waiting else {}),
        }


def _count(counter: Counter[int], ts: int, sign: int) -> None:
    n = counter[ts] + sign
    if n:
        counter[ts] = n
    else:
        del counter[ts]


PRUNE_MS = 60_000  # buckets are dropped a whole minute at a time (see `prune`)


class PartitionPartials:
    """The partial aggregates of one input partition."""

    def __init__(self, bucket_ms: int, rules: Mapping[str, PlatformRule] | None = None) -> None:
        self.bucket_ms = bucket_ms
        self.rules = platform_rules() if rules is None else rules  # read once, not per event
        # Buckets widen with age (`bucket_widths`): a start's width is the one `widths` gives it now.
        self.widths = Widths(bucket_ms, STAGE1_MARGIN_MS)
        self.buckets: dict[Scope, dict[int, SourceBucket]] = {}
        self.live: dict[Scope, Live] = {}
        self.dirty: set[tuple[Scope, int]] = set()
        # Buckets handed on whole by `drain(hand_on=True)`: stage 2 in this process may hold the very object, so
        # the next change to one is made to a copy (copy on write).
        self.handed: set[tuple[Scope, int]] = set()
        self.watermark = 0
        self.pruned_to = -1

    def apply_facts(self, tenant: str, shop_id: str, platform: str, delta: list[tuple[Fact, int]]) -> None:
        rule = self.rules.get(platform)
        for fact, sign in delta:
            scope = Scope(tenant, shop_id, platform, fact.queue)
            self._bucket(scope, fact.ts).apply(fact, sign, sl_counters_for(fact.queue) if fact.kind == LEFT else None)
            if rule is not None and (outcome := rule.outcome(fact.kind, fact.ts, fact.value)) is not None:
                # A miss lands where the limit passed, earlier than the reply or close that tells of it.
                at, met = outcome
                self._bucket(scope, at).count_rule(met, sign)

    def _bucket(self, scope: Scope, ts: int) -> SourceBucket:
        """The bucket of `ts` in `scope` (created), marked dirty for the next drain."""
        # A bucket keyed `start` holds (start, start + width]: windows are (now - W, now], so a window of
        # buckets from a grid point `first` holds exactly (first, now] (an event at `first` is outside).
        start, width = self.widths.start_of(ts - 1)
        if start + width <= self.pruned_to:
            self.pruned_to = -1  # a bucket already out of every window: the next prune must look
        per_scope = self.buckets.get(scope)
        if per_scope is None:
            per_scope = self.buckets[scope] = {}
        key = (scope, start)
        bucket = per_scope.get(start)
        if bucket is None:
            bucket = per_scope[start] = SourceBucket()
        elif key in self.handed:
            self.handed.discard(key)
            bucket = per_scope[start] = bucket.copy()
        self.dirty.add(key)
        return bucket

    def apply_live(self, tenant: str, shop_id: str, platform: str, old: LiveKey | None, new: LiveKey | None) -> None:
        if old == new:
            return
        for key, sign in ((old, -1), (new, 1)):
            if key is None:
                continue
            scope = Scope(tenant, shop_id, platform, key.queue)
            live = self.live.get(scope)
            if live is None:
                live = self.live[scope] = Live()
            live.apply(key, sign)
            self.dirty.add((scope, SLOT_LIVE))

    def widen(self, clock: int) -> None:
        """Merge the buckets that aged past a width boundary at `clock` (the partition's watermark, never
        ahead of the wall clock) into wider ones. Stage 2 widens its copies itself, a margin later, so nothing
        is sent for it; a bucket still to be sent is sent at its new width (stage 2 replaces the narrower ones
        it covers). Boundaries move a minute at a time, and only the buckets of the time they moved over are walked
        (every other bucket already has its width)."""
        was_before = self.widths.widened_before
        if (moved := self.widths.advance(clock)) is None:
            return
        lo, hi = moved
        start_of, dirty, handed = self.widths.start_of, self.dirty, self.handed
        # Aged buckets are read on and hardly ever changed again: held frozen (`Bucket.freeze`), those merged into
        # and those that aged just now (one changed later is frozen again when drained).
        for scope, per_scope in self.buckets.items():
            merged_into: set[int] = set()
            for start in [s for s in per_scope if lo <= s < hi]:
                target, _width = start_of(start)
                if target == start:
                    if start >= was_before:
                        per_scope[start].freeze()
                    continue
                bucket = per_scope.pop(start)
                handed.discard((scope, start))
                into = per_scope.get(target)
                if into is None:
                    into = per_scope[target] = SourceBucket()
                elif (scope, target) in handed:
                    handed.discard((scope, target))
                    into = per_scope[target] = into.copy()
                into.merge(bucket)
                merged_into.add(target)
                if (scope, start) in dirty:
                    dirty.discard((scope, start))
                    dirty.add((scope, target))
            for target in merged_into:
                per_scope[target].freeze()

    def width_of(self, slot: int) -> int | None:
        """The width of the bucket at `slot` as sent now (None: the live slot and the others that are no bucket)."""
        return None if slot < 0 else self.widths.width_at(slot)

    def prune(self, before: int) -> None:
        """Drop buckets that ended before `before` rounded down to the minute (out of every window);
        stage 2 gets tombstones. A prune walks every bucket, so it runs once a minute of event time,
        not once a bucket."""
        boundary = before - before % PRUNE_MS
        if boundary == self.pruned_to:  # nothing new can have ended since the last prune
            return
        self.pruned_to = boundary
        width_at = self.widths.width_at
        for scope, per_scope in self.buckets.items():
            for start in [s for s in per_scope if s < boundary and s + width_at(s) <= boundary]:
                del per_scope[start]
                self.handed.discard((scope, start))
                self.dirty.add((scope, start))

    def mark_all_dirty(self) -> None:
        """After a rebuild, hand everything on again (stage 2 replaces what it had)."""
        for scope, per_scope in self.buckets.items():
            self.dirty.update((scope, start) for start in per_scope)
        self.dirty.update((scope, SLOT_LIVE) for scope in self.live)

    def drain(self, queues_only: bool = False, hand_on: bool = False) -> list[Drained]:
        """The changed partials since the last drain: (scope, bucket start or SLOT_LIVE, value or None, and
        with `hand_on` the bucket itself, which this stage then never changes again: see `handed`).

        `queues_only` (between ticks): agents' own scopes stay for the next drain, since their views are
        built on the tick only."""
        out: list[Drained] = []
        held: set[tuple[Scope, int]] = set()
        aged = self.widths.widened_before
        for key in self.dirty:
            scope, start = key
            if queues_only and is_agent_scope(scope.queue):
                held.add(key)
                continue
            if start == SLOT_LIVE:
                live = self.live.get(scope)
                out.append(Drained(scope, start, None if live is None or live.is_empty() else live.to_json()))
                continue
            bucket = self.buckets.get(scope, {}).get(start)
            if bucket is None or bucket.is_empty():
                out.append(Drained(scope, start, None))
                continue
            if start < aged:
                bucket.freeze()  # an aged bucket a late fact changed (`widen`)
            if hand_on:
                self.handed.add(key)
                out.append(Drained(scope, start, bucket.to_json(), bucket))
            else:
                out.append(Drained(scope, start, bucket.to_json()))
        self.dirty = held
        return out


class Drained(NamedTuple):
    """One changed partial of `PartitionPartials.drain`."""

    scope: Scope
    slot: int  # a bucket's start, or SLOT_LIVE
    value: dict[str, Any] | None  # its JSON (None: it holds nothing any more)
    bucket: Bucket | None = None  # the bucket itself, when handed on
