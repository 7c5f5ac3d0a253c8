"""The scorecard's day state (shared/SCORECARD.md): exact sums per agent per local day, per shop per local hour.

Stage 1 turns each fact delta of a conversation into *contributions*: (who, period start, field, amount),
`who` being an agent scope ("@agent:<id>": per local day in SCORECARD_TZ) or a shop scope ("@shop:<id>":
per local hour, for the platform standing's projection). A conversation keeps its own contributions in
its record (`ConvDays`), so they are replayed, retracted and rebuilt with it, exactly like its facts;
a partition's totals are the sum over its conversations plus a *ledger* of the conversations that left
the table (their tombstones expired). Moving a tombstone's contributions into the ledger touches two
keys; `PartitionDays` makes that crash-safe: the ledger entry is written first and names the
conversations it settled, so a rebuild counts each conversation once whichever write landed.

Every figure is a sum of integers (times in ms, GMV in 1/GMV_SCALE units): partitions, workers and days
add exactly. Stage 2 adds the partitions' totals (`DayMerger`) and publishes one record per key.
Bounded: agent days are kept DAY_KEEP_DAYS (the current and the previous month), shop hours
HOUR_KEEP_DAYS (today and the 7 trailing days of the projection).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .buckets import ARRIVAL, CLOSED_PREFIX, CONVERTED, CSAT, FRT, GMV_PREFIX, LAST_REPLY, REPLY, Fact
from .platform_rules import PlatformRule
from .scope import Scope, is_agent_scope
from .wire import SHOP_PREFIX

DEFAULT_TZ: Final = "Asia/Shanghai"
DAY_KEEP_DAYS: Final = 62  # agents x 62 days: the current and the previous month
HOUR_KEEP_DAYS: Final = 8  # today and the 7 trailing days the projection reads
_MINUTE_MS: Final = 60_000
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
# Fields of an agent-day's sums (services.core.scorecard.AgentSums, gmv as "gmv:<currency>").
AGENT_FIELDS: Final = ("frt_ms", "frt_n", "reply_ms", "reply_n", "rule_counted", "rule_met", "csat_n",
                       "csat_satisfied", "closed", "closed_resolved", "chats_handled", "converted")
# Fields of a shop-hour's sums: buyers arrived, the platform rule's counted and met, human replies' time.
SHOP_FIELDS: Final = ("arrivals", "rule_counted", "rule_met", "reply_ms", "reply_n")

Sums = Counter[str]
PeriodKey = tuple[str, int]  # (who, period start ms)
ConvDays = dict[PeriodKey, Sums]
DayKey = tuple[Scope, int]  # (tenant, shop, platform, who), period start ms


class ScorecardTzError(ValueError):
    pass


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScorecardTzError(f"SCORECARD_TZ={name!r} is not a time zone (e.g. Asia/Shanghai)") from None


def scorecard_tz() -> str:
    """SCORECARD_TZ, checked (a service calls this at start: a bad zone is refused, never guessed)."""
    name = os.environ.get("SCORECARD_TZ") or DEFAULT_TZ
    _zone(name)
    return name


@lru_cache(maxsize=16_384)
def _starts(minute: int, tz: str) -> tuple[int, int]:
    """(local day start, local hour start) in epoch ms of the minute starting at minute x 60 s. Every zone's
    offset is a whole number of minutes, so a minute lies in one local hour and one local day."""
    local = datetime.fromtimestamp(minute * 60, tz=_zone(tz))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    hour = local.replace(minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000), int(hour.timestamp() * 1000)


def day_start(ts: int, tz: str) -> int:
    """The start of the local day [start, next start) holding ts."""
    return _starts(ts // _MINUTE_MS, tz)[0]


def hour_start(ts: int, tz: str) -> int:
    return _starts(ts // _MINUTE_MS, tz)[1]


def local_date(start_ms: int, tz: str) -> str:
    return datetime.fromtimestamp(start_ms / 1000, tz=_zone(tz)).date().isoformat()


def month_start(ts: int, tz: str) -> int:
    local = datetime.fromtimestamp(ts / 1000, tz=_zone(tz))
    return int(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def previous_day_start(start: int, tz: str) -> int:
    """The local day before the one starting at `start` (23 or 25 hours earlier across a DST change)."""
    return day_start(start - 1, tz)


def local_hour(start_ms: int, tz: str) -> int:
    return datetime.fromtimestamp(start_ms / 1000, tz=_zone(tz)).hour


def contributions(fact: Fact, shop_id: str, rule: PlatformRule | None, tz: str) -> Iterator[tuple[str, int, str, int]]:
    """What one fact adds to the day state: (who, period start, field, amount), for sign +1."""
    kind, ts, q, v = fact.kind, fact.ts, fact.queue, fact.value
    outcome = None if rule is None else rule.outcome(kind, ts, v)
    if is_agent_scope(q):
        day = day_start(ts, tz)
        if kind == FRT:
            yield q, day, "frt_ms", v
            yield q, day, "frt_n", 1
        elif kind == REPLY:
            yield q, day, "reply_ms", v
            yield q, day, "reply_n", 1
        elif kind == CSAT:
            yield q, day, "csat_n", 1
            if v >= 4:
                yield q, day, "csat_satisfied", 1
        elif kind.startswith(CLOSED_PREFIX):
            yield q, day, "closed", 1
            if kind == CLOSED_PREFIX + "resolved":
                yield q, day, "closed_resolved", 1
        elif kind == LAST_REPLY:
            yield q, day, "chats_handled", 1
        elif kind == CONVERTED:
            yield q, day, "converted", 1
        elif kind.startswith(GMV_PREFIX):
            yield q, day, kind, v
        if outcome is not None:  # the rule's outcome, by its own time (a miss: when the limit passed)
            at, met = outcome
            at_day = day_start(at, tz)
            yield q, at_day, "rule_counted", 1
            if met:
                yield q, at_day, "rule_met", 1
        return
    who = SHOP_PREFIX + shop_id
    if kind == ARRIVAL:
        yield who, hour_start(ts, tz), "arrivals", 1
    elif kind == REPLY:
        hour = hour_start(ts, tz)
        yield who, hour, "reply_ms", v
        yield who, hour, "reply_n", 1
    if outcome is not None:
        at, met = outcome
        at_hour = hour_start(at, tz)
        yield who, at_hour, "rule_counted", 1
        if met:
            yield who, at_hour, "rule_met", 1


def keep_from(who: str, now: int, tz: str) -> int:
    """The oldest period start of `who`'s kind still kept at `now`."""
    today = day_start(now, tz)
    return today - (DAY_KEEP_DAYS if is_agent_scope(who) else HOUR_KEEP_DAYS) * _DAY_MS


