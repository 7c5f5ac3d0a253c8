"""Faust wiring of the scorer: topics, tables, agents, ticks and the worker's web pages.

All logic is in `stages.py` and `services.core`; this module only moves bytes.
Processing is at-least-once with concurrency 1 per agent: offsets are committed only once
the changelog writes they cover are acknowledged (`producers.StateProducer`: Faust's own
flush gives up after 0.1 s), and replayed events are recognised by event_id in the
conversation state, so a crash neither loses nor double-counts an event.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import faust
from faust.sensors import Monitor
from faust.streams import _current_event  # a table write's changelog partition is its current event's
from faust.types import TP
from faust.types.tuples import PendingMessage
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from services.core.alert_config import rules_from_env
from services.core.kafka_security import KafkaSecurity
from services.core.wire import BUNDLE_KEY_PREFIX, is_bundle_key, unbundle_partials

from . import collector, malloc
from .alert_log import AlertPublisher, read_engine_states
from .handoff import Handoff
from .metrics import (
    AlertsCollector,
    PipelineMetrics,
    ScorecardCollector,
    SignalsCollector,
    ViewsCollector,
    exposition,
)
from .monitor import LeanMonitor
from .ordering import StageOrder, in_turns
from .producers import OutputProducer, ScorerApp, StateProducer
from .purge import PartialsPurger
from .settings import ScorerSettings, worker_data_dir
from .stages import AgentStage, ConversationStage, Handed, Out, QueueStage, in_bundles
from .topics import TABLES, changelog_topic

T = TypeVar("T")

log = logging.getLogger(__name__)

FAST_SETTLE_S = 0.02  # stage 2's fast step waits this long after the first partial of a burst


def wall_ms() -> int:
    return int(time.time() * 1000)


def faust_credentials(sec: KafkaSecurity) -> faust.types.auth.CredentialsT | None:
    """The worker's Kafka credentials in Faust's terms (it hands them on to aiokafka)."""
    if sec.uses_sasl:
        return faust.SASLCredentials(
            username=sec.username, password=sec.password, ssl_context=sec.ssl_context(), mechanism=sec.sasl_mechanism,
        )
    if sec.uses_tls:
        return faust.SSLCredentials(sec.ssl_context())
    return None


def count_writes(metrics: PipelineMetrics, app_id: str) -> Callable[[PendingMessage], None]:
    """Counts each table write (a changelog record) by table, for the records and bytes an event costs."""
    tallies = {changelog_topic(app_id, table): metrics.table_writes.of(table) for table in TABLES}

    def counted(message: PendingMessage) -> None:
        tally = tallies[message.channel.get_topic_name()]  # every table is in TABLES (topics.py)
        tally[0] += 1
        tally[1] += len(message.key or b"") + len(message.value or b"")

    return counted


def build_app(settings: ScorerSettings) -> faust.App:
    k = settings.kafka
    topics = k.topics
    app = ScorerApp(
        settings.app_id,
        broker=f"kafka://{k.bootstrap}",
        store=settings.store,
        datadir=str(worker_data_dir(settings)),
        topic_partitions=k.event_partitions,
        topic_replication_factor=k.replication,
        producer_acks=-1,
        producer_linger=0.01,  # safe since commits wait for the acks (producers.py); whatif: x1.11, broker CPU /2
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host="127.0.0.1",
        web_port=settings.metrics_port,
        web_in_thread=False,
        # Only our /metrics and /healthz: Faust's own pages would serve raw table state (/table/{t}/{key}/),
        # routing, stats and the graph to anyone reaching the port (issue 16).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        broker_commit_interval=1.0,
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout_s,
        consumer_group_instance_id=(
            f"{settings.app_id}-{settings.worker_index}" if settings.static_membership else None
        ),
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        stream_buffer_maxsize=4096,
        broker_max_poll_records=settings.max_poll_records or None,
        table_standby_replicas=settings.standby_replicas,
        logging_config=None,
        broker_credentials=faust_credentials(k.security),
        Monitor=LeanMonitor if settings.faust_monitor == "lean" else Monitor,
    )
    app.state_buffer_max, app.fetch_max_wait_ms = settings.state_buffer_max, settings.fetch_max_wait_ms
    # exactly_once: outputs belong to the transactions, so they stay on Faust's producer.
    if settings.output_producer == "separate" and settings.processing_guarantee == "at_least_once":
        app.outputs = OutputProducer(
            k.bootstrap, f"{settings.app_id}-outputs-{settings.worker_index}", linger_ms=settings.output_linger_ms,
            max_batch_size=settings.output_batch_bytes,
            compression_type=None if settings.output_compression == "none" else settings.output_compression,
        )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(topics.events, partitions=k.event_partitions, **raw)
    agent_topic = app.topic(topics.agent_changes, partitions=k.event_partitions, **raw)
    partials_topic = app.topic(topics.partials, partitions=k.queue_partitions, **raw)
    out_topics = {
        "agent_changes": agent_topic,
        "partials": partials_topic,
        "views": app.topic(topics.views, partitions=k.queue_partitions, **raw),
        "dead_letter": app.topic(topics.dead_letter, partitions=k.event_partitions, **raw),
    }
    table_args: dict[str, Any] = {
        "schema": faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    }
    def args() -> dict[str, Any]:
        """A table's arguments: on RocksDB, with its memory options (a dict of its own per table)."""
        if settings.store.startswith("rocksdb:") and settings.rocksdb_options:
            return {**table_args, "options": settings.rocksdb_options}
        return table_args

    conv_table = app.Table("conversations", partitions=k.event_partitions, **args())
    agent_table = app.Table("agents", partitions=k.event_partitions, **args())
    partials_table = app.Table("queue-partials", partitions=k.queue_partitions, **args())
    for table in (conv_table, agent_table, partials_table):
        # Faust derives table codecs from key/value types and falls back to JSON; ours are bytes.
        table.key_serializer = table.value_serializer = "raw"  # type: ignore[attr-defined]
        table.changelog_topic = table._new_changelog_topic()  # type: ignore[attr-defined]

    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    cast(StateProducer, app.producer).on_write = count_writes(metrics, settings.app_id)
    collector.configure(settings.gc_thresholds, lambda gen, s: metrics.gc_seconds.labels(str(gen)).inc(s))
    conversations = ConversationStage(
        conv_table, metrics, bucket_ms=settings.bucket_ms, grace_ms=settings.grace_ms,
        horizon_ms=settings.horizon_ms, retention_ms=settings.retention_ms, queue_partitions=k.queue_partitions,
        event_clock=settings.clock == "event", tombstone_ms=settings.tombstone_ms, tz=settings.scorecard_tz,
    )  # (hands on while the handoff has room: set before each drain, in publish_partials)
    agents = AgentStage(agent_table, metrics, queue_partitions=k.queue_partitions,
                        retention_ms=settings.agent_retention_ms, event_clock=settings.clock == "event")
    queues = QueueStage(
        partials_table, metrics, bucket_ms=settings.bucket_ms, horizon_ms=settings.horizon_ms,
        queue_partitions=k.queue_partitions, event_clock=settings.clock == "event", rules=rules_from_env(),
        agent_refresh_ticks=settings.agent_refresh_ticks, tz=settings.scorecard_tz,
    )
    queues.twin = conversations.twin  # stage 2 widens stage 1's buckets of this worker into stage 1's very objects
    views_exported = ViewsCollector(queues.current_views)  # served as text by /metrics, not through the registry
    registry.register(AlertsCollector(queues.open_alerts))
    registry.register(SignalsCollector(lambda: list(queues.latest_signals.items())))
    agents_registry = CollectorRegistry()  # the agents' own series beside their views' (`exposition`)
    agents_registry.register(ScorecardCollector(lambda: list(queues.today_scores(settings.scorecard))))
    alerts = AlertPublisher(k.bootstrap, topics.alerts, f"{settings.app_id}-alerts-{settings.worker_index}")
    state = {"ready": False}

    # Stage 2 asks for its partitions with every partial: read once per assignment (Faust's assignor replaces
    # its assignment object whole on each one), not rebuilt from every active partition each time.
    owned_of: dict[str, tuple[object, frozenset[int]]] = {}

    def assigned(topic: str) -> set[int]:
        current: Any = app.assignor._assignment  # type: ignore[attr-defined]  # (Faust 0.11: the PartitionAssignor)
        known = owned_of.get(topic)
        if known is None or known[0] is not current:
            known = owned_of[topic] = (current, frozenset(current.actives.get(topic, ())))
        return set(known[1])  # a copy: a few partitions

    # Partials and views are rebuilt from state (re-sent whole after a rebuild, views every tick): they go
    # through the batching output producer. Agent changes and dead letters are per event, not rebuilt, so
    # they stay on Faust's producer, whose flush before each commit covers them.
    outputs = app.outputs
    rebuilt = {"partials": topics.partials, "views": topics.views} if outputs is not None else {}

    # Stage 1's partial buckets for the queue partitions this worker merges: stage 2 takes them as they are when
    # it consumes those very records (handoff.py), instead of decoding what was just encoded.
    handoff: Handoff[Handed] = Handoff(settings.handoff_max)

    # Bundle keys: unique to this process (the topic is not compacted, and nothing may replace a bundle).
    bundle_key_base = BUNDLE_KEY_PREFIX + f"{settings.worker_index}-{os.urandom(4).hex()}-".encode()
    bundle_seq = itertools.count()

    def next_bundle_key() -> bytes:
        return bundle_key_base + str(next(bundle_seq)).encode()

    async def send(records: list[Out]) -> None:
        merged_here: set[int] | None = None
        for r in records:
            if r.local is not None and r.value is not None:
                if merged_here is None:
                    merged_here = assigned(topics.partials)
                if r.partition in merged_here:
                    handoff.offer(r.key, r.value, r.local)
        for r in in_bundles(records, next_bundle_key):
            name = rebuilt.get(r.topic)
            if name is not None and outputs is not None:
                await outputs.send(name, r.key, r.value, r.partition)
            else:
                await out_topics[r.topic].send(key=r.key, value=r.value, partition=r.partition, force=True)
            tally = metrics.published.of(r.topic)
            tally[0] += 1
            tally[1] += len(r.key or b"") + len(r.value or b"")

    # Per consumed topic and partition: the next offset to score.
    next_offset: dict[str, dict[int, int]] = {topics.events: {}, topics.agent_changes: {}, topics.partials: {}}
    stage_of = {topics.agent_changes: "agents", topics.partials: "queues"}

    def export_lag() -> None:
        metrics.consumer_lag.clear()
        metrics.stage_lag.clear()
        for tp in app.assignor.assigned_actives():
            nexts = next_offset.get(tp.topic, {})
            if tp.partition not in nexts:
                continue
            try:
                lag = max(0, app.consumer.highwater(tp) - nexts[tp.partition])
            except Exception:  # not fetched yet
                continue
            if tp.topic == topics.events:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            else:
                metrics.stage_lag.labels(stage_of[tp.topic], str(tp.partition)).set(lag)

    def in_context_of(events: dict[int, Any], step: Callable[[int], T]) -> list[T]:
        """`step(partition)` for each partition, in the context of its event (a table write's changelog
        partition is its current event's)."""
        results: list[T] = []
        for partition, event in list(events.items()):
            token = _current_event.set(weakref.ref(event))
            try:
                results.append(step(partition))
            finally:
                _current_event.reset(token)
        return results

    events_next, agents_next, partials_next = (next_offset[t] for t in (topics.events, topics.agent_changes,
                                                                         topics.partials))

    # Each stage's records go out in the order of the state they were built from (ordering.py): its batches hold
    # its lock, and the tick takes it to send a rebuild.
    conversations_order, agents_order = StageOrder(conversations), StageOrder(agents)

    @app.agent(events_topic, concurrency=1)
    async def score_conversations(stream: Any) -> None:
        # Batches: each changed conversation is written once per batch, before the batch's offsets are
        # acknowledged (take_events acks after this body), in the context of an event of its partition.
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            async with conversations_order.lock:
                last_of: dict[int, Any] = {}
                now = wall_ms()
                metrics.consumed.labels("events").inc(len(batch))
                for event in batch:
                    partition = event.message.partition
                    events_next[partition] = event.message.offset + 1
                    last_of[partition] = event
                    if partition not in conversations.parts:
                        await send(await in_turns(conversations.rebuilding(assigned(topics.events) | {partition})))
                    await send(conversations.on_event(event.key, event.value, partition, now))
                in_context_of(last_of, conversations.flush)

    # The last agent change scored per partition: idle agents are deleted on the tick in its context (a table
    # write's changelog partition is its current event's), so a partition with no new change still sheds them.
    last_agent_event: dict[int, Any] = {}

    @app.agent(agent_topic, concurrency=1)
    async def score_agents(stream: Any) -> None:
        # Batches, as for conversations: each changed agent is written once per batch (not once per change),
        # before the batch's offsets are acknowledged, in the context of an event of its partition.
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            async with agents_order.lock:
                metrics.consumed.labels("agent_changes").inc(len(batch))
                last_of: dict[int, Any] = {}
                for event in batch:
                    partition = event.message.partition
                    agents_next[partition] = event.message.offset + 1
                    if partition not in agents.parts:
                        await send(await in_turns(agents.rebuilding(assigned(topics.agent_changes) | {partition})))
                    agents.on_event(event.key, event.value, partition)
                    last_of[partition] = last_agent_event[partition] = event
                in_context_of(last_of, agents.flush)

    def evict_agents() -> list[Out]:
        return [out for outs in in_context_of(last_agent_event, lambda p: agents.evict(p, wall_ms())) for out in outs]

    async def rebuild_queues() -> None:
        owned = assigned(topics.partials)
        if queues.owned != owned:
            states = await read_engine_states(k.bootstrap, topics.alerts, owned)
            queues.rebuild(owned, states)

    partials_in = asyncio.Event()  # partials came in since stage 2's last fast step
    views_lock = asyncio.Lock()  # the tick and the fast step build views one at a time

    # The last partial per queue partition: stage 2 writes the buckets it widened on the tick in its context.
    last_partial_event: dict[int, Any] = {}

    # Per partial record: the counters' children once (a `labels` lookup costs about a microsecond).
    partials_consumed = metrics.consumed.labels("partials")
    partials_taken = metrics.partials_handed.labels("taken")
    partials_decoded = metrics.partials_handed.labels("decoded")

    @app.agent(partials_topic, concurrency=1)
    async def merge_queues(stream: Any) -> None:
        # Batches, as for conversations: Faust's cost is per record, and the one worker that merges a busy queue
        # name's partials (every shop's: scaling.md, "Hot queues") must keep up with all of them. Each key is
        # written to the table once per batch, before the batch's offsets are acknowledged.
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            partials_consumed.inc(len(batch))
            await rebuild_queues()
            last_of: dict[int, Any] = {}
            for event in batch:
                message = event.message
                # (A record of one partial, as written before bundles, is taken as a bundle of one.)
                partials = unbundle_partials(event.value) if is_bundle_key(event.key) else ((event.key, event.value),)
                for key, value in partials:
                    local = None if value is None else handoff.take(key, value)
                    (partials_decoded if local is None else partials_taken).inc()
                    queues.on_event(key, value, message.partition, local)
                last_of[message.partition] = event
                partials_next[message.partition] = message.offset + 1
            in_context_of(last_of, queues.flush)
            last_partial_event.update(last_of)
            partials_in.set()

    last_tick = {"n": -1}  # the tick (wall seconds // TICK_S) whose partials went out whole

    async def publish_partials() -> None:
        """The queues' changed partials every PARTIALS_TICK_S; once a tick, everything that changed."""
        started = time.perf_counter()
        n = int(time.time() // settings.tick_s)
        fast = n == last_tick["n"]
        last_tick["n"] = n
        conversations.hand_on = not handoff.full  # stage 2 far behind (a backlog): it decodes, as it would anyway
        # Partitions owned and not rebuilt yet (no event came since the assignment) are rebuilt here: their
        # partials are re-sent whole even if no event comes (a change of them lost in a crash is then repaired).
        async with conversations_order.tick(assigned(topics.events), send):
            stage1 = conversations.tick(wall_ms(), fast=fast)
        async with agents_order.tick(assigned(topics.agent_changes), send):
            agent_stage = agents.tick(fast=fast) if fast else evict_agents() + agents.tick()
        await send(stage1 + agent_stage)
        if not fast:
            export_lag()
        metrics.tick_seconds.labels("partials_fast" if fast else "partials").observe(time.perf_counter() - started)

    async def publish_views(fast: bool = False) -> None:
        started = time.perf_counter()
        async with views_lock:
            if assigned(topics.partials):
                await rebuild_queues()
                views, alert_records = queues.tick(wall_ms(), fast=fast)
                in_context_of(last_partial_event, queues.write_widened)  # before any await: nothing came in since
                await send(views)
                await alerts.publish(alert_records)
                tally = metrics.published.of("alerts")
                tally[0] += len(alert_records)
                tally[1] += sum(len(r.key) + len(r.value or b"") for r in alert_records)
                if not fast:
                    metrics.views_published_at.set(time.time())
        metrics.tick_seconds.labels("views_fast" if fast else "views").observe(time.perf_counter() - started)

    async def every_tick(period: float, phase_s: float, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` once a `period`, `phase_s` past each multiple of it on the wall clock (a step that
        overruns skips to the next one rather than piling up)."""
        while True:
            await asyncio.sleep(period - (time.time() - phase_s) % period)
            if not app.rebalancing and state["ready"]:
                await step()

    # Stage 1 hands on its partials every PARTIALS_TICK_S; stage 2 builds the queue views they changed as soon
    # as they came back through Kafka (the fast step), and every view, alerts included, on the tick half a
    # tick later.
    @app.task  # type: ignore[untyped-decorator]
    async def partials_ticks() -> None:
        await every_tick(settings.partials_tick_s, 0.0, publish_partials)

    @app.task  # type: ignore[untyped-decorator]
    async def views_ticks() -> None:
        await every_tick(settings.tick_s, settings.tick_s / 2, publish_views)

    purger = PartialsPurger(k.bootstrap, settings.app_id, topics.partials)

    @app.task  # type: ignore[untyped-decorator]
    async def purge_partials() -> None:
        while settings.partials_purge_s > 0:
            await asyncio.sleep(settings.partials_purge_s)
            if not app.rebalancing and state["ready"]:
                await purger.purge(assigned(topics.partials))

    @app.task  # type: ignore[untyped-decorator]
    async def hand_back_memory() -> None:
        wait_s = settings.malloc_trim_s
        while settings.malloc_trim_s > 0:
            await asyncio.sleep(wait_s)
            wait_s = malloc.next_trim_in(await asyncio.to_thread(malloc.timed_trim), settings.malloc_trim_s)

    @app.task  # type: ignore[untyped-decorator]
    async def fast_views() -> None:
        if settings.fast_views_s <= 0:
            return
        while True:
            await partials_in.wait()
            started = time.monotonic()
            await asyncio.sleep(FAST_SETTLE_S)  # the rest of the burst: a stage 1 tick's partials come together
            partials_in.clear()
            if not app.rebalancing and state["ready"]:
                await publish_views(fast=True)
            await asyncio.sleep(max(0.0, settings.fast_views_s - (time.monotonic() - started)))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        state["ready"] = False
        if outputs is not None:
            # What this worker published for the partitions it gives up lands before their new owner rebuilds
            # and re-sends them whole: a late partial from here would otherwise overwrite a newer one.
            await outputs.flush()
        conversations.revoke({tp.partition for tp in revoked if tp.topic == topics.events})
        agents.revoke({tp.partition for tp in revoked if tp.topic == topics.agent_changes})
        for tp in revoked:
            if tp.topic == topics.agent_changes:
                last_agent_event.pop(tp.partition, None)
        handoff.clear()  # what this worker merges and sends may both change
        if any(tp.topic == topics.partials for tp in revoked):
            queues.revoke()
            last_partial_event.clear()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def on_rebalanced(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        state["ready"] = True

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # The views' series (most of a large floor's scrape) are rendered in a thread so the scrape does not
        # stall scoring for its whole length. `?name[]=family` (as prometheus_client serves it) keeps only those
        # families: a cheap look at one figure; `?agents=only|without`: the agents' series apart (`exposition`).
        names = frozenset(request.query.getall("name[]", [])) or None
        try:
            head, views_part = exposition(registry, agents_registry, views_exported, names, request.query.get("agents"))
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        body = head + await asyncio.to_thread(views_part)
        return web.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        recovered = getattr(app.tables, "recovery").completed.is_set()  # noqa: B009 (not in the stubs)
        ok = state["ready"] and recovered and not app.rebalancing
        body = {"status": "ok" if ok else "starting", "rebalancing": app.rebalancing, "recovered": recovered,
                "partitions": sorted(assigned(topics.events))}
        return web.json(body, status=200 if ok else 503)

    return app
