"""Stage 2's read-only form of the live counters: open waits as sorted arrays, not Counters.

Stage 1 keeps a `Live` per scope and partition, with a Counter of wait starts it changes event by
event. Stage 2 only reads them: it holds each partition's copy and, per view, their sum, and asks
the sum for the oldest wait and nearest-rank percentiles every tick. As Counters those copies cost
~100 bytes per waiting buyer per copy (a dict slot and an int object) and a sort per view per tick;
as two arrays of 64-bit ints they cost 16 bytes, are sorted once when they change, and a percentile
is a bisection.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from .dist import nearest_rank
from .partials import Live


@dataclass(frozen=True, slots=True)
class Waits:
    """Open waits: their start times (ms) newest first (shortest wait first), and the running count of
    buyers up to and including each. A start time may repeat (two partitions' copies summed)."""

    since: array[int]
    running: array[int]

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[int, int]]) -> Waits:
        """From (start ms, buyers) pairs (or JSON's [start, buyers] lists) in any order; runs already sorted merge
        in about linear time."""
        ordered = sorted(pairs, reverse=True)
        if not ordered:
            return NO_WAITS
        return cls(array("q", [p[0] for p in ordered]), array("q", accumulate(p[1] for p in ordered)))

    @classmethod
    def summed(cls, parts: Iterable[Waits]) -> Waits:
        """The sum of `parts`; one non-empty part is returned as is (shared: a Waits is never changed)."""
        held = [w for w in parts if w]
        if len(held) <= 1:
            return held[0] if held else NO_WAITS
        pairs: list[tuple[int, int]] = []
        for w in held:
            pairs.extend(w.items())
        return cls.of_pairs(pairs)

    @property
    def total(self) -> int:
        return self.running[-1] if self.running else 0

    def __bool__(self) -> bool:
        return len(self.since) > 0

    def items(self) -> Iterator[tuple[int, int]]:
        """(start ms, buyers) pairs, newest first."""
        before = 0
        for ts, upto in zip(self.since, self.running, strict=True):
            yield ts, upto - before
            before = upto

    def wait_ms(self, q: float, now: int) -> int:
        """The nearest-rank q-th percentile of the waits at `now` (a start after `now` waits 0); non-empty."""
        return max(0, now - self.since[bisect_left(self.running, nearest_rank(self.total, q))])

    def oldest_ms(self, now: int) -> int:
        return max(0, now - self.since[-1])


NO_WAITS: Final = Waits(array("q"), array("q"))


@dataclass(frozen=True, slots=True)
class LiveSums:
    """A `Live` as stage 2 holds it (read only); per view, the sum of its scopes' partitions' copies."""

    open: int = 0
    unanswered: int = 0
    unassigned: int = 0
    awaiting_reply: int = 0
    waiting: Waits = NO_WAITS
    first_waiting: Waits = NO_WAITS

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LiveSums:
        """From stage 1's record (`Live.to_json`)."""
        return cls(raw["open"], raw["unanswered"], raw["unassigned"], raw["awaiting_reply"],
                   Waits.of_pairs(raw["waiting"]), Waits.of_pairs(raw.get("first_waiting", ())))

    @classmethod
    def of(cls, live: Live) -> LiveSums:
        return cls(live.open, live.unanswered, live.unassigned, live.awaiting_reply,
                   Waits.of_pairs(live.waiting.items()), Waits.of_pairs(live.first_waiting.items()))

    @classmethod
    def view_sum(cls, parts: Sequence[LiveSums]) -> LiveSums:
        """The sum a view's live figures read: `first_waiting` is left out (a view reads only `waiting`; the
        first-reply rule's deadlines are taken per scope from the partitions' copies, `merge.rule_deadlines`). One
        part without first waits is returned as is (shared: a LiveSums is never changed)."""
        if len(parts) == 1 and not parts[0].first_waiting:
            return parts[0]
        return cls(sum(p.open for p in parts), sum(p.unanswered for p in parts), sum(p.unassigned for p in parts),
                   sum(p.awaiting_reply for p in parts), Waits.summed(p.waiting for p in parts))