def _fields_of(who: str) -> tuple[str, ...]:
    return AGENT_FIELDS if is_agent_scope(who) else SHOP_FIELDS


def days_to_json(days: Mapping[PeriodKey, Sums]) -> list[Any]:
    """A conversation's contributions as its record (and its 24 h tombstone) keeps them: `[who, start, counts]`,
    counts by position in its kind's fields (trailing zeros left out), then `{field: n}` for any other field
    (GMV per currency). Named fields cost ~150 bytes per agent-day, and a small floor's day keeps ~170,000
    tombstones (benchmarks/PROFILE.md)."""
    out: list[Any] = []
    for (who, start), sums in days.items():
        if not any(sums.values()):
            continue
        fields = _fields_of(who)
        counts = [sums.get(f, 0) for f in fields]
        while counts and not counts[-1]:
            counts.pop()
        other = {k: n for k, n in sums.items() if n and k not in fields}
        out.append([who, start, counts, other] if other else [who, start, counts])
    return out


def days_of(raw: Any) -> ConvDays:
    """`days_to_json`'s reading; also of records written before counts were positional (`[who, start, {field: n}]`)."""
    out: ConvDays = {}
    for who, start, counts, *other in raw or ():
        if isinstance(counts, dict):
            sums = Counter({str(k): int(n) for k, n in counts.items() if n})
        else:
            fields = _fields_of(who)
            if len(counts) > len(fields):
                raise ValueError(f"day contributions of {who!r}: {len(counts)} counts for {len(fields)} fields")
            sums = Counter({f: int(n) for f, n in zip(fields, counts, strict=False) if n})  # (trailing zeros left out)
        for extra in other:
            sums.update({str(k): int(n) for k, n in extra.items() if n})
        out[(str(who), int(start))] = sums
    return out


def _add(into: Sums, sums: Mapping[str, int], sign: int = 1) -> None:
    for k, n in sums.items():
        into[k] += sign * n
        if not into[k]:
            del into[k]


