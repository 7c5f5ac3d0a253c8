"""A mergeable, subtractable distribution of millisecond durations.

Counts and sums are exact integers, so merging partitions and retracting samples never drifts.
Percentiles come from log-spaced bins (DDSketch's mapping): every value in bin i lies in
(gamma^(i-1), gamma^i], and the bin's representative 2*gamma^i/(gamma+1) is within BIN_ALPHA
(1.9%) of any of them. So a reported percentile is within ALPHA (2%) of the exact nearest-rank
percentile; values under 1 ms report as 0. The max is exact where samples are only added (and
merged); where they are also taken out (stage 1, `Samples`) the values are kept, so it stays exact.
A plain Dist that has a sample taken out can only bound its max by the top bin's upper edge (rounded
up): at most gamma - 1 = 3.87% high, plus 1 ms, so within 2*ALPHA (4%) for values >= 1 s.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate, chain
from typing import Any, ClassVar, Final, Self

from .figures import DistSummary

ALPHA: Final = 0.02  # the stated relative error of percentiles (2%) and of a bounded max (2*ALPHA)
BIN_ALPHA: Final = 0.019  # the bins' own: narrow enough that gamma - 1 + 1 ms/1 s <= 2*ALPHA
GAMMA: Final = (1 + BIN_ALPHA) / (1 - BIN_ALPHA)
_LOG_GAMMA: Final = math.log(GAMMA)


def nearest_rank(total: int, q: float) -> int:
    """The rank (1-based) of the q-th nearest-rank percentile among `total` values: ceil(q * total), less a
    billionth so that floating point's noise (0.9 * 10 is 9.000000000000002) does not push it a rank up."""
    return max(1, math.ceil(q * total - 1e-9))


def bin_of(value_ms: int) -> int:
    if value_ms < 1:
        return 0
    return max(1, math.ceil(math.log(value_ms) / _LOG_GAMMA - 1e-12))


def bin_value(index: int) -> float:
    """The bin's representative value in milliseconds."""
    if index <= 0:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def bin_upper(index: int) -> float:
    return 0.0 if index <= 0 else GAMMA**index


class Dist:
    __slots__ = ("bins", "count", "max_ms", "total_ms")
    KIND: ClassVar[int] = 1  # what `pack` writes first, for `unpack` (0 is left to the caller: no Dist)

    def __init__(self) -> None:
        self.count = 0
        self.total_ms = 0
        self.max_ms = 0
        self.bins: dict[int, int] = {}

    def pack(self, out: list[int]) -> None:
        """Append this Dist to `out` as integers (a frozen bucket: `buckets.Bucket.freeze`; `unpack` reads it
        back): its kind (`KIND`), count, total, max, number of bins, then each (bin, count) in order."""
        bins = self.bins
        out += (self.KIND, self.count, self.total_ms, self.max_ms, len(bins))
        out += chain.from_iterable(bins.items())

    def _unpack(self, ints: list[int], at: int) -> int:
        """Read what `pack` wrote from `ints[at]` (past the kind) into this Dist; the index after it."""
        self.count, self.total_ms, self.max_ms, n = ints[at : at + 4]
        end = at + 4 + 2 * n
        self.bins = dict(zip(i := iter(ints[at + 4 : end]), i, strict=True))
        return end

    def add(self, value_ms: int, n: int = 1) -> None:
        """Count `value_ms` n times."""
        self.count += n
        self.total_ms += n * value_ms
        if value_ms > self.max_ms:
            self.max_ms = value_ms
        b = bin_of(value_ms)
        bins = self.bins
        bins[b] = bins.get(b, 0) + n

    def remove(self, value_ms: int, n: int = 1) -> bool:
        """Take `value_ms` out n times. True always: a plain Dist cannot tell whether it held the value (`Samples`
        can)."""
        self.count -= n
        self.total_ms -= n * value_ms
        b = bin_of(value_ms)
        bins = self.bins
        left = bins.get(b, 0) - n
        if left:
            bins[b] = left
        else:
            bins.pop(b, None)
        # The exact runner-up is not kept; the top bin's upper edge bounds it (within 2*ALPHA).
        self.max_ms = min(self.max_ms, math.ceil(bin_upper(max(bins)))) if bins else 0
        return True

    def merge(self, other: Dist, sign: int = 1) -> None:
        self.count += sign * other.count
        self.total_ms += sign * other.total_ms
        bins = self.bins
        for b, n in other.bins.items():
            left = bins.get(b, 0) + sign * n
            if left:
                bins[b] = left
            else:
                bins.pop(b, None)
        if sign > 0 and other.max_ms > self.max_ms:
            self.max_ms = other.max_ms

    def same(self, other: Dist) -> bool:
        return (self.count == other.count and self.total_ms == other.total_ms and self.max_ms == other.max_ms
                and self.bins == other.bins)

    def quantile_ms(self, q: float) -> float | None:
        """Nearest-rank percentile: the value of rank ceil(q*n)."""
        if self.count <= 0:
            return None
        return self.quantiles_ms((q,))[0]

    def quantiles_ms(self, qs: tuple[float, ...]) -> list[float]:
        """`quantile_ms` of each of `qs` (ascending), from the sorted bins' running counts; count > 0."""
        bins = self.bins
        # The views' hottest step: sorted, accumulated and bisected in C, not walked bin by bin in Python.
        order = sorted(bins)
        running = list(accumulate(map(bins.__getitem__, order)))
        top = float(self.max_ms)
        out: list[float] = []
        for q in qs:
            at = bisect_left(running, nearest_rank(self.count, q))
            out.append(min(bin_value(order[at]), top) if at < len(order) else top)
        return out

    def summary(self) -> DistSummary:
        """The API's {count, mean_s, p50_s, p90_s, max_s}; null where there are no samples."""
        if self.count <= 0:
            return {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None, "max_s": None}
        p50, p90 = self.quantiles_ms((0.5, 0.9))
        return {
            "count": self.count,
            "mean_s": self.total_ms / self.count / 1000,
            # Not rounded to the millisecond: that alone could push a bin's 2% (ALPHA) error past 2%.
            "p50_s": p50 / 1000,
            "p90_s": p90 / 1000,
            "max_s": self.max_ms / 1000,
        }

    def copy(self) -> Self:
        out = type(self)()
        out.count, out.total_ms, out.max_ms, out.bins = self.count, self.total_ms, self.max_ms, self.bins.copy()
        return out

    def to_json(self) -> list[Any]:
        return [self.count, self.total_ms, self.max_ms, list(self.bins.items())]  # orjson: tuples as arrays

    @classmethod
    def from_json(cls, raw: list[Any]) -> Dist:
        out = cls()
        out.count, out.total_ms, out.max_ms = int(raw[0]), int(raw[1]), int(raw[2])
        out.bins = {int(b): int(n) for b, n in raw[3]}
        return out


