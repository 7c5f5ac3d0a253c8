"""Stage 2's window store: per scope, the sum of the source buckets in each rolling window, kept running.

Five verbs: `put` a source's bucket (a full value: it replaces what that source sent for its time before),
`advance` every window to a new `now`, read a scope's `totals`, `prune` what has left every window, `widen`
the sources' old buckets as stage 1 did (`bucket_widths`). Roll-ups, live counters and views are the
merger's (`merge.QueueMerger`); this module only adds.

Buckets are merged over sources into one table of slots per window size: each window W sums slots of
W/60 at most (`window_slot_ms`: 1 s for 1m, 5 s for 5m, 15 s for 15m, 60 s for 1h with the default 1 s
source buckets), so every window is summed from about 61 slots. Each scope keeps a running total per
window: a replaced bucket changes it by the difference, and an advance adds the slots that entered and
subtracts those that left, so an advance costs what changed, not scopes x windows x slots.

A window W at time `now` is (now - W, now] with its lower edge rounded down to its slot grid
(METRICS.md allows that for slots of at most W/60): it holds the slots from the one holding now - W to
the one holding now, and covers the span now - edge, between W and W + one slot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from .bucket_widths import GRID_MS, NEVER, STAGE2_MARGIN_MS, Widths, all_widths, window_slot_ms
from .buckets import Bucket
from .config import WINDOWS
from .scope import Scope

__all__ = ["GRID_MS", "Twin", "Widened", "WindowStore", "window_range", "window_slot_ms"]

Source = tuple[str, int]  # (source stage, partition)
SrcKey = tuple[str, int, Scope]  # (source stage, partition, scope)
Range = tuple[int, int]  # (first, last) slot start of a window, inclusive
Held = tuple[int, Bucket]  # a source's bucket and its width
# (source key, start, width, the bucket widened here) -> the source's own bucket of that time and width when it gives
# the same figures (stage 1 in this process: `ConversationStage.twin`), else None.
Twin = Callable[[SrcKey, int, int, Bucket], "Bucket | None"]


class Widened(NamedTuple):
    """A source's buckets (start, width) merged into one bucket of `width` from `start`."""

    src_key: SrcKey
    merged: list[tuple[int, int]]
    start: int
    width: int
    bucket: Bucket


def window_range(now: int, width: int, size: int) -> Range:
    """(first, last) slot start of the slots of `size` that overlap (now - width, now]; the window
    covers (first, now], a span of now - first."""
    lo = now - width
    return lo - lo % size, now - now % size


class _Running:
    """One scope's running total per window over the slots of the store's current ranges.

    Adding keeps a total's maxima exact; taking out the bucket that held one may lower it, which
    only a look at the slots can tell: such windows are `stale` until their maxima are rescanned.
    """

    __slots__ = ("stale", "totals")

    def __init__(self, names: Iterable[str]) -> None:
        self.totals: dict[str, Bucket] = {name: Bucket() for name in names}
        self.stale: set[str] = set()

    def take_out(self, name: str, bucket: Bucket) -> None:
        total = self.totals[name]
        frt_max, reply_max = bucket.maxima()
        if frt_max >= total.frt.max_ms or reply_max >= total.reply.max_ms:
            self.stale.add(name)
        total.merge(bucket, -1)