@dataclass(slots=True)
class LedgerEntry:
    """The settled part of one key: sums of the conversations that left the table, the flush that last wrote
    it, and the conversations that flush settled into it (a rebuild must not count them twice)."""

    sums: Sums = field(default_factory=Counter)
    seq: int = 0
    settled: list[str] = field(default_factory=list)

    def to_json(self, partition: int) -> dict[str, Any]:
        return {"pt": partition, "s": dict(self.sums), "q": self.seq, "k": self.settled}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LedgerEntry:
        return cls(Counter({str(k): int(n) for k, n in raw["s"].items()}), int(raw["q"]), list(raw.get("k", ())))


class PartitionDays:
    """The day state of one input partition: totals (what stage 2 gets), the ledger, what changed."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.totals: dict[DayKey, Sums] = {}
        self.ledger: dict[DayKey, LedgerEntry] = {}
        self.dirty: set[DayKey] = set()
        self.ledger_dirty: set[DayKey] = set()
        self.ledger_gone: set[DayKey] = set()
        # Tombstones a ledger entry already settled though the tombstone is still there (its delete was lost in
        # a crash): per conversation key, the entries that hold it.
        self.presettled: dict[str, set[DayKey]] = {}
        self.seq = 0
        self.pruned_day = -1

    # --- contributions --------------------------------------------------------------------------------------
    def apply(self, days: ConvDays, tenant: str, shop_id: str, platform: str, rule: PlatformRule | None,
              delta: Iterable[tuple[Fact, int]]) -> None:
        """Add a conversation's fact delta to its own contributions and to the partition's totals."""
        for fact, sign in delta:
            for who, start, name, amount in contributions(fact, shop_id, rule, self.tz):
                own = days.get((who, start))
                if own is None:
                    own = days[(who, start)] = Counter()
                own[name] += sign * amount
                if not own[name]:
                    del own[name]
                    if not own:
                        del days[(who, start)]
                key = (Scope(tenant, shop_id, platform, who), start)
                self._total(key)[name] += sign * amount
                self.dirty.add(key)

    def _total(self, key: DayKey) -> Sums:
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = Counter()
        return total

    def load(self, tenant: str, shop_id: str, platform: str, days: ConvDays, conv_key: str | None = None) -> None:
        """A conversation's (or tombstone's) contributions, read back at a rebuild: into the totals, except what
        a ledger entry already settled (`load_ledger` first)."""
        skip = self.presettled.get(conv_key, set()) if conv_key is not None else set()
        for (who, start), sums in days.items():
            key = (Scope(tenant, shop_id, platform, who), start)
            if key in skip:
                continue
            _add(self._total(key), sums)
            self.dirty.add(key)

    def load_ledger(self, key: DayKey, entry: LedgerEntry) -> None:
        self.ledger[key] = entry
        self.seq = max(self.seq, entry.seq)
        _add(self._total(key), entry.sums)
        self.dirty.add(key)
        for conv_key in entry.settled:
            self.presettled.setdefault(conv_key, set()).add(key)

    def unsettled(self, conv_key: str, tenant: str, shop_id: str, platform: str, days: ConvDays) -> ConvDays:
        """A tombstone's contributions as its conversation comes back (an event after eviction), less what a
        ledger entry already settled (its delete was lost in a crash): those stay the ledger's."""
        skip = self.presettled.pop(conv_key, None)
        if not skip:
            return days
        return {(who, start): sums for (who, start), sums in days.items()
                if (Scope(tenant, shop_id, platform, who), start) not in skip}

    # --- settling tombstones ----------------------------------------------------------------------------------
    def settle(self, settled: Iterable[tuple[str, str, str, str, ConvDays]]) -> None:
        """Move expiring tombstones' contributions (conv key, tenant, shop, platform, days) into the ledger.
        The totals do not change. The caller writes `ledger_dirty` entries, then deletes the tombstones."""
        self.seq += 1
        touched: set[DayKey] = set()
        for conv_key, tenant, shop_id, platform, days in settled:
            skip = self.presettled.pop(conv_key, set())
            for (who, start), sums in days.items():
                key = (Scope(tenant, shop_id, platform, who), start)
                if key in skip or key in self.ledger_gone:
                    continue
                entry = self.ledger.get(key)
                if entry is None:
                    entry = self.ledger[key] = LedgerEntry()
                if key not in touched:
                    touched.add(key)
                    entry.settled = []
                entry.seq = self.seq
                entry.settled.append(conv_key)
                _add(entry.sums, sums)
        self.ledger_dirty |= touched

    def take_ledger_writes(self) -> tuple[list[tuple[DayKey, LedgerEntry]], list[DayKey]]:
        """(entries to write, entries to delete) since the last call."""
        writes = [(k, self.ledger[k]) for k in sorted(self.ledger_dirty) if k in self.ledger]
        gone = sorted(self.ledger_gone)
        self.ledger_dirty.clear()
        self.ledger_gone = set()
        return writes, gone

    # --- bounds -----------------------------------------------------------------------------------------------
    def prune(self, now: int) -> None:
        """Forget periods older than kept (once per local day of `now`); stage 2 gets tombstones."""
        today = day_start(now, self.tz)
        if today == self.pruned_day:
            return
        self.pruned_day = today
        for key in [k for k in self.totals if k[1] < keep_from(k[0].queue, now, self.tz)]:
            del self.totals[key]
            self.dirty.add(key)
            if self.ledger.pop(key, None) is not None:
                self.ledger_gone.add(key)

    def mark_all_dirty(self) -> None:
        self.dirty.update(self.totals)

    def drain(self) -> list[tuple[DayKey, dict[str, int] | None]]:
        out: list[tuple[DayKey, dict[str, int] | None]] = []
        for key in self.dirty:
            total = self.totals.get(key)
            if total is not None and not any(total.values()):
                del self.totals[key]
                total = None
            out.append((key, None if total is None else {k: n for k, n in total.items() if n}))
        self.dirty.clear()
        return out


