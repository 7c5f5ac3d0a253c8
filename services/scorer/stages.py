"""The scorer's three stages as plain classes: bytes in, records out, state in a mapping.

Faust only moves bytes between these and Kafka (see app.py), so the stages run the same
under a test harness with a dict as the table. Each stage keeps its durable state in a
table (a changelogged mapping) and derives its in-memory aggregates from it, rebuilding
them after a rebalance; that is what makes a SIGKILL and a replay change no number.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from services.core.agents import AgentLive, AgentState, PartitionAgents
from services.core.alert_config import AlertRules
from services.core.alert_judging import judged
from services.core.alert_signals import Signals, paging_scopes, signals_for_views
from services.core.alerts import Alert, AlertEngine
from services.core.bucket_widths import all_widths
from services.core.buckets import Bucket
from services.core.conversation import Conversation, ConvEvent, ConvState, state_from_compact
from services.core.days import (
    DayMerger,
    LedgerEntry,
    PartitionDays,
    day_start,
    days_of,
    scorecard_tz,
)
from services.core.events import EventError, event_from_record, split_state_key, state_key
from services.core.figures import QueueView
from services.core.limits import NameBudget, TenantLimits
from services.core.merge import QueueMerger, iso
from services.core.partials import PartitionPartials, live_key
from services.core.platform_rules import platform_rules, rule_for
from services.core.scope import ALL, Scope, agent_scope, is_agent_scope, queue_total
from services.core.scorecard import ScorecardConfig, score_platform
from services.core.scorecard_report import agent_sums, budget, rule_standing
from services.core.waits import LiveSums
from services.core.windows import SrcKey, Twin, Widened
from services.core.wire import (
    ALERT_ACK_PREFIX,
    DAY_LEDGER_PREFIX,
    ENGINE_KEY_PREFIX,
    SLOT_AGENT_STATE,
    SLOT_AGENTS,
    SLOT_LIVE,
    SLOT_RESEND_BEGIN,
    SLOT_RESEND_END,
    SLOT_WATERMARK,
    SRC_AGENTS,
    SRC_CONVERSATIONS,
    SRC_DAYS,
    WATERMARK_KEY_PREFIX,
    PartialKey,
    alert_partition,
    bundle_partials,
    day_view_key,
    decode_conversation_record,
    kept,
    keyed_width,
    ledger_key,
    parse_ledger_key,
    parse_partial_key,
    parse_watermark_key,
    partial_key,
    queue_partition,
    record_partition,
    source_prefix,
    source_prefix_of,
    view_key,
    watermark_key,
)

from .conversation_store import ConversationStore, Table
from .metrics import PipelineMetrics
from .timed_keys import TimedKeys

log = logging.getLogger(__name__)

NO_SCOPE = Scope("", "", "", "")


def resend_markers(srcs: tuple[str, ...], partitions: set[int], slot: int, queue_partitions: int) -> list[Out]:
    """The start (SLOT_RESEND_BEGIN) or end (SLOT_RESEND_END) of a whole re-send of these sources' partitions,
    on every queue partition (services.core.wire)."""
    return [Out("partials", partial_key(src, p, NO_SCOPE, slot), b"1", qp)
            for p in sorted(partitions) for src in srcs for qp in range(queue_partitions)]


Handed = tuple[PartialKey, Bucket]  # a partial bucket's parsed key and the bucket (`Out.local`)


class Out(NamedTuple):
    topic: str  # "agent_changes", "partials", "views", "alerts", "dead_letter"
    key: bytes
    value: bytes | None
    partition: int | None = None
    # A partial bucket as stage 1 holds it, with its parsed key: stage 2 in the same process takes it as it is
    # instead of decoding `value` (app.py's handoff; stage 1 never changes a bucket it handed on).
    local: Handed | None = None


Rebuilding = Generator[None, None, list[Out]]  # a rebuild done a turn at a time: its value, the records to send
REBUILD_PER_TURN = 1_000  # conversations decoded between two turns of the worker's loop (~50 ms)


def turn(steps: Rebuilding) -> list[Out] | None:
    """One turn of a rebuild: None while it goes on, then its value."""
    try:
        next(steps)
    except StopIteration as done:
        records: list[Out] = done.value
        return records
    return None


def all_at_once(steps: Rebuilding) -> list[Out]:
    """A rebuild run to its end without a turn of the loop (its value)."""
    while (records := turn(steps)) is None:
        pass
    return records


BUNDLE_MAX_BYTES = 256 * 1024  # a bundle's keys and values at most (or one partial alone): inside a producer request


def in_bundles(records: list[Out], next_key: Callable[[], bytes], max_bytes: int = BUNDLE_MAX_BYTES) -> list[Out]:
    """`records` as they go to Kafka: the partials in bundles, one per partials partition (more for a large send:
    a bundle holds at most `max_bytes` of keys and values, or one partial larger than that, which is no larger
    than it went alone before bundles), each in the order given (services.core.wire); the rest as they are."""
    if not records:  # (most of stage 1's per-event sends)
        return records
    out: list[Out] = []
    per_partition: dict[int | None, list[list[tuple[bytes, bytes | None]]]] = {}
    sizes: dict[int | None, int] = {}
    for r in records:
        if r.topic != "partials":
            out.append(r)
            continue
        size = len(r.key) + len(r.value or b"")
        chunks = per_partition.get(r.partition)
        if chunks is None:
            chunks = per_partition[r.partition] = [[]]
            sizes[r.partition] = 0
        elif chunks[-1] and sizes[r.partition] + size > max_bytes:
            chunks.append([])
            sizes[r.partition] = 0
        chunks[-1].append((r.key, r.value))
        sizes[r.partition] += size
    for partition, chunks in per_partition.items():
        out.extend(Out("partials", next_key(), bundle_partials(chunk), partition) for chunk in chunks)
    return out


class ConversationStage:
    """Stage 1: conversation state per key, partial aggregates per input partition."""

    def __init__(
        self, table: Table, metrics: PipelineMetrics, *, bucket_ms: int, grace_ms: int, horizon_ms: int,
        retention_ms: int, queue_partitions: int, event_clock: bool = False, cache_max: int = 200_000,
        cache_idle_ms: int = 60_000, tombstone_ms: int = 86_400_000, limits: TenantLimits | None = None,
        tz: str | None = None, hand_on: bool = False,
    ) -> None:
        self.table = table
        self.hand_on = hand_on  # partial buckets go out with the objects themselves too (`Out.local`)
        self.m = metrics
        self.bucket_ms, self.grace_ms, self.horizon_ms = bucket_ms, grace_ms, horizon_ms
        self.retention_ms, self.tombstone_ms = retention_ms, tombstone_ms
        self.queue_partitions = queue_partitions
        self.event_clock = event_clock
        # The conversations themselves: decoded from the table, cached while active, written back per batch.
        self.store = ConversationStore(table, cache_max=cache_max, cache_idle_ms=cache_idle_ms)
        self.parts: dict[int, PartitionPartials] = {}
        self.closed: dict[int, TimedKeys] = {}  # per partition: closed conversations by their last event
        self.tombs: dict[int, TimedKeys] = {}  # per partition: tombstones by their conversation's last event
        self.sent_watermark: dict[int, int] = {}
        self.written_watermark: dict[int, int] = {}  # per partition: as last written to the table
        self.resending: set[int] = set()  # rebuilt partitions whose whole re-send ends on the next tick
        self.revocations = 0  # `revoke` calls so far
        # The per-tenant name limits again, per partition (a defence behind ingest, which enforces them on
        # the whole stream: a partition sees a subset of it, so nothing ingest admitted is refused here).
        self.limits = limits or TenantLimits()
        self.names: dict[int, NameBudget] = {}
        # The scorecard's day state per partition (services.core.days), local days in `tz` (SCORECARD_TZ).
        self.tz = tz or scorecard_tz()
        self.days: dict[int, PartitionDays] = {}
        # The platforms' rules (PLATFORM_RULES), read once: every event needs its platform's (not os.environ each).
        self.rules = platform_rules()

    def twin(self, src_key: SrcKey, start: int, width: int, bucket: Bucket) -> Bucket | None:
        """This stage's own bucket of a source key's time and width, when it gives the same figures as `bucket` (stage
        2 in this process keeps it in place of its copy: `WindowStore.widen`); from then on this stage copies it before
        any change, as a bucket it handed on."""
        src, part, scope = src_key
        partials = self.parts.get(part) if src == SRC_CONVERSATIONS else None
        if partials is None or partials.width_of(start) != width:
            return None
        own = partials.buckets.get(scope, {}).get(start)
        if own is None or not own.same(bucket):
            return None
        partials.handed.add((scope, start))
        return own

    # --- rebalance -------------------------------------------------------------------------
    def revoke(self, partitions: set[int]) -> None:
        self.revocations += 1  # a rebuild under way puts nothing in place (`rebuilding`)
        for p in partitions:
            self.parts.pop(p, None)
            self.closed.pop(p, None)
            self.tombs.pop(p, None)
            self.sent_watermark.pop(p, None)
            self.written_watermark.pop(p, None)
            self.resending.discard(p)
            self.names.pop(p, None)
            self.days.pop(p, None)
        self.store.release(partitions)

    def rebuild(self, partitions: set[int]) -> list[Out]:
        """`rebuilding` all at once (tests, the in-process scorer)."""
        return all_at_once(self.rebuilding(partitions))

    def rebuilding(self, partitions: set[int], per_turn: int = REBUILD_PER_TURN) -> Rebuilding:
        """Derive the partials of newly owned partitions from the table, and re-send them whole (on the next tick,
        between resend markers): a generator that yields after each `per_turn` records, where the worker lets its
        loop run other work (a taken-over partition of a large floor is seconds of decoding, and stage 2's views,
        /metrics and the API's probes should not stop for them; ordering.py's `in_turns`). Its value: the records to
        send.

        The table is read at the start, only what it holds of these partitions kept (for the rebuild's length: on
        rocksdb:// a copy of their records, ~250 bytes a conversation; on memory:// the table's own); what is derived
        from it is built aside and put in place at the end, unless the stage was revoked meanwhile (then nothing is,
        and the next tick or batch rebuilds what it owns then). Nothing else changes these partitions' records
        meanwhile: their events wait for the stage's lock, which the caller holds, and a restore comes with a
        rebalance."""
        todo = {p for p in partitions if p not in self.parts}
        if not todo:
            return []
        revocations, started = self.revocations, time.monotonic()
        parts = {p: PartitionPartials(self.bucket_ms, self.rules) for p in todo}
        days = {p: PartitionDays(self.tz) for p in todo}
        written_watermark: dict[int, int] = {}
        records: list[tuple[bytes, bytes]] = []
        for key, raw in self.table.items():
            if key.startswith(DAY_LEDGER_PREFIX):
                lp, scope, start = parse_ledger_key(key)
                if lp in todo:
                    days[lp].load_ledger((scope, start), LedgerEntry.from_json(orjson.loads(raw)))
            elif key.startswith(WATERMARK_KEY_PREFIX):
                if (wp := parse_watermark_key(key)) in todo:
                    written_watermark[wp] = int(raw)
            elif record_partition(raw) in todo:
                records.append((key, raw))
        out = resend_markers((SRC_CONVERSATIONS, SRC_DAYS), todo, SLOT_RESEND_BEGIN, self.queue_partitions)
        closed: dict[int, list[tuple[int, bytes]]] = {p: [] for p in todo}
        tombs: dict[int, list[tuple[int, bytes]]] = {p: [] for p in todo}
        # Day contributions are loaded after the ledger (which says which tombstones it already settled).
        contributions: list[tuple[int, str, str, str, Any, str]] = []
        for i, (key, raw) in enumerate(records, 1):
            p, record, gone, days_raw = decode_conversation_record(raw)
            if gone is not None:
                tombs[p].append((int(gone[4]), key))
                if len(gone) > 6:  # the slots it held, all ended: re-asserted as for a conversation (below)
                    out.extend(self._spans(gone[0], agent, key, spans) for agent, spans in gone[6].items())
                if days_raw:
                    contributions.append((p, gone[0], gone[1], gone[2], days_raw, key.decode()))
            else:
                conv = Conversation.from_json(record)
                if days_raw:
                    contributions.append((p, conv.tenant, conv.shop_id, conv.platform, days_raw, key.decode()))
                part = parts[p]
                part.watermark = max(part.watermark, conv.last_event_ts)
                part.apply_facts(conv.tenant, conv.shop_id, conv.platform, [(f, n) for f, n in conv.facts.items()])
                part.apply_live(conv.tenant, conv.shop_id, conv.platform, None, live_key(conv.state))
                # Re-assert the slots each conversation held: idempotent, and repairs a change lost in a crash.
                if conv.state.assignee:
                    out.extend(self._spans(conv.tenant, agent, key, spans)
                               for agent, spans in conv.agent_spans().items())
                if conv.state.closed:
                    closed[p].append((conv.last_event_ts, key))
            if i % per_turn == 0:
                yield
                if self.revocations != revocations:
                    return []
        for p, wm in written_watermark.items():
            # The watermark as written after a batch's other writes, not the newest event of the conversations
            # read: a crash may have kept some writes of the batch after it, whose events are replayed (`flush`).
            parts[p].watermark = wm
        for i, (p, tenant, shop, platform, days_raw, conv_key) in enumerate(contributions, 1):
            days[p].load(tenant, shop, platform, days_of(days_raw), conv_key)
            if i % per_turn == 0:
                yield
                if self.revocations != revocations:
                    return []
        for p in todo:
            self.parts[p] = parts[p]
            self.days[p] = days[p]
            self.store.own(p)
            self.closed[p] = TimedKeys(sorted(closed[p]))
            self.tombs[p] = TimedKeys(sorted(tombs[p]))
            parts[p].mark_all_dirty()
            days[p].mark_all_dirty()
        self.written_watermark.update(written_watermark)
        self.resending |= todo
        self.m.rebuilds.labels("conversations").inc()
        log.info("rebuilt stage 1", extra={"partitions": sorted(todo), "records": len(records),
                                           "seconds": round(time.monotonic() - started, 3)})
        return out

    # --- events ----------------------------------------------------------------------------
    def on_event(self, key: bytes | None, value: bytes | None, partition: int, now_ms: int) -> list[Out]:
        try:
            if value is None:
                raise EventError("record has no value")
            ev = event_from_record(value)
        except EventError as exc:
            self.m.outcome["dead_letter"].inc()
            self.m.dead_letters.labels("invalid_event").inc()
            return [_dead_letter(key, value, partition, str(exc))]
        budget = self.names.get(partition)
        if budget is None:
            budget = self.names[partition] = NameBudget(self.limits)
        if (over := budget.admit(ev, ev.ts_ms)) is not None:
            self.m.outcome["dead_letter"].inc()
            self.m.dead_letters.labels(over.code).inc()
            return [_dead_letter(key, value, partition, over.reason)]
        part = self.parts[partition]
        part.watermark = max(part.watermark, ev.ts_ms)
        # As the watermark moves, not only on ticks (memory stays flat); the call only once a boundary may move.
        if (clock := self._width_clock(part, now_ms)) >= part.widths.next_move:
            part.widen(clock)
        self.m.event_age.observe(max(0.0, (now_ms - ev.ts_ms) / 1000))
        if ev.type == "agent.status":
            self.m.outcome["forwarded"].inc()
            return [Out("agent_changes", ev.key.encode(), orjson.dumps({"k": "status", "e": ev.to_record()}))]
        ckey = ev.key.encode()
        conv, gone_ts = self._load(ckey, partition)
        wm = part.watermark
        if gone_ts is not None and (ev.ts_ms <= gone_ts or ev.ts_ms < wm - self.horizon_ms):
            # Evicted, and the event is no newer than its last one (a duplicate or a straggler) or older than
            # every window: too old (METRICS.md), counted and not applied. A later rating or order still
            # counts, in the conversation's last queue.
            self.m.outcome["too_old"].inc()
            self.m.late_events.inc()
            return []
        if conv is None:
            if ev.ts_ms < wm - self.horizon_ms:
                # Unknown and older than every window: a straggler of an evicted conversation.
                self.m.outcome["too_old"].inc()
                self.m.late_events.inc()
                return []
            conv = Conversation(ev.tenant, ev.shop_id, ev.platform)
        old_live, old_agent = live_key(conv.state), conv.state.active_agent
        if conv.has_seen(ev.event_id):
            self.m.outcome["duplicate"].inc()
            return []
        cev = ConvEvent.of(ev)
        if conv.too_old(cev):
            # Older than what the conversation folded (beyond the horizon): it cannot land where it belongs.
            self.m.outcome["too_old"].inc()
            self.m.late_events.inc()
            return []
        # Out of order, the events after it are replayed: the agents' slots may change anywhere in between.
        # (A conversation never assigned has held no slot: nothing to derive.)
        spans_before = None if conv.in_order(cev) else conv.agent_spans() if conv.state.assignee else {}
        delta, late = conv.apply_new(cev, wm, self.grace_ms, self.horizon_ms)
        self.m.outcome["applied"].inc()
        if late:
            self.m.late_events.inc()
        part.apply_facts(conv.tenant, conv.shop_id, conv.platform, delta)
        if delta:
            days = {} if conv.days is None else conv.days
            rule = self.rules.get(conv.platform)
            self.days[partition].apply(days, conv.tenant, conv.shop_id, conv.platform, rule, delta)
            conv.days = days or None
        part.apply_live(conv.tenant, conv.shop_id, conv.platform, old_live, live_key(conv.state))
        out: list[Out] = []
        new_agent = conv.state.active_agent
        if spans_before is not None:
            out.extend(self._span_changes(ckey, conv, spans_before))
        elif new_agent != old_agent:  # in order: the slot changed hands at this event
            if old_agent:
                out.append(self._assignment(conv.tenant, old_agent, ckey, False, ev.ts_ms))
            if new_agent:
                out.append(self._assignment(conv.tenant, new_agent, ckey, True, ev.ts_ms))
        conv.prune_facts(wm - self.horizon_ms)
        self.store.put(ckey, partition, conv)
        if conv.state.closed and (ev.type == "conversation.closed" or gone_ts is not None):
            self.closed[partition].append(conv.last_event_ts, ckey)
        return out

    def flush(self, partition: int) -> None:
        """Write the partition's changed conversations to the table, then evict what retention allows.
        Call it in the context of an event of that partition (Faust's changelog partition)."""
        watermark = self.parts[partition].watermark
        if self.store.write_back(partition):
            self._evict(partition, watermark)
            self._write_ledger(partition)
            self.store.drop_idle(partition, watermark)
        # Last: a rebuild that reads this watermark reads every write of the events it covers (the changelog
        # keeps a partition's writes in order), so the events it replays meet the watermark they met the first time.
        if watermark > self.written_watermark.get(partition, 0):
            self.written_watermark[partition] = watermark
            self.table[watermark_key(partition)] = str(watermark).encode()

    # Agent changes are keyed by the conversation's tenant's agent: two tenants' "a1" are two agents.
    def _assignment(self, tenant: str, agent_id: str, conversation_key: bytes, active: bool, ts: int) -> Out:
        value = orjson.dumps({"k": "assign", "c": conversation_key.decode(), "active": active, "ts": ts})
        return Out("agent_changes", state_key(tenant, agent_id).encode(), value)

    def _spans(self, tenant: str, agent_id: str, conversation_key: bytes, spans: list[list[int | None]]) -> Out:
        value = orjson.dumps({"k": "spans", "c": conversation_key.decode(), "s": spans})
        return Out("agent_changes", state_key(tenant, agent_id).encode(), value)

    def _span_changes(self, key: bytes, conv: Conversation, before: dict[str, list[list[int | None]]]) -> list[Out]:
        """The agents whose slot spans from this conversation changed, with their new spans."""
        settled = conv.base_ts  # the fold may have moved: compare both as seen from the new base

        def seen(spans: list[list[int | None]]) -> list[list[int | None]]:
            return [[None if s is not None and s <= settled else s, e] for s, e in spans
                    if e is None or e > settled]

        after = conv.agent_spans() if conv.state.assignee else {}
        return [
            self._spans(conv.tenant, agent, key, after.get(agent, []))
            for agent in sorted(before.keys() | after.keys())
            if seen(before.get(agent, [])) != after.get(agent, [])
        ]

    def _load(self, key: bytes, partition: int) -> tuple[Conversation | None, int | None]:
        """The conversation, and the time of its last event if it had been evicted (a tombstone)."""
        conv, tomb = self.store.get(key, partition)
        if tomb is not None:
            gone, days_raw = tomb
            # A closed conversation evicted after retention: an order or a rating can still come hours
            # later. It comes back closed, as it was (its last queue and agent, whom the rating credits, and the
            # replies an order converts), with nothing to retract (all out of every window), and with its day
            # contributions (the tombstone held them: they are the record's again).
            tenant, shop, platform, queue, last_ts, *kept = gone
            state = (state_from_compact(kept[0], last_ts) if kept  # (older tombstones kept no state)
                     else ConvState(queue=queue, opened=True, closed=True, answered=True))
            days = self.days[partition].unsettled(key.decode(), tenant, shop, platform, days_of(days_raw))
            conv = Conversation(tenant, shop, platform, base=state, state=state.copy(), base_ts=last_ts,
                                last_event_ts=last_ts, days=days or None)
            return conv, int(last_ts)
        return conv, None

    @property
    def cache(self) -> Mapping[bytes, Conversation]:
        """Every decoded conversation kept (all partitions)."""
        return self.store.cache

    def _evict(self, partition: int, watermark: int) -> None:
        closed = self.closed[partition]
        limit = watermark - self.retention_ms
        while closed and closed.first_ts() < limit:
            _ts, key = closed.popleft()
            conv, gone = self._load(key, partition)
            if conv is None or gone is not None:
                continue
            if conv.last_event_ts >= limit:  # touched again since it closed: look again later
                closed.append(conv.last_event_ts, key)
                continue
            self.store.bury(key, partition, conv)
            self.tombs[partition].append(conv.last_event_ts, key)
            self.m.evicted.inc()
        tombs = self.tombs[partition]
        expired: list[bytes] = []
        settled: list[tuple[str, str, str, str, Any]] = []
        while tombs and tombs.first_ts() < watermark - self.tombstone_ms:
            ts, key = tombs.popleft()
            raw = self.table.get(key)
            if raw is not None and (decoded := decode_conversation_record(raw))[2] is not None and decoded[2][4] == ts:
                expired.append(key)  # resurrected ones are not tombstones any more
                if decoded[3]:
                    t, shop, platform = decoded[2][:3]
                    settled.append((key.decode(), t, shop, platform, days_of(decoded[3])))
        if settled:
            # Their day contributions move to the ledger, written before the tombstones go (_write_ledger).
            self.days[partition].settle(settled)
            self._write_ledger(partition)
        for key in expired:
            del self.table[key]

    def _write_ledger(self, partition: int) -> None:
        days = self.days[partition]
        days.prune(self.parts[partition].watermark)
        writes, gone = days.take_ledger_writes()
        for (scope, start), entry in writes:
            self.table[ledger_key(partition, scope, start)] = kept(entry.to_json(partition))
        for scope, start in gone:
            self.table.pop(ledger_key(partition, scope, start), None)

    # --- ticks -----------------------------------------------------------------------------
    def _width_clock(self, part: PartitionPartials, now_ms: int) -> int:
        """The clock buckets widen by: the watermark, never ahead of the wall clock (stage 2 widens by the
        watermarks it gets from here, later)."""
        return part.watermark if self.event_clock else min(now_ms, part.watermark)

    def tick(self, now_ms: int, *, fast: bool = False) -> list[Out]:
        """The partials that changed. `fast` (between ticks): the queues' only; agents' own figures and the
        scorecard's days wait for the tick, as stage 2 uses them on the tick only, and so do the watermarks on
        the wall clock (stage 2's now is then the wall clock; on the event clock they are its now)."""
        out: list[Out] = []
        for p, part in self.parts.items():
            now = part.watermark if self.event_clock else max(now_ms, part.watermark)
            part.widen(self._width_clock(part, now_ms))
            part.prune(now - self.horizon_ms)
            for scope, slot, value, bucket in part.drain(queues_only=fast, hand_on=self.hand_on):
                width = part.width_of(slot)
                out.append(
                    Out("partials", partial_key(SRC_CONVERSATIONS, p, scope, slot, width, self.bucket_ms),
                        None if value is None else orjson.dumps(value),
                        queue_partition(scope.queue, self.queue_partitions),
                        None if bucket is None else (PartialKey(
                            SRC_CONVERSATIONS, p, scope, slot, keyed_width(width, self.bucket_ms)), bucket))
                )
            for (scope, start), sums in [] if fast else self.days[p].drain():
                out.append(
                    Out("partials", partial_key(SRC_DAYS, p, scope, start),
                        None if sums is None else orjson.dumps(sums),
                        queue_partition(scope.queue, self.queue_partitions))
                )
            if (not fast or self.event_clock) and part.watermark > self.sent_watermark.get(p, 0):
                self.sent_watermark[p] = part.watermark
                wm_key = partial_key(SRC_CONVERSATIONS, p, NO_SCOPE, SLOT_WATERMARK)
                wm_value = orjson.dumps(part.watermark)
                out.extend(Out("partials", wm_key, wm_value, qp) for qp in range(self.queue_partitions))
        if not fast and self.resending:  # all they hold went out above (`rebuild` marked it all changed)
            out += resend_markers((SRC_CONVERSATIONS, SRC_DAYS), self.resending, SLOT_RESEND_END, self.queue_partitions)
            self.resending = set()
        self.m.conversations_cached.set(sum(len(cache) for cache in self.store.caches.values()))
        return out


def _dead_letter(key: bytes | None, value: bytes | None, partition: int, reason: str) -> Out:
    body = {
        "reason": reason,
        "partition": partition,
        "key": None if key is None else key.decode("utf-8", "replace"),
        "value": None if value is None else value[:65536].decode("utf-8", "replace"),
    }
    return Out("dead_letter", key or b"", orjson.dumps(body))


class AgentStage:
    """Agent-keyed stage: presence, capacity and active chats joined per agent (the key: `state_key`).

    An agent idle past `retention_ms` (its last status or chat change that long ago), offline (or never with a
    status) and holding no chat is deleted from the table (`evict`): its view goes and it leaves every count.
    If it comes back it starts fresh.
    """

    SWEEP_EVERY_MS = 60_000  # how often (of the stage's clock) a partition's idle agents are looked for

    def __init__(self, table: Table, metrics: PipelineMetrics, *, queue_partitions: int,
                 horizon_ms: int = 3_720_000, retention_ms: int = 86_400_000, event_clock: bool = False) -> None:
        self.table = table
        self.m = metrics
        self.queue_partitions = queue_partitions
        self.horizon_ms = horizon_ms
        self.retention_ms = retention_ms
        self.event_clock = event_clock
        self.parts: dict[int, PartitionAgents] = {}
        # Every agent of the owned partitions, decoded once (at rebuild) and changed in place; the ones changed
        # since the last `flush` are written to the table then, once each, not on every change.
        self.states: dict[int, dict[str, AgentState]] = {}
        self.unwritten: dict[int, set[str]] = {}
        self.dirty_agents: dict[int, dict[str, AgentState]] = {}
        self.published_scope: dict[str, Scope] = {}
        # Per partition: each agent's newest time (what `evict` compares with the retention), and the newest
        # time of any agent change (the event clock: the stage's clock is the newest over its partitions).
        self.last_seen: dict[int, dict[str, int]] = {}
        self.watermarks: dict[int, int] = {}
        self.next_sweep: dict[int, int] = {}
        self.resending: set[int] = set()  # rebuilt partitions whose whole re-send ends on the next tick

    def revoke(self, partitions: set[int]) -> None:
        for p in partitions:
            self.parts.pop(p, None)
            self.states.pop(p, None)
            self.unwritten.pop(p, None)
            self.dirty_agents.pop(p, None)
            self.last_seen.pop(p, None)
            self.watermarks.pop(p, None)
            self.next_sweep.pop(p, None)
            self.resending.discard(p)

    def rebuilding(self, partitions: set[int]) -> Rebuilding:
        """`rebuild` in one turn (a floor's few thousand agents decode in tens of milliseconds)."""
        yield from ()  # (a generator with no turn)
        return self.rebuild(partitions)

    def rebuild(self, partitions: set[int]) -> list[Out]:
        """Load newly owned partitions from the table; all they hold is re-sent on the next tick (between the
        resend markers this returns and those of that tick)."""
        todo = {p for p in partitions if p not in self.parts}
        if not todo:
            return []
        self.resending |= todo
        for p in todo:
            self.parts[p] = PartitionAgents()
            self.states[p] = {}
            self.unwritten[p] = set()
            self.dirty_agents[p] = {}
            self.last_seen[p] = {}
            self.watermarks[p] = 0
        for key, raw in self.table.items():
            record = orjson.loads(raw)
            p = record["pt"]
            if p in todo:
                name = key.decode()
                agent = AgentState.from_json(record["a"])
                self.parts[p].replace({}, agent.contribution())
                self.states[p][name] = self.dirty_agents[p][name] = agent
                self._seen(p, name, agent)
        for p in todo:
            self.parts[p].mark_all_dirty()
        self.m.rebuilds.labels("agents").inc()
        return resend_markers((SRC_AGENTS,), todo, SLOT_RESEND_BEGIN, self.queue_partitions)

    def on_event(self, key: bytes | None, value: bytes | None, partition: int) -> list[Out]:
        if key is None or value is None:
            return []
        name = key.decode()
        known = self.states[partition].get(name)
        agent = AgentState() if known is None else known  # kept only if the change changes it
        before = agent.contribution()
        change = orjson.loads(value)
        if change["k"] == "status":
            e = change["e"]
            changed = agent.apply_status(
                e["ts"], e["event_id"], e["tenant"], e["shop_id"], e["platform"], e["status"], e["capacity"],
                tuple(e["queues"]),
            )
        elif change["k"] == "spans":
            changed = agent.set_spans(change["c"], change["s"])
        else:
            changed = agent.set_active(change["c"], bool(change["active"]), change.get("ts"))
        if changed:
            agent.prune(agent.latest_ts() - self.horizon_ms)
            self.parts[partition].replace(before, agent.contribution())
            self.states[partition][name] = agent
            self.unwritten[partition].add(name)
            self.dirty_agents[partition][name] = agent
            self._seen(partition, name, agent)
        return []

    def flush(self, partition: int) -> None:
        """Write the partition's agents changed since the last flush to the table, once each.
        Call it in the context of an event of that partition (Faust's changelog partition), before the
        offsets of the changes it covers are committed."""
        names = self.unwritten.get(partition)
        if not names:
            return
        states = self.states[partition]  # every unwritten name is in it: `evict` and `revoke` drop both
        for name in names:
            self.table[name.encode()] = kept({"pt": partition, "a": states[name].to_json()})
        names.clear()

    def _seen(self, partition: int, key: str, agent: AgentState) -> None:
        latest = agent.latest_ts()
        self.last_seen[partition][key] = latest
        self.watermarks[partition] = max(self.watermarks.get(partition, 0), latest)

    def now(self, wall_ms: int) -> int:
        """The stage's clock: the newest agent change seen (event clock), or the wall clock if later."""
        newest = max(self.watermarks.values(), default=0)
        return newest if self.event_clock else max(wall_ms, newest)

    def evict(self, partition: int, wall_ms: int) -> list[Out]:
        """Delete the partition's agents idle past the retention, offline and holding no chat (a tombstone in the
        changelog: call it in the context of an event of that partition), and withdraw their own views.
        Their contributions to queue counts go with the next `tick`."""
        now = self.now(wall_ms)
        if partition not in self.parts or now < self.next_sweep.get(partition, 0):
            return []
        self.next_sweep[partition] = now + self.SWEEP_EVERY_MS
        limit = now - self.retention_ms
        seen = self.last_seen[partition]
        out: list[Out] = []
        states = self.states[partition]
        for key in [k for k, ts in seen.items() if ts < limit]:
            agent = states.get(key)
            if agent is None:
                del seen[key]
                continue
            if agent.status not in (None, "offline") or agent.active or agent.latest_ts() >= limit:
                seen[key] = agent.latest_ts()  # online, away, busy or holding a chat: kept however old
                continue
            self.table.pop(key.encode(), None)  # (never written if it came and went between two flushes)
            del states[key]
            self.unwritten[partition].discard(key)
            del seen[key]
            self.parts[partition].replace(agent.contribution(), {})
            self.dirty_agents[partition].pop(key, None)
            scopes: set[Scope] = set()
            if (published := self.published_scope.pop(key, None)) is not None:
                scopes.add(published)
            if agent.status is not None:  # (a worker that rebuilt may not have published it yet)
                scopes.add(Scope(agent.tenant, agent.shop_id, agent.platform, agent_scope(split_state_key(key)[1])))
            for scope in scopes:
                out.append(Out("partials", partial_key(SRC_AGENTS, partition, scope, SLOT_AGENT_STATE), None,
                               queue_partition(scope.queue, self.queue_partitions)))
            self.m.agents_evicted.inc()
        return out

    def tick(self, *, fast: bool = False) -> list[Out]:
        """The queues' agent counters that changed, and (unless `fast`, between ticks) agents' own states."""
        out: list[Out] = []
        for p, part in self.parts.items():
            for scope, value in part.drain():
                out.append(
                    Out("partials", partial_key(SRC_AGENTS, p, scope, SLOT_AGENTS),
                        None if value is None else orjson.dumps(value),
                        queue_partition(scope.queue, self.queue_partitions))
                )
            if fast:
                continue
            for key, agent in self.dirty_agents[p].items():
                if agent.status is None:
                    continue  # no status event yet: the agent has no shop to be shown in
                scope = Scope(agent.tenant, agent.shop_id, agent.platform, agent_scope(split_state_key(key)[1]))
                qp = queue_partition(scope.queue, self.queue_partitions)
                old = self.published_scope.get(key)
                if old is not None and old != scope:  # moved shop: the old view goes
                    out.append(Out("partials", partial_key(SRC_AGENTS, p, old, SLOT_AGENT_STATE), None, qp))
                self.published_scope[key] = scope
                out.append(
                    Out("partials", partial_key(SRC_AGENTS, p, scope, SLOT_AGENT_STATE),
                        orjson.dumps(agent.summary()), qp)
                )
            self.dirty_agents[p] = {}
        if not fast and self.resending:
            out += resend_markers((SRC_AGENTS,), self.resending, SLOT_RESEND_END, self.queue_partitions)
            self.resending = set()
        return out


class QueueStage:
    """Stage 2: merges partials per queue, publishes the queue views and evaluates the alert rules.

    Alerts are evaluated once per queue partition, on the queue totals and on each shop; the engine's
    state travels with the alert changes it produced (see app.py: one Kafka transaction), so a
    restart continues the same episodes and neither loses nor repeats an alert.
    """

    SNAPSHOT_EVERY_MS = 10_000

    def __init__(self, table: Table, metrics: PipelineMetrics, *, bucket_ms: int, horizon_ms: int,
                 queue_partitions: int, event_clock: bool, rules: AlertRules | None = None,
                 agent_refresh_ticks: int = 1, tz: str | None = None) -> None:
        self.table = table
        self.agent_refresh_ticks = agent_refresh_ticks
        self.m = metrics
        self.bucket_ms, self.horizon_ms = bucket_ms, horizon_ms
        self.widths = all_widths(bucket_ms)
        self.queue_partitions = queue_partitions
        self.event_clock = event_clock
        self.rules = rules or AlertRules()
        self.merger = self.new_merger()
        self.days = DayMerger()  # the scorecard's day state, all stage 1 partitions added
        self.tz = tz or scorecard_tz()
        # platform_budget's readings per shop (tenant, shop, platform), recomputed for shops whose hours changed
        # and for all once a minute (the projection moves with the clock).
        self.budgets: dict[tuple[str, str, str], Signals] = {}
        self.budgets_minute = -1
        self.view_keys: dict[Scope, bytes] = {}
        self.owned: set[int] | None = None  # None: must rebuild from the table
        self.latest: dict[Scope, QueueView] = {}
        self.published: set[Scope] = set()  # keys of the views last published
        self.engines: dict[int, AlertEngine] = {}
        self.snapshot_at: dict[int, int] = {}
        self.latest_signals: dict[Scope, Signals] = {}
        self.to_write: dict[int, list[Widened]] = {}  # per queue partition: for `write_widened`
        # Stage 1 in this process (`ConversationStage.twin`): a widened source bucket is its bucket, not a second copy.
        self.twin: Twin | None = None
        # Per queue partition: the table writes of the batch being merged, each key's last (None: delete), for
        # `flush`. A batch re-sends many keys (a scope's live figures every fast step): written once each.
        self.unwritten: dict[int, dict[bytes, bytes | None]] = {}
        # Per source, its partition and the queue partition it re-sends on: the keys it sent since its resend began;
        # per queue partition, the re-sends that ended (swept together before the next partial: one table scan).
        self.resent: dict[tuple[str, int, int], set[bytes]] = {}
        self.ended: dict[int, list[tuple[str, int, set[bytes]]]] = {}

    def new_merger(self) -> QueueMerger:
        return QueueMerger(self.bucket_ms, self.agent_refresh_ticks)

    def revoke(self) -> None:
        self.owned = None
        self.to_write = {}
        self.unwritten = {}
        self.resent = {}
        self.ended = {}
        self.merger = self.new_merger()
        self.days = DayMerger()
        self.budgets = {}
        self.latest = {}
        self.engines = {}
        self.latest_signals = {}

    def rebuild(self, partitions: set[int], engine_states: dict[int, dict[str, object]] | None = None) -> None:
        if self.owned == partitions:
            return
        self.merger = self.new_merger()
        self.days = DayMerger()
        self.budgets = {}
        self.latest = {}
        self.owned = set(partitions)
        for key, value in self.table.items():
            self._apply(parse_partial_key(key), value, rebuilding=True)
        states = engine_states or {}
        self.engines = {
            qp: AlertEngine.from_json(states[qp], self.rules) if qp in states else AlertEngine(self.rules)
            for qp in partitions
        }
        self.m.rebuilds.labels("queues").inc()

    def on_event(self, key: bytes | None, value: bytes | None, partition: int, local: Handed | None = None) -> None:
        """One partial record; `partition`: the partials topic partition it came on (a watermark record comes on
        every partition, after the partials of its tick for that partition: what widening may go by); `local`:
        the record's key and bucket as stage 1 in this process sent them (`Out.local`), not decoded again.
        Its table write waits for `flush(partition)`."""
        if key is None:
            return
        writes = self.unwritten.get(partition)
        if writes is None:
            writes = self.unwritten[partition] = {}
        parsed = parse_partial_key(key) if local is None else local[0]
        if self.resent:
            resent = self.resent.get((parsed.src, parsed.part, partition))
            if resent is not None:
                resent.add(key)
        if parsed.slot in (SLOT_RESEND_BEGIN, SLOT_RESEND_END):  # a marker, not a partial: nothing to keep
            self._resend(parsed, partition)
            return
        if self.ended and partition in self.ended:  # (almost always empty: only after a re-send ended)
            self._sweep(partition, writes)
        # Exact size (services.core.wire.kept): in one process (InProcessScorer) the value is orjson's own bytes.
        writes[key] = None if value is None else bytes(memoryview(value))
        if parsed.width is not None:
            self._drop_narrower(parsed, writes)
        if local is not None:
            self.merger.put_bucket(parsed.src, parsed.part, parsed.scope, parsed.slot, local[1], parsed.width)
            return
        self._apply(parsed, value, rebuilding=False, partition=partition)

    def _resend(self, marker: PartialKey, partition: int) -> None:
        """A source's whole re-send began or ended on this queue partition (an end without a beginning, as after a
        restart of this stage in between, is ignored: nothing is deleted that was not proven stale)."""
        src_key = (marker.src, marker.part, partition)
        if marker.slot == SLOT_RESEND_BEGIN:
            self.resent[src_key] = set()
            self.merger.restart_clock(*src_key)
        elif (resent := self.resent.pop(src_key, None)) is not None:
            self.ended.setdefault(partition, []).append((marker.src, marker.part, resent))

    def _sweep(self, partition: int, writes: dict[bytes, bytes | None]) -> None:
        """Delete what the sources whose re-send ended held on this queue partition and did not send again."""
        ended = self.ended.pop(partition)
        self.merger.restart_widths({(src, part) for src, part, _ in ended}, partition, self._partition)
        resent_of = {source_prefix(src, part): resent for src, part, resent in ended}
        held_by = self.merger.store.src_buckets
        stale_keys = [k for k in itertools.chain(self.table, writes)
                      if (resent := resent_of.get(source_prefix_of(k))) is not None
                      and k not in resent]
        for key in stale_keys:
            if key in writes and writes[key] is None:
                continue  # deleted already (or listed twice: in the table and in this batch)
            stale = parse_partial_key(key)
            if stale.slot == SLOT_WATERMARK or self._partition(stale.scope) != partition:
                continue
            writes[key] = None
            self.m.partials_swept.inc()
            if stale.slot >= 0 and stale.src != SRC_DAYS:
                # A bucket: merged only if held as it is (a narrower one re-sent in its time has replaced it).
                held = held_by.get((stale.src, stale.part, stale.scope), {}).get(stale.slot)
                if held is None or held[0] != (stale.width or self.bucket_ms):
                    continue
            self._apply(stale, None, rebuilding=False, partition=partition)

    def flush(self, partition: int) -> None:
        """Write the merged partials of one queue partition to the table (the last value of each key). Call it
        in the context of an event of that partition (Faust's changelog partition), before the offsets of the
        records it covers are acknowledged, and before `tick` (`write_widened` writes the table as merged)."""
        if self.ended.get(partition):
            self._sweep(partition, self.unwritten.setdefault(partition, {}))
        for key, value in self.unwritten.pop(partition, {}).items():
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value

    def write_widened(self, partition: int) -> None:
        """Write the buckets the merger widened for one queue partition to the table in place of those they
        merged (so the table stays as small as the merger, and a rebuild reads them widened). Call it right
        after `tick`, in the context of an event of that partition (Faust's changelog partition)."""
        held_by = self.merger.store.src_buckets
        for (src, part, scope), merged, start, width, _bucket in self.to_write.pop(partition, ()):
            for s, w in merged:
                self.table.pop(partial_key(src, part, scope, s, w, self.bucket_ms), None)
            # As held now: a partial that came in since (written as it came) or a later widening replaced it.
            held = held_by.get((src, part, scope), {}).get(start)
            if held is not None and held[0] == width:
                self.table[partial_key(src, part, scope, start, width, self.bucket_ms)] = kept(held[1].to_json())

    def _drop_narrower(self, key: PartialKey, writes: dict[bytes, bytes | None]) -> None:
        """A widened bucket (or its tombstone) replaces every narrower one of its source within its time: their
        table entries go too (in `writes`), so that a rebuild never adds both (the merger replaces them in memory)."""
        assert key.width is not None
        for narrower in self.widths:
            if narrower >= key.width:
                break
            for start in range(key.slot, key.slot + key.width, narrower):
                writes[partial_key(key.src, key.part, key.scope, start, narrower, self.bucket_ms)] = None

    def _apply(self, key: PartialKey, value: bytes | None, rebuilding: bool, partition: int | None = None) -> None:
        src, part, scope, slot, width = key
        if slot == SLOT_WATERMARK:
            if value is not None:
                self.merger.put_watermark(src, part, int(orjson.loads(value)), partition)
            return
        owned = self.owned
        if rebuilding and owned is not None and queue_partition(scope.queue, self.queue_partitions) not in owned:
            return
        data = None if value is None else orjson.loads(value)
        if src == SRC_DAYS:
            self.days.put(src, part, scope, slot, data)
        elif slot == SLOT_LIVE:
            self.merger.put_live(src, part, scope, None if data is None else LiveSums.from_json(data))
        elif slot == SLOT_AGENTS:
            self.merger.put_agents(src, part, scope, None if data is None else AgentLive(*data))
        elif slot == SLOT_AGENT_STATE:
            self.merger.put_agent_state(scope, data)
        else:
            self.merger.put_bucket(src, part, scope, slot, None if data is None else Bucket.from_json(data), width)

    def _view_key(self, key: Scope) -> bytes:
        raw = self.view_keys.get(key)
        if raw is None:
            raw = self.view_keys[key] = view_key(key)
        return raw

    def _partition(self, key: Scope) -> int:
        """The views topic partition (and stage 2 partition) of a view or a day record: its queue's."""
        return queue_partition(key.queue, self.queue_partitions)

    def now(self, wall_ms: int) -> int:
        return self.merger.watermark if self.event_clock else wall_ms

    def tick(self, wall_ms: int, *, fast: bool = False) -> tuple[list[Out], list[Out]]:
        """(views to publish, alert changes and engine snapshots to publish in one transaction).

        `fast`: the step between ticks, as soon as partials came in: only the queue views they changed (and the
        scorecard's day records) go out; agents' views and the alert rules wait for the tick."""
        now = self.now(wall_ms)
        if now <= 0:
            return [], []
        self.merger.prune(now - self.horizon_ms)
        views = self.merger.views(now, changed_queues_only=fast)
        # After the windows moved to `now` (what widens is behind all of them); on the tick only, as it walks every
        # source's scopes.
        for widened in [] if fast else self.merger.widen(now, self._partition, paused=self.resent,
                                                           twin=self.twin):
            self.to_write.setdefault(self._partition(widened.src_key[2]), []).append(widened)
        self.m.partials_narrowed.set(self.merger.store.narrowed_puts)
        gone = [k for k in self.published if k not in views]  # (the merger updates one dict in place)
        self.published = set(views)
        self.latest = views
        # Views that went (a queue idle past every window with nothing open, an agent who left): a tombstone,
        # so they leave the compacted topic, every API replica, the wallboard and /metrics.
        view_out = [Out("views", self._view_key(k), None, self._partition(k)) for k in gone]
        if len(self.view_keys) > 2 * len(views):  # forget the encoded keys of views that went
            self.view_keys = {k: raw for k, raw in self.view_keys.items() if k in views}
        # Each queue view goes out with the alert rules' reading of it (`judged`): the API and the wallboard
        # colour by it, so they never judge by rules of their own (one judge, the alerts').
        # The rules read each queue view once a tick: for the views published now and for the scopes alerts are
        # judged on (queue totals and single shops; the roll-ups in between would repeat the same alert).
        plain = {k: v for k, v in views.items() if not is_agent_scope(k.queue)}
        alert_scopes = set() if fast else {k for k in plain if k == queue_total(k.queue) or k.shop_id != ALL}
        readings = signals_for_views(plain, self.rules, only=(self.merger.rebuilt & plain.keys()) | alert_scopes)
        view_out += [
            Out("views", self._view_key(k), orjson.dumps(
                views[k] if (sig := readings.get(k)) is None
                else {**views[k], "judged": judged(sig, self.rules.thresholds_for(k.queue))}
            ), self._partition(k))
            for k in self.merger.rebuilt
        ]
        as_of = iso(now)
        for (scope, start), sums in self.days.drain():  # the scorecard's day records, whole, as they change
            view_out.append(Out(
                "views", day_view_key(scope, start),
                None if sums is None else orjson.dumps({"as_of": as_of, "sums": sums}),
                self._partition(scope),
            ))
        if fast:
            return view_out, []
        return view_out, self._evaluate_alerts({k: readings[k] for k in alert_scopes}, now)

    def _evaluate_alerts(self, readings: dict[Scope, Signals], now: int) -> list[Out]:
        """The engines' changes from this tick's readings of the alert scopes (and the shops' budgets)."""
        by_partition: dict[int, dict[Scope, Signals]] = {qp: {} for qp in self.engines}
        for key, sig in readings.items():
            qp = self._partition(key)
            if qp in by_partition:
                by_partition[qp][key] = sig
        out: list[Out] = []
        self.latest_signals = {}
        budgets = self._budget_signals(now)
        for qp, engine in self.engines.items():
            signals = by_partition[qp]
            for (tenant, shop, platform), sig in budgets.items():
                if alert_partition(ALL, shop, self.queue_partitions) == qp:
                    signals[Scope(tenant=tenant, shop_id=shop, platform=platform, queue=ALL)] = sig
            self.latest_signals.update(signals)
            # One condition pages once: a queue total over a single shop is that shop (paging_scopes).
            paging = paging_scopes(signals.keys())
            changes = engine.evaluate({k: v for k, v in signals.items() if k in paging}, now)
            out.extend(Out("alerts", a.id.encode(), orjson.dumps(a.to_json()), qp) for a in changes)
            for alert_id in engine.expired(now):  # resolved past the retention: leave the topic, with any ack
                gone = alert_id.encode()
                out.extend(Out("alerts", k, None, qp) for k in (gone, ALERT_ACK_PREFIX + gone))
            if changes or now - self.snapshot_at.get(qp, 0) >= self.SNAPSHOT_EVERY_MS:
                self.snapshot_at[qp] = now
                out.append(Out("alerts", f"{ENGINE_KEY_PREFIX}{qp}".encode(), orjson.dumps(engine.to_json()), qp))
        return out

    def _budget_signals(self, now: int) -> dict[tuple[str, str, str], Signals]:
        """platform_budget's reading per shop: its platform rate rule's misses left today and the day's budget."""
        changed = self.days.take_changed_shops()
        if now // 60_000 != self.budgets_minute:
            self.budgets_minute = now // 60_000
            changed |= set(self.days.shops) | set(self.budgets)
        for shop in changed:
            rule = rule_for(shop[2])
            hours = self.days.shop_hours(shop)
            rows = rule_standing(shop[2], hours, now, self.tz, rule) if rule is not None and hours else []
            if rows and rows[0]["rule"] == rule.name:  # type: ignore[union-attr]
                left, whole = budget(rows[0])
                self.budgets[shop] = Signals(budget_misses_left=left, budget_total=whole)
            else:
                self.budgets.pop(shop, None)
        return self.budgets

    def today_scores(self, config: ScorecardConfig) -> Iterator[tuple[Scope, float | None, int]]:
        """Per agent and shop (the agent's scope), today's score and chats handled (the scorer's /metrics)."""
        today = day_start(self.now(int(time.time() * 1000)), self.tz)
        for (scope, start), sums in list(self.days.totals.items()):
            if start == today and is_agent_scope(scope.queue):
                result = score_platform(scope.platform, agent_sums(sums), config)
                yield scope, result.score, result.chats_handled

    def open_alerts(self) -> list[Alert]:
        return [a for engine in self.engines.values() for a in engine.open_alerts()]

    def current_views(self) -> Iterator[QueueView]:
        return iter(self.latest.values())
