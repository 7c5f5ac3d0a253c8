"""Stage 2's window store: per scope, the sum of the source buckets in each rolling window, kept running.

Four verbs: `put` a source's bucket (a full value: it replaces the one that source sent for that slot
before), `advance` every window to a new `now`, read a scope's `totals`, `prune` what has left every
window. Roll-ups, live counters and views are the merger's (`merge.QueueMerger`); this module only adds.

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
from collections.abc import Iterable, Mapping
from typing import Final

from .buckets import Bucket
from .config import WINDOWS
from .scope import Scope

GRID_MS: Final = 60_000  # every slot size divides a minute, so all grids line up

Source = tuple[str, int]  # (source stage, partition)
SrcKey = tuple[str, int, Scope]  # (source stage, partition, scope)
Range = tuple[int, int]  # (first, last) slot start of a window, inclusive


def window_range(now: int, width: int, size: int) -> Range:
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
        if bucket.frt.max_ms >= total.frt.max_ms or bucket.reply.max_ms >= total.reply.max_ms:
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
        self.src_buckets: dict[SrcKey, dict[int, Bucket]] = {}
        self.sources_of: dict[Scope, set[Source]] = defaultdict(set)
        # One table of merged slots per slot size, finest first; the source bucket size is always one
        # (maxima are recomputed from it, and it says which scopes have any data).
        self.tables: dict[int, dict[Scope, dict[int, Bucket]]] = {
            size: defaultdict(dict) for size in sorted({bucket_ms, *self.sizes.values()})
        }
        self.fine = self.tables[bucket_ms]
        # The ranges every running total is summed over (None until the first advance).
        self.ranges: dict[str, Range] | None = None
        self.running: dict[Scope, _Running] = {}
        self.changed: set[Scope] = set()
        self.pruned_to = -1

    # --- the four verbs ----------------------------------------------------------------------
    def put(self, src: str, part: int, scope: Scope, start: int, new: Bucket | None) -> None:
        """The bucket `src`/`part` holds for `scope` at `start` is now `new` (None: it holds none)."""
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
        running = self.running.get(scope)
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

    def advance(self, now: int) -> None:
        """Move every window to end at `now`: add the slots that entered, subtract those that left."""
        ranges = {n: window_range(now, w, self.sizes[n]) for n, w in self.widths.items()}
        old = self.ranges
        self.ranges = ranges
        moved = {n: r for n, r in ranges.items() if old is None or old[n] != r}
        if not moved:
            return
        for scope in self.fine.keys() | self.running.keys():
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
                    frt_max = max(frt_max, bucket.frt.max_ms)
                    reply_max = max(reply_max, bucket.reply.max_ms)
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
            for slot in [s for s in per_src if s + self.bucket_ms <= before]:
                del per_src[slot]

    # --- what the merger reads besides ---------------------------------------------------------
    @property
    def edges(self) -> dict[str, int]:
        """Per window, the start of its first slot since the last advance (empty before the first): the
        window covers (edge, now]."""
        return {} if self.ranges is None else {name: lo for name, (lo, _hi) in self.ranges.items()}

    def scopes(self) -> set[Scope]:
        """The scopes holding any bucket."""
        return {s for s, slots in self.fine.items() if slots}

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


def _sum_range(table: dict[int, Bucket], lo: int, hi: int) -> Bucket:
    """The sum of the slots of `table` from `lo` to `hi` (slot starts, inclusive)."""
    total = Bucket()
    for start, bucket in table.items():
        if lo <= start <= hi:
            total.merge(bucket)
    return total