def prune_conv_days(days: ConvDays, now: int, tz: str) -> None:
    """A conversation's contributions to periods no longer kept (a conversation lives a day or so: rare)."""
    for key in [k for k in days if k[1] < keep_from(k[0], now, tz)]:
        del days[key]


class DayMerger:
    """Stage 2: the partitions' totals per key added up (each partition's value replaces its last one)."""

    def __init__(self) -> None:
        self.parts: dict[DayKey, dict[tuple[str, int], Sums]] = {}
        self.totals: dict[DayKey, Sums] = {}
        self.dirty: set[DayKey] = set()
        # Per (tenant, shop, platform): its shop-hour keys held, and the shops changed since `take_changed_shops`.
        self.shops: dict[tuple[str, str, str], set[int]] = {}
        self.changed_shops: set[tuple[str, str, str]] = set()

    def put(self, src: str, part: int, scope: Scope, start: int, value: Mapping[str, int] | None) -> None:
        key = (scope, start)
        per = self.parts.get(key)
        old = None if per is None else per.pop((src, part), None)
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = Counter()
        if old is not None:
            _add(total, old, -1)
        if value is not None:
            new = Counter({k: int(n) for k, n in value.items()})
            _add(total, new)
            if per is None:
                per = self.parts[key] = {}
            per[(src, part)] = new
        elif per is not None and not per:
            del self.parts[key]
        if key not in self.parts:
            del self.totals[key]
        if scope.queue.startswith(SHOP_PREFIX):
            shop = (scope.tenant, scope.shop_id, scope.platform)
            starts = self.shops.setdefault(shop, set())
            if key in self.totals:
                starts.add(start)
            else:
                starts.discard(start)
                if not starts:
                    del self.shops[shop]
            self.changed_shops.add(shop)
        self.dirty.add(key)

    def total(self, key: DayKey) -> Sums | None:
        total = self.totals.get(key)
        return total if total else None

    def drain(self) -> list[tuple[DayKey, Sums | None]]:
        out = [(key, self.total(key)) for key in sorted(self.dirty)]
        self.dirty.clear()
        return out

    def shop_hours(self, shop: tuple[str, str, str]) -> dict[int, Sums]:
        """One (tenant, shop, platform)'s hour start -> sums."""
        scope = Scope(shop[0], shop[1], shop[2], SHOP_PREFIX + shop[1])
        return {start: self.totals[(scope, start)] for start in self.shops.get(shop, ())}

    def take_changed_shops(self) -> set[tuple[str, str, str]]:
        out, self.changed_shops = self.changed_shops, set()
        return out
