"""Facts and the time-bucket aggregate they add into (shared/METRICS.md, rolling windows).

A fact is one thing the conversation state machine recorded: (kind, ts_ms, queue, value).
A `Bucket` holds the exact, mergeable sums of the facts whose ts falls in one bucket of
event time for one scope; windows are sums of buckets. Every operation has an inverse
(sign = -1), so a fact retracted by an out-of-order event leaves no trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, ClassVar, Final, NamedTuple, Self

import orjson

from .config import SL_THRESHOLDS_S, SLOW_REPLY_S, sl_thresholds_for
from .dist import Dist, Samples, unpack
from .figures import ReplySummary, WindowFigures
from .wire import kept


class Fact(NamedTuple):
    kind: str
    ts: int
    queue: str
    value: int = 0


# Fact kinds. `left` = the conversation left the unanswered state: value = FRT ms, or -1 if abandoned.
ARRIVAL: Final = "arrival"
FRT: Final = "frt"
LEFT: Final = "left"
ABANDON_WAIT: Final = "abandon_wait"  # value = ms the buyer waited before abandoning
REPLY: Final = "reply"
TRANSFER_OUT: Final = "transfer_out"
CSAT: Final = "csat"
MSG_CUSTOMER: Final = "msg_customer"
MSG_AGENT: Final = "msg_agent"
# Distinct-conversation facts, one per (conversation, queue): `last_reply` at the queue's latest human
# reply, `converted` at the earlier of its latest reply and latest order in that queue. A window ends
# now, so it holds the fact iff it holds such a reply (and such an order): its sum counts distinct
# conversations, and converted <= replied in every window (conversion never above 1).
LAST_REPLY: Final = "last_reply"
CONVERTED: Final = "converted"
CLOSED_PREFIX: Final = "closed_"  # closed_<reason>; value = handle time ms, or -1 if no agent handled it
# A wait for a human reply that a close (not `bot_resolved`) ended: value = ms waited. The platform
# rules count it as a miss (platform_rules.PlatformRule.outcome); no other figure reads it.
UNANSWERED_CLOSED: Final = "unanswered_closed"  # the buyer's first wait: never answered
WAIT_CLOSED: Final = "wait_closed"  # a later wait (answered before, waiting again)
# The same, ended by a `bot_resolved` close: the bot served the buyer, so the rule counts the wait only if
# its limit had passed before (a miss from that moment: METRICS.md), never as a wait that needed no human.
UNANSWERED_BOT_CLOSED: Final = "unanswered_bot_closed"
WAIT_BOT_CLOSED: Final = "wait_bot_closed"

# An order's amount credited to an agent who replied before it (SCORECARD.md `gmv`, 客服销售额): the kind is
# "gmv:<currency>", the value the amount in units of 1/GMV_SCALE (sums stay exact integers). Read by the
# scorecard's day state only; the rolling windows ignore it.
GMV_PREFIX: Final = "gmv:"
GMV_SCALE: Final = 10_000


def gmv_fact(currency: str, ts: int, queue: str, amount: str) -> Fact:
    units = (Decimal(amount) * GMV_SCALE).to_integral_value(rounding=ROUND_HALF_EVEN)
    return Fact(GMV_PREFIX + currency, ts, queue, int(units))


def gmv_amount(units: int) -> Decimal:
    """A GMV sum in units of 1/GMV_SCALE as the decimal amount."""
    return Decimal(units) / GMV_SCALE

COUNTERS: Final = (
    "arrivals",
    "left",
    "abandoned",
    "slow_replies",
    "closed",
    "closed_resolved",
    "closed_bot",
    "handled",
    "handle_ms",
    "transfers_out",
    "csat_n",
    "csat_sum",
    "csat_satisfied",
    "replied_convs",
    "ordered_convs",
    "msgs_customer",
    "msgs_agent",
    "abandon_wait_ms",
    "rule_counted",  # waits the platform's reply-time rule counts, by the time of their outcome
    "rule_met",  # ...and that were answered within its limit
)
_KNOWN: Final = frozenset(COUNTERS)
_ZEROS: Final = dict.fromkeys(COUNTERS, 0)  # every counter at 0: window_figures starts from a copy
NO_SAMPLES: Final = Dist()  # shared, read only: see Bucket.__init__
_SLOW_MS: Final = int(SLOW_REPLY_S * 1000)
# Answered within X counters, "sl_<X>", one per service-level threshold X of the scope's queue: they are
# configuration per queue (config.sl_thresholds_for), so a bucket holds those of its own queue only.
SlCounters = tuple[tuple[str, int], ...]  # (counter name, X in ms)


@lru_cache(maxsize=1024)
def _sl_counters(thresholds_s: tuple[int, ...]) -> SlCounters:
    return tuple((f"sl_{t}", t * 1000) for t in thresholds_s)


def sl_counters_for(queue: str) -> SlCounters:
    """The answered-within-X counters a LEFT fact of `queue` adds to."""
    return _sl_counters(sl_thresholds_for(queue))


# A frozen bucket's counters name their counter by its number here (`Bucket.freeze`): the built-in ones, then each
# sl_<X> as first frozen (one per configured threshold: a few).
_NAMES: Final[list[str]] = list(COUNTERS)
_NUMBERS: Final[dict[str, int]] = {name: i for i, name in enumerate(_NAMES)}


def _number(name: str) -> int:
    n = _NUMBERS.get(name)
    if n is None:
        n = _NUMBERS[name] = len(_NAMES)
        _NAMES.append(name)
    return n


def _pack_dist(d: Dist, out: list[int]) -> None:
    if d is NO_SAMPLES:
        out.append(0)
    else:
        d.pack(out)


def _unpack_dist(ints: list[int], at: int) -> tuple[Dist, int]:
    return (NO_SAMPLES, at + 1) if ints[at] == 0 else unpack(ints, at)


Parts = tuple[Iterable[tuple[str, int]], Dist, Dist]  # (name, n) of the counters, frt, reply: `Bucket._parts`


def _unpacked(raw: bytes) -> Parts:
    """What `Bucket.freeze` packed into `raw` (its layout there)."""
    ints: list[int] = orjson.loads(raw)
    end = 1 + 2 * ints[0]
    names = _NAMES
    counts = [(names[ints[j]], ints[j + 1]) for j in range(1, end, 2)]
    frt, at = _unpack_dist(ints, end)
    return counts, frt, _unpack_dist(ints, at)[0]


class Counts(dict[str, int]):
    """A bucket's counters by name; a missing one reads 0. (Not `collections.Counter`, whose `__init__` is Python:
    `Bucket()` took 496 ns with it, 184 with this, and a tick makes hundreds of thousands of buckets.)"""

    __slots__ = ()

    def __missing__(self, _name: str) -> int:
        return 0


class Bucket:
    __slots__ = ("_c", "_frt", "_reply")
    DIST: ClassVar[type[Dist]] = Dist  # what a sample's distribution is made of (`SourceBucket`: Samples)

    def __init__(self) -> None:
        # Sparse: only the counters a fact touched (a missing one reads 0). With 1 s buckets kept for the
        # horizon in both stages, a bucket holding one arrival must not carry all the counters.
        # Frozen (`freeze`): bytes, the counters and both distributions in one.
        self._c: Counts | bytes = Counts()
        # No FRT / reply samples yet: the shared empty Dist (most buckets hold arrivals and messages only);
        # a bucket gets its own on its first sample (`_own`). Never mutate `NO_SAMPLES`. Frozen: NO_SAMPLES.
        self._frt = NO_SAMPLES
        self._reply = NO_SAMPLES

    def _parts(self) -> Parts:
        """The counters, frt and reply, to read: a frozen bucket's unpacked (and it stays frozen)."""
        c = self._c
        return _unpacked(c) if isinstance(c, bytes) else (c.items(), self._frt, self._reply)

    def _thaw(self) -> Counts:
        c = self._c
        if isinstance(c, bytes):
            counts, self._frt, self._reply = _unpacked(c)
            c = self._c = Counts(counts)
        return c

    @property
    def c(self) -> Counts:
        """The counters, to change or to read by name (a frozen bucket thaws: `freeze`)."""
        c = self._c
        return self._thaw() if isinstance(c, bytes) else c

    @property
    def frt(self) -> Dist:
        """The first response times, to read (a frozen bucket's: unpacked, and it stays frozen)."""
        c = self._c
        return _unpacked(c)[1] if isinstance(c, bytes) else self._frt

    @property
    def reply(self) -> Dist:
        """The reply times, to read (as `frt`)."""
        c = self._c
        return _unpacked(c)[2] if isinstance(c, bytes) else self._reply

    def maxima(self) -> tuple[int, int]:
        """The `frt` and `reply` maxima (a frozen bucket unpacked once for both)."""
        c = self._c
        if isinstance(c, bytes):
            _counts, frt, reply = _unpacked(c)
            return frt.max_ms, reply.max_ms
        return self._frt.max_ms, self._reply.max_ms

    def counts(self) -> Iterable[tuple[str, int]]:
        """(name, n) of the counters held, to read (a frozen bucket stays frozen; some n may be 0 if not)."""
        c = self._c
        return _unpacked(c)[0] if isinstance(c, bytes) else c.items()

    def freeze(self) -> None:
        """Hold the counters and both distributions as one compact array of integers (JSON bytes, about a third of
        the objects' bytes), until the next change thaws them (`c`, `_own`). For the old buckets of a window,
        read for the tick's sums and hardly ever changed again (a late event): most of a worker's buckets. The
        figures stay the very same.

        The array: the number of counters, each counter's (number in `_NAMES`, n) but those at 0, then `frt` and
        `reply` as `Dist.pack` writes them (0 for none)."""
        c = self._c
        if isinstance(c, bytes):
            return
        ints = [0]
        for name, n in c.items():
            if n:
                ints += (_number(name), n)
        ints[0] = len(ints) // 2
        _pack_dist(self._frt, ints)
        _pack_dist(self._reply, ints)
        self._c = kept(ints)  # (exact size: orjson's own bytes hold its whole buffer)
        self._frt = self._reply = NO_SAMPLES

    @property
    def frozen(self) -> bool:
        return isinstance(self._c, bytes)

    def _own(self, name: str) -> Dist:
        """The `_frt` / `_reply` Dist, to change: the bucket's own (not NO_SAMPLES), and the bucket thawed."""
        if isinstance(self._c, bytes):
            self._thaw()
        d: Dist = getattr(self, name)
        if d is NO_SAMPLES:
            d = self.DIST()
            setattr(self, name, d)
        return d

    def set_max(self, name: str, value_ms: int) -> None:
        """Set the `frt` / `reply` maximum (recomputed after a retraction lowered it). A frozen bucket whose maximum
        is that already stays frozen."""
        d: Dist = getattr(self, name)  # (the property: a frozen bucket's unpacked)
        if d.max_ms != value_ms and (value_ms or d is not NO_SAMPLES):
            self._own("_" + name).max_ms = value_ms

    def count_rule(self, met: bool, sign: int) -> None:
        """Add or retract one outcome of the platform's reply-time rule (placed by its own time, which
        for a miss is the moment the limit passed: the caller picks the bucket)."""
        self.c["rule_counted"] += sign
        if met:
            self.c["rule_met"] += sign

    def apply(self, fact: Fact, sign: int, sl: SlCounters | None = None) -> None:
        """Add (sign > 0) or retract (sign < 0) a fact |sign| times; `sl`: the queue's service-level counters (for
        LEFT facts; default: the built-in thresholds)."""
        c, kind, v = self.c, fact.kind, fact.value
        if kind == MSG_CUSTOMER:
            c["msgs_customer"] += sign
        elif kind == MSG_AGENT:
            c["msgs_agent"] += sign
        elif kind == REPLY:
            reply = self._own("_reply")
            # (A sign is a count: a conversation read back holds equal facts as one fact, n times.)
            if sign > 0:
                reply.add(v, sign)
            else:
                reply.remove(v, -sign)
            if v > _SLOW_MS:
                c["slow_replies"] += sign
        elif kind == ARRIVAL:
            c["arrivals"] += sign
        elif kind == FRT:
            frt = self._own("_frt")
            if sign > 0:
                frt.add(v, sign)
            else:
                frt.remove(v, -sign)
        elif kind == LEFT:
            c["left"] += sign
            if v < 0:
                c["abandoned"] += sign
            else:
                for name, limit in sl if sl is not None else _sl_counters(SL_THRESHOLDS_S):
                    if v <= limit:
                        c[name] = c.get(name, 0) + sign
        elif kind == ABANDON_WAIT:
            c["abandon_wait_ms"] += sign * v
        elif kind in (UNANSWERED_CLOSED, WAIT_CLOSED, UNANSWERED_BOT_CLOSED, WAIT_BOT_CLOSED):
            pass  # read by the platform rules only
        elif kind.startswith(GMV_PREFIX):
            pass  # read by the scorecard's day state only
        elif kind == LAST_REPLY:
            c["replied_convs"] += sign
        elif kind == CONVERTED:
            c["ordered_convs"] += sign
        elif kind == TRANSFER_OUT:
            c["transfers_out"] += sign
        elif kind == CSAT:
            c["csat_n"] += sign
            c["csat_sum"] += sign * v
            if v >= 4:
                c["csat_satisfied"] += sign
        elif kind.startswith(CLOSED_PREFIX):
            c["closed"] += sign
            reason = kind[len(CLOSED_PREFIX) :]
            if reason == "resolved":
                c["closed_resolved"] += sign
            elif reason == "bot_resolved":
                c["closed_bot"] += sign
            if v >= 0:
                c["handled"] += sign
                c["handle_ms"] += sign * v
        else:
            raise ValueError(f"unknown fact kind {kind!r}")

    def merge(self, other: Bucket, sign: int = 1) -> None:
        c = self._c
        if isinstance(c, bytes):
            c = self._thaw()
        oc = other._c  # (`_parts`, inline: merging is the tick's most frequent step, and this builds no tuple)
        if isinstance(oc, bytes):
            counts, frt, reply = _unpacked(oc)
        else:
            counts, frt, reply = oc.items(), other._frt, other._reply
        get = c.get
        for k, n in counts:
            c[k] = get(k, 0) + sign * n  # (not +=: a missing name would call `__missing__`, a Python frame)
        if frt is not NO_SAMPLES:
            self._own("_frt").merge(frt, sign)
        if reply is not NO_SAMPLES:
            self._own("_reply").merge(reply, sign)

    def same(self, other: Bucket) -> bool:
        """Whether the two give the very same figures: counters (a missing one reads 0) and distributions."""
        counts, frt, reply = self._parts()
        o_counts, o_frt, o_reply = other._parts()
        return ({k: n for k, n in counts if n} == {k: n for k, n in o_counts if n}
                and frt.same(o_frt) and reply.same(o_reply))

    def is_empty(self) -> bool:
        counts, frt, reply = self._parts()
        return frt.count == 0 and reply.count == 0 and not any(n for _k, n in counts)

    def copy(self) -> Self:
        """A thawed copy (to change)."""
        counts, frt, reply = self._parts()
        out = type(self)()
        out._c = Counts(counts)
        out._frt = NO_SAMPLES if frt is NO_SAMPLES else frt.copy()
        out._reply = NO_SAMPLES if reply is NO_SAMPLES else reply.copy()
        return out

    def to_json(self) -> dict[str, Any]:
        counts, frt, reply = self._parts()
        return {"c": {k: n for k, n in counts if n}, "frt": frt.to_json(), "reply": reply.to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Bucket:
        out = cls()
        for k, n in raw["c"].items():
            if k in _KNOWN or k.startswith("sl_"):  # sl_<X>: one per configured threshold
                out.c[k] = int(n)
        out._frt = _dist_or_none(raw["frt"])
        out._reply = _dist_or_none(raw["reply"])
        return out


class SourceBucket(Bucket):
    """Stage 1's bucket, the one facts are added to and retracted from (`apply`): its distributions keep their
    values (`Samples`), so a retracted maximum leaves the exact runner-up. Stage 2 sums what it hands on."""

    __slots__ = ()
    DIST = Samples


def _dist_or_none(raw: list[Any]) -> Dist:
    d = Dist.from_json(raw)
    return NO_SAMPLES if d.count == 0 and d.total_ms == 0 and d.max_ms == 0 and not d.bins else d


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def with_span(figures: WindowFigures, span_ms: int) -> WindowFigures:
    """`figures` restated for a window covering `span_ms`: its span and its rates (a copy when they change).

    METRICS.md: every window states the span it actually covers, and every per-minute rate divides
    by that span, never by the window's nominal width."""
    span_s = span_ms / 1000
    if figures.get("span_s") == span_s:
        return figures
    out = figures.copy()
    out["span_s"] = span_s
    out["arrivals_per_min"] = figures["arrivals"] * 60_000 / span_ms
    return out


def window_figures(total: Bucket, span_ms: int, sl_thresholds_s: tuple[int, ...] = SL_THRESHOLDS_S) -> WindowFigures:
    """The API's per-window figures from the sum of a window's buckets (null where no data);
    `span_ms` is the event time the window covers (the span its rates divide by); `sl_thresholds_s`:
    the view's queue's service-level thresholds X (config.sl_thresholds_for)."""
    c = _ZEROS.copy()  # a missing counter reads 0 here without a Python call (most are missing)
    c.update(total.counts())
    reply: ReplySummary = {**total.reply.summary(), "slow": c["slow_replies"] if total.reply.count else None}
    return {
        "arrivals": c["arrivals"],
        "arrivals_per_min": c["arrivals"] * 60_000 / span_ms,
        "span_s": span_ms / 1000,
        "frt": total.frt.summary(),
        "reply": reply,
        "sl": {str(t): _ratio(c.get(f"sl_{t}", 0), c["left"]) for t in sl_thresholds_s},
        "left_unanswered": c["left"],
        "abandoned": c["abandoned"],
        "abandon_rate": _ratio(c["abandoned"], c["left"]),
        # Mean patience (exponential, maximum likelihood): all waiting time of those who left the unanswered
        # state (answered waits are censored patience) over those who gave up. Erlang A's input.
        "patience_s": (
            None if c["abandoned"] <= 0 else (total.frt.total_ms + c["abandon_wait_ms"]) / c["abandoned"] / 1000
        ),
        "closed": c["closed"],
        "aht_s": None if c["handled"] <= 0 else c["handle_ms"] / c["handled"] / 1000,
        "transfer_rate": _ratio(c["transfers_out"], c["arrivals"]),
        "self_service_rate": _ratio(c["closed_bot"], c["closed"]),
        "resolution_rate": _ratio(c["closed_resolved"] + c["closed_bot"], c["closed"]),
        "csat": {
            "mean": _ratio(c["csat_sum"], c["csat_n"]),
            "satisfied_share": _ratio(c["csat_satisfied"], c["csat_n"]),
            "participation": _ratio(c["csat_n"], c["closed"]),
            "count": c["csat_n"],
        },
        "conversion_rate": _ratio(c["ordered_convs"], c["replied_convs"]),
        # Distinct conversations replied to in the window (conversion_rate's denominator; an agent's 接待量).
        "replied_convs": c["replied_convs"],
        "platform_rule": {
            "counted": c["rule_counted"],
            "met": c["rule_met"],
            "met_rate": _ratio(c["rule_met"], c["rule_counted"]),
        },
        "answer_question_ratio": _ratio(c["msgs_agent"], c["msgs_customer"]),
        "messages": {"customer": c["msgs_customer"], "agent": c["msgs_agent"]},
    }