class WindowStore:
    """Per scope, per window, the sum of the latest bucket each source sent for each slot in the window.

    `changed` collects the scopes whose totals may have changed since the merger last took them
    (`take_changed`): it rebuilds only their views' figures.
    """

    def __init__(self, bucket_ms: int, widths: Mapping[str, int] = WINDOWS) -> None:
        self.bucket_ms = bucket_ms
        self.widths = dict(widths)
        self.sizes = {n: window_slot_ms(w, bucket_ms) for n, w in self.widths.items()}
        # Per source and scope, by start: the latest bucket it sent and its width (buckets widen with age:
        # `bucket_widths`; `widen` merges those past each source's boundaries as stage 1 did before).
        self.src_buckets: dict[SrcKey, dict[int, Held]] = {}
        self.sources_of: dict[Scope, set[Source]] = defaultdict(set)
        self.source_widths: dict[SrcKey, Widths] = {}  # each source's width boundaries per scope (`widen`)
        self.widen_later: dict[SrcKey, int] = {}  # per source, the oldest start a `widen` left for a later one
        # One table of merged slots per slot size, finest first; the source bucket size is always one. A table
        # holds the buckets no wider than its slots: a wider one is older than every window summed from them.
        # The widest table holds every bucket (it says which scopes have any data).
        self.tables: dict[int, dict[Scope, dict[int, Bucket]]] = {
            size: defaultdict(dict) for size in all_widths(bucket_ms)  # = {bucket_ms, every window's slot size}
        }
        self.widest = self.tables[max(self.tables)]
        self.narrowed_puts = 0  # buckets sent narrower than the one held for their time (`_wider_holding`)
        # The ranges every running total is summed over (None until the first advance).
        self.ranges: dict[str, Range] | None = None
        self.running: dict[Scope, _Running] = {}
        self.changed: set[Scope] = set()
        self.pruned_to = -1
        self.frozen_to = NEVER  # the tables' slots that ended before it are frozen (`_freeze_settled`)

    # --- the four verbs ----------------------------------------------------------------------
    def put(self, src: str, part: int, scope: Scope, start: int, new: Bucket | None,
            width: int | None = None) -> None:
        """The bucket `src`/`part` holds for `scope` from `start` for `width` (default: the source bucket size)
        is now `new` (None: it holds none): it replaces whatever that source held within that time."""
        width = width or self.bucket_ms
        per_src = self.src_buckets.setdefault((src, part, scope), {})
        if width == self.bucket_ms:
            held = per_src.pop(start, None)
            olds = [] if held is None else [(start, *held)]
        else:  # a widened bucket: it replaces the narrower ones within its time
            olds = [(s, *h) for s in range(start, start + width, self.bucket_ms) if (h := per_src.pop(s, None))]
        if not olds:
            olds = self._wider_holding(per_src, start, width)
        elif olds[0][1] > width:  # the wider one held started at `start`: dropped the same way
            self.narrowed_puts += 1
        if new is not None:
            per_src[start] = (width, new)
        self.sources_of[scope].add((src, part))
        if start + width <= self.pruned_to:
            self.pruned_to = -1  # a bucket already out of every window: the next prune must look
        for s, w, old in olds:
            self._change(scope, s, w, old, -1)
        if new is not None:
            self._change(scope, start, width, new, 1)
        lowered = [
            dist for dist in ("frt", "reply")
            if max((getattr(old, dist).max_ms for _s, _w, old in olds), default=0)
            > (0 if new is None else getattr(new, dist).max_ms)
        ]  # otherwise merging `new` already raised the merged maxima as far as they go
        # (The common case, one bucket replacing its own earlier value, allocates no list.)
        same = not olds or (len(olds) == 1 and olds[0][0] == start and olds[0][1] == width)
        self._fix_max(scope, ((start, width),) if same else [(s, w) for s, w, _ in olds] + [(start, width)], lowered)

    def _wider_holding(self, per_src: dict[int, Held], start: int, width: int) -> list[tuple[int, int, Bucket]]:
        """The bucket held for a wider time that holds `start` (taken out), if any. Stage 1 sends narrower
        buckets than it did before only after a rebuild (a new owner whose clock is behind the old one's), and
        then sends every bucket it has, all in one drain: so the wide one is dropped, and they take its place."""
        for size in self.tables:
            if size <= width:
                continue
            aligned = start - start % size
            held = per_src.get(aligned)
            if held is not None and held[0] > width and start < aligned + held[0]:
                del per_src[aligned]
                self.narrowed_puts += 1
                return [(aligned, *held)]
        return []

    def _change(self, scope: Scope, start: int, width: int, bucket: Bucket, sign: int) -> None:
        """Add (sign 1) or take out (-1) one source bucket in the tables and in the running totals."""
        for size, tables in self.tables.items():
            if size < width:
                continue
            table = tables[scope]
            slot = start - start % size
            merged = table.get(slot)
            if merged is None:
                merged = table[slot] = Bucket()
            merged.merge(bucket, sign)
        if self.ranges is None:
            return
        running = self.running.get(scope)
        if running is None:  # summed from the tables when next read
            self.changed.add(scope)
            return
        for name, (lo, hi) in self.ranges.items():
            size = self.sizes[name]
            if size >= width and lo <= start - start % size <= hi:
                if sign < 0:
                    running.take_out(name, bucket)
                else:
                    running.totals[name].merge(bucket, 1)
                self.changed.add(scope)

    def forget_widths(self, which: Callable[[SrcKey], bool]) -> None:
        """Start the width boundaries of these sources afresh (the next `widen` makes them by its clock)."""
        for key in [k for k in self.source_widths if which(k)]:
            del self.source_widths[key]
            self.widen_later.pop(key, None)  # fresh boundaries walk every bucket

    def widen(self, clock_of: Callable[[SrcKey], int | None], twin: Twin | None = None) -> list[Widened]:
        """Merge each source's buckets of a scope that aged past their width boundaries at their clock (None: not
        yet) into wider ones, as stage 1 merged its own a margin earlier. The tables' sums stay what they were;
        only the tables of slots narrower than a new width lose its parts (no window reaches that far back).
        Returns what was merged, for the caller's copy of the sources' buckets (stage 2's table).

        `twin`: where stage 1 runs in this process, its own widened bucket is kept in place of the one merged here
        when the two give the same figures (one object, not two: stage 1 copies it before any change)."""
        out: list[Widened] = []
        reach_of: dict[int, int] | None = None  # per width, `_reach_of_narrower` (the same for every source)
        for src_key, per_src in self.src_buckets.items():
            clock = clock_of(src_key)
            widths = self.source_widths.get(src_key)
            if widths is None:
                widths = self.source_widths[src_key] = Widths(self.bucket_ms, STAGE2_MARGIN_MS)
            if clock is None or (moved := widths.advance(clock)) is None:
                continue
            scope = src_key[2]
            if reach_of is None:
                reach_of = {width: self._reach_of_narrower(width) for width in self.tables}
            # Only the time the boundaries moved over, and what an earlier call left for later, may widen now.
            lo, hi = moved
            lo = min(lo, self.widen_later.pop(src_key, lo))
            width_at = widths.width_at
            groups: dict[int, list[tuple[int, int, Bucket]]] = {}
            for s, (w, bucket) in per_src.items():
                if lo <= s < hi and w < (target := width_at(s)):
                    groups.setdefault(s - s % target, []).append((s, w, bucket))
            for target, members in groups.items():
                into_width = width_at(target)
                if target + into_width > reach_of[into_width]:
                    # Still inside a window of narrower slots at the last advance: widened later. (From its minute:
                    # no bucket of any width straddles a minute, so a walk from there takes whole groups.)
                    later = target - target % GRID_MS
                    self.widen_later[src_key] = min(later, self.widen_later.get(src_key, later))
                    continue
                into = Bucket()
                for s, w, bucket in members:
                    del per_src[s]
                    into.merge(bucket)
                    for size, tables in self.tables.items():
                        if w <= size < into_width:
                            self._take_from_table(tables[scope], s - s % size, bucket)
                kept = None if twin is None else twin(src_key, target, into_width, into)
                if kept is None:
                    into.freeze()  # read on, hardly ever changed again (a change thaws it)
                else:
                    into = kept  # (stage 1 froze its own)
                per_src[target] = (into_width, into)
                out.append(Widened(src_key, [(s, w) for s, w, _ in members], target, into_width, into))
        return out

    def _reach_of_narrower(self, width: int) -> int:
        """The oldest time a window of slots narrower than `width` held at the last advance (its running
        total counts those slots, so they must stay in its table until the window moved past them)."""
        if self.ranges is None:
            return -NEVER
        return min((lo for name, (lo, _hi) in self.ranges.items() if self.sizes[name] < width), default=-NEVER)

    @staticmethod
    def _take_from_table(table: dict[int, Bucket], slot: int, bucket: Bucket) -> None:
        merged = table.get(slot)
        if merged is not None:
            merged.merge(bucket, -1)
            if merged.is_empty():
                del table[slot]

    def advance(self, now: int) -> None:
        """Move every window to end at `now`: add the slots that entered, subtract those that left."""
        ranges = {n: window_range(now, w, self.sizes[n]) for n, w in self.widths.items()}
        old = self.ranges
        self.ranges = ranges
        moved = {n: r for n, r in ranges.items() if old is None or old[n] != r}
        if not moved:
            return
        for scope in self.widest.keys() | self.running.keys():
            running = self.running.get(scope)
            if running is None or old is None:
                self.running[scope] = self._sum(scope)
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

    def totals(self, scope: Scope) -> dict[str, Bucket]:
        """The scope's total per window name, with the maxima of stale windows rescanned from their slots.
        Only after an `advance`; the buckets are the store's own: read, never change them."""
        assert self.ranges is not None
        running = self.running.get(scope)
        if running is None:
            running = self.running[scope] = self._sum(scope)
        for name in running.stale:
            (lo, hi), total, table, size = self.ranges[name], running.totals[name], self._table(scope, name), \
                self.sizes[name]
            frt_max = reply_max = 0
            for slot in range(lo, hi + size, size):
                bucket = table.get(slot)
                if bucket is not None:
                    frt_at, reply_at = bucket.maxima()
                    frt_max, reply_max = max(frt_max, frt_at), max(reply_max, reply_at)
            total.set_max("frt", frt_max)
            total.set_max("reply", reply_max)
        running.stale.clear()
        return running.totals

    def prune(self, before: int) -> None:
        """Drop slots that ended before `before` rounded down to the minute. A prune walks every slot,
        so it runs once a minute of event time (as stage 1's), not once a source bucket."""
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
                    self.running.pop(scope, None)  # a slot inside a window went: sum that scope again
                    self.changed.add(scope)
        for per_src in self.src_buckets.values():
            for slot in [s for s, (w, _bucket) in per_src.items() if s + w <= before]:
                del per_src[slot]
        self._freeze_settled()

    def _freeze_settled(self) -> None:
        """Hold frozen (`Bucket.freeze`) the slots of the two widest tables (the 15m and 1h windows' by default) that
        went out of the shortest window (a minute) since the last call: read on for 14 and 60 minutes, they change
        only for a late or retracted fact (which thaws one). The narrower tables' slots go within minutes, taken
        out as their sources widen (which would thaw them first)."""
        if self.ranges is None:
            return
        settled = max(lo for lo, _hi in self.ranges.values())
        settled -= settled % GRID_MS  # (every slot size divides a minute)
        since, self.frozen_to = self.frozen_to, settled
        walk = settled - since > 10 * GRID_MS  # the first time, or after a jump of the clock: every slot
        for size in sorted(self.tables)[-2:]:
            for per_scope in self.tables[size].values():
                for slot in [s for s in per_scope if s < settled] if walk else range(since, settled, size):
                    if (merged := per_scope.get(slot)) is not None:
                        merged.freeze()

    # --- what the merger reads besides ---------------------------------------------------------
    @property
    def edges(self) -> dict[str, int]:
        """Per window, the start of its first slot since the last advance (empty before the first): the
        window covers (edge, now]."""
        return {} if self.ranges is None else {name: lo for name, (lo, _hi) in self.ranges.items()}

    def scopes(self) -> set[Scope]:
        """The scopes holding any bucket."""
        return {s for s, slots in self.widest.items() if slots}

    def take_changed(self) -> set[Scope]:
        """The scopes whose totals may have changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def forget(self, scope: Scope) -> None:
        """Drop the scope's running totals (it left every view); summed again if it comes back."""
        self.running.pop(scope, None)

    # --- summing afresh -----------------------------------------------------------------------
    def _table(self, scope: Scope, name: str) -> dict[int, Bucket]:
        return self.tables[self.sizes[name]].get(scope, {})

    def _sum(self, scope: Scope) -> _Running:
        assert self.ranges is not None
        out = _Running(self.widths)
        for name, (lo, hi) in self.ranges.items():
            out.totals[name] = _sum_range(self._table(scope, name), lo, hi)
        return out

    def _fix_max(self, scope: Scope, changed: Sequence[tuple[int, int]], lowered: list[str]) -> None:
        """After a replacement of the source buckets (start, width) `changed`: drop merged slots left empty, and
        recompute a merged max that may have gone down (maxima do not subtract) from the source buckets in it."""
        for size, tables in self.tables.items():
            table = tables[scope]
            for slot in {s - s % size for s, w in changed if w <= size}:
                merged = table.get(slot)
                if merged is None:
                    continue
                if merged.is_empty():
                    del table[slot]
                    continue
                for dist in lowered:
                    merged.set_max(dist, max((getattr(b, dist).max_ms for b in self._held_in(scope, slot, size)),
                                             default=0))

    def _held_in(self, scope: Scope, slot: int, size: int) -> Iterable[Bucket]:
        """Every source's buckets no wider than `size` within the slot of `size` at `slot`."""
        for src, part in self.sources_of[scope]:
            per_src = self.src_buckets.get((src, part, scope))
            if not per_src:
                continue
            for start in range(slot, slot + size, self.bucket_ms):
                held = per_src.get(start)
                if held is not None and held[0] <= size:
                    yield held[1]


def _sum_range(table: dict[int, Bucket], lo: int, hi: int) -> Bucket:
    """The sum of the slots of `table` from `lo` to `hi` (slot starts, inclusive)."""
    total = Bucket()
    for start, bucket in table.items():
        if lo <= start <= hi:
            total.merge(bucket)
    return total
