"""How wide a time bucket is at its age: one home for the grid both stages keep their buckets on.

A window W is summed from slots of at most W/60 (`window_slot_ms`: 1 s for 1m, 5 s for 5m, 15 s for 15m,
60 s for 1h) and reaches back W plus one slot (its lower edge is rounded down to its grid: METRICS.md). So
once a bucket ended further back than every window summed from slots narrower than `width` reaches, no
window needs it split: it may be merged into a bucket of `width`. Keeping the last hour at 1 s costs 3,720
buckets per scope and source; widening them with age costs under 300 (1 s for the last one to three
minutes, then 5 s, 15 s and 60 s), with the very same figures.

Boundaries are whole minutes (every width divides a minute, so the widths tile) and only move forward. A
bucket keyed `start` of width w holds event times in (start, start + w].

Each stage widens on its own clock, `margin_ms` behind it. Stage 2 must never hold a bucket wider than the
one stage 1 sends for the same time (it could not take the old value out of its sum), so its clock is the
source's watermark as read on the partials partition the buckets travel on (it comes after them there, so
it is never ahead of the stage 1 that sent them) and its margin the larger (`STAGE2_MARGIN_MS`); and a
window must never reach a bucket wider than its slots, so stage 1's margin covers how far stage 2's clock
may trail stage 1's. Only a new owner of a stage 1 partition, rebuilt with an older watermark, sends narrower
buckets than before: all of them at once, and stage 2 takes them in place of its wide one
(`windows.WindowStore.put`).
"""

from __future__ import annotations

from typing import Final

from .config import WINDOWS

GRID_MS: Final = 60_000  # every slot size divides a minute, so all grids line up
STAGE1_MARGIN_MS: Final = 60_000
STAGE2_MARGIN_MS: Final = 120_000
NEVER: Final = -(2**62)  # a boundary before any time: nothing widened yet


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


def width_steps(bucket_ms: int) -> tuple[tuple[int, int], ...]:
    """(width, reach) per width above `bucket_ms`, widest first: a bucket may be `width` wide once it
    ended `reach` ms before the clock (the furthest any window of narrower slots reaches back)."""
    slots = {name: window_slot_ms(w, bucket_ms) for name, w in WINDOWS.items()}
    steps = []
    for width in sorted(set(slots.values()) - {bucket_ms}):
        reach = max((WINDOWS[name] + size for name, size in slots.items() if size < width), default=0)
        steps.append((width, reach))
    return tuple(reversed(steps))


def all_widths(bucket_ms: int) -> list[int]:
    """Every width a bucket may have, narrowest first."""
    return sorted({bucket_ms, *(width for width, _reach in width_steps(bucket_ms))})


class Widths:
    """Which width each time has now, for one source of buckets (one stage 1 partition)."""

    __slots__ = ("bounds", "bucket_ms", "margin_ms", "next_move", "steps")

    def __init__(self, bucket_ms: int, margin_ms: int) -> None:
        self.bucket_ms = bucket_ms
        self.margin_ms = margin_ms
        self.steps = width_steps(bucket_ms)
        # Per width, widest first: times before the boundary are (at least) that wide.
        self.bounds = [NEVER] * len(self.steps)
        self.next_move = NEVER  # the earliest clock at which a boundary moves (advance is called per event)

    def advance(self, clock: int) -> tuple[int, int] | None:
        """Move the boundaries to `clock` (never back). If any moved, (lo, hi): only a bucket starting in
        [lo, hi) may have a new width (a widening walks those, not every bucket); else None."""
        if clock < self.next_move:
            return None
        moved: list[tuple[int, int]] = []  # (from, to) of each boundary that moved
        for i, (_width, reach) in enumerate(self.steps):
            bound = clock - reach - self.margin_ms
            bound -= bound % GRID_MS
            if bound > self.bounds[i]:
                moved.append((self.bounds[i], bound))
                self.bounds[i] = bound
        self.next_move = min((b + GRID_MS + reach + self.margin_ms for b, (_w, reach) in zip(self.bounds, self.steps,
                                                                                             strict=True)),
                             default=-NEVER)
        return (min(f for f, _t in moved), max(t for _f, t in moved)) if moved else None

    def width_at(self, start: int) -> int:
        """The width of the bucket starting at `start` (an event at ts is in the bucket of ts - 1)."""
        for i, bound in enumerate(self.bounds):
            if start < bound:
                return self.steps[i][0]
        return self.bucket_ms

    def start_of(self, t: int) -> tuple[int, int]:
        """(start, width) of the bucket holding the time `t` = ts - 1."""
        width = self.width_at(t)
        return t - t % width, width

    @property
    def widened_before(self) -> int:
        """Every bucket starting before this is wider than `bucket_ms`."""
        return max(self.bounds, default=NEVER)