class Samples(Dist):
    """A Dist that also keeps its values, so that taking one out leaves `max_ms` exact: METRICS.md makes every
    figure a function of the set of events, so a late event that retracts a bucket's maximum must leave the
    runner-up, not a bin's edge. Stage 1's buckets are made of these (facts are retracted there only); what they
    hand on (`to_json`) is a plain Dist's, and a plain Dist merging one reads only its bins and sums.

    Up to two values follow from count, total and max alone; from three on they are kept sorted in an array of
    64-bit integers (8 bytes a value: most buckets hold one or two)."""

    __slots__ = ("_values",)
    KIND: ClassVar[int] = 2

    def __init__(self) -> None:
        super().__init__()
        self._values: array[int] | None = None

    def pack(self, out: list[int]) -> None:
        """A Dist's `pack`, then the number of values kept and the values (none kept up to two)."""
        super().pack(out)
        values = self._values
        out.append(0 if values is None else len(values))
        if values is not None:
            out += values

    def _unpack(self, ints: list[int], at: int) -> int:
        at = super()._unpack(ints, at)
        n = ints[at]
        self._values = array("q", ints[at + 1 : at + 1 + n]) if n else None
        return at + 1 + n

    def values(self) -> list[int]:
        """Every value held, ascending."""
        if self._values is not None:
            return self._values.tolist()
        if self.count <= 0:
            return []
        return [self.max_ms] if self.count == 1 else [self.total_ms - self.max_ms, self.max_ms]

    def add(self, value_ms: int, n: int = 1) -> None:
        values = self._values
        if values is None and self.count + n > 2:
            values = self._values = array("q", self.values())
        super().add(value_ms, n)
        if values is not None:
            at = bisect_right(values, value_ms)
            values[at:at] = array("q", (value_ms,)) * n

    def remove(self, value_ms: int, n: int = 1) -> bool:
        """Take `value_ms` out n times; False if it was not held n times (then only the counts and bins change, as
        a plain Dist's: a fact retracted from a bucket pruned before, out of every window, and never a crash)."""
        values: list[int] | array[int] = self.values() if self._values is None else self._values
        at = bisect_left(values, value_ms)
        held = at + n <= len(values) and values[at + n - 1] == value_ms
        if held:
            del values[at : at + n]
        super().remove(value_ms, n)
        self.max_ms = values[-1] if values else 0
        if self.count <= 2:
            self._values = None
        return held

    def merge(self, other: Dist, sign: int = 1) -> None:
        if sign < 0 or not isinstance(other, Samples):
            raise TypeError("Samples merge other Samples only, and only add them (a retraction is `remove`)")
        both = sorted(self.values() + other.values())
        super().merge(other, sign)
        self._values = array("q", both) if self.count > 2 else None

    def copy(self) -> Samples:
        out = super().copy()
        out._values = None if self._values is None else array("q", self._values)
        return out


def unpack(ints: list[int], at: int) -> tuple[Dist, int]:
    """The Dist (or Samples) `pack` wrote from `ints[at]`, and the index after it."""
    d = (Dist, Samples)[ints[at] - 1]()
    return d, d._unpack(ints, at + 1)
