"""A worker SIGKILLed at any moment and restarted changes no figure: the three stages against a model of what
Kafka keeps of them.

The model holds what a crash cannot take: the topics' records that were acknowledged and the group's committed
offsets. As in app.py: a commit covers every table write made before it (`producers.StateProducer`) and every
agent change (Faust's producer); partials go through the output producer, which no commit waits for, so any part
of what was sent after the last record stage 2 consumed may be lost; each changelog partition keeps what was
acknowledged before the last commit and any prefix of what came after. The restarted worker restores its tables
from those changelogs (as Faust does, in order; on rocksdb:// onto what its databases kept), resumes every topic
at the committed offsets, rebuilds stage 1 at its first event and stage 2 before its first partial, and scores on
to the end of the stream. Every view must then be the reference's (tests/reference.py: the whole stream at once),
as if nothing had happened.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.config import horizon_ms
from services.core.events import parse_event
from services.core.figures import QueueView
from services.core.scope import Scope
from services.core.wire import SLOT_WATERMARK, decode_conversation_record, partial_key, watermark_key
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import PipelineMetrics
from services.scorer.stages import NO_SCOPE, AgentStage, ConversationStage, Handed, Out, QueueStage
from tests.reference import reference_views
from tests.unit.test_fresh_reference import diff_views
from tests.unit.test_scorer_properties import PROPERTY, Floor, assert_matches_reference, final_now, floors

EVENT_PARTITIONS, QUEUE_PARTITIONS = 4, 2
BUCKET_MS, GRACE_MS = 1000, 60_000
_partitioner = DefaultPartitioner()


def partition_of(key: bytes, partitions: int) -> int:
    return int(_partitioner(key, list(range(partitions)), list(range(partitions))))


Changelog = dict[int, list[tuple[bytes, bytes | None]]]  # changelog partition -> its records, in order


class ChangeloggedTable(MutableMapping[bytes, bytes]):
    """A dict whose writes are appended to a changelog, on the partition of the current event (`context`)."""

    def __init__(self, changelog: Changelog) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog = changelog
        self.context: int | None = None

    def _log(self, key: bytes, value: bytes | None) -> None:
        assert self.context is not None, "a table write outside an event's context"
        self.changelog.setdefault(self.context, []).append((key, value))

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self._log(key, value)

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]
        self._log(key, None)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def restore(self, local: dict[bytes, bytes] | None = None, persisted: dict[int, int] | None = None) -> None:
        """Faust's recovery: the changelog's records applied in order, partition by partition. On memory:// from
        the start; on rocksdb:// onto what the worker's database kept (`local`: every write it made, sent or not),
        after each partition's persisted offset (`persisted`: the index of the first record after it)."""
        if local is not None:
            self.data = dict(local)
        for partition in sorted(self.changelog):
            start = 0 if persisted is None else persisted.get(partition, 0)
            for key, value in self.changelog[partition][start:]:
                if value is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = value


class Kafka:
    """What a crash leaves: the topics (records acknowledged) and the committed offsets."""

    def __init__(self, events: list[list[tuple[bytes, bytes]]]) -> None:
        self.events = events
        self.agent_changes: list[list[tuple[bytes, bytes | None]]] = [[] for _ in range(EVENT_PARTITIONS)]
        # (key, value, the bucket as the sending process held it: valid only within that process)
        self.partials: list[list[tuple[bytes, bytes | None, Handed | None, int]]] = [
            [] for _ in range(QUEUE_PARTITIONS)]
        self.changelogs: dict[str, Changelog] = {"conversations": {}, "agents": {}, "queues": {}}
        self.committed: dict[str, list[int]] = {
            "events": [0] * EVENT_PARTITIONS, "agent_changes": [0] * EVENT_PARTITIONS,
            "partials": [0] * QUEUE_PARTITIONS}
        self.acked_at_commit: dict[str, dict[int, int]] = {name: {} for name in self.changelogs}
        self.agent_changes_at_commit = [0] * EVENT_PARTITIONS
        # rocksdb:// only: what each table's database held at the crash, and where recovery reads its changelog from.
        self.local: dict[str, dict[bytes, bytes]] | None = None
        self.persisted: dict[str, dict[int, int]] = {name: {} for name in self.changelogs}

    def crash(self, rng: random.Random, consumed: dict[str, list[int]],
              local: dict[str, dict[bytes, bytes]] | None = None) -> None:
        """SIGKILL: each changelog partition keeps what a commit waited for and any prefix of the rest; agent
        changes keep what a commit waited for or the agent stage read (it was on the broker) and any prefix of the
        rest; partials keep what stage 2 read and any prefix of the rest.

        With `local` (rocksdb://) the tables' databases keep every write (a write is in RocksDB's WAL before it is
        sent), and each changelog partition's persisted offset is that of a record acknowledged: at least the last
        one a commit waited for (its callback ran before the commit), at most the last one kept. Faust's recovery
        applies every record kept after it onto the database's newer values (faust/tables/recovery.py: it seeks
        to the persisted offset and `_slurp_changelogs` takes only later offsets)."""
        self.local = local
        for name, changelog in self.changelogs.items():
            for partition, records in changelog.items():
                kept_at_least = self.acked_at_commit[name].get(partition, 0)
                del records[rng.randint(kept_at_least, len(records)):]
                if local is not None:  # the broker may have kept some it never acknowledged
                    self.persisted[name][partition] = rng.randint(kept_at_least, len(records))
        for p, changes in enumerate(self.agent_changes):
            kept_at_least = max(self.agent_changes_at_commit[p], consumed["agent_changes"][p])
            del changes[rng.randint(kept_at_least, len(changes)):]
        for qp, sent in enumerate(self.partials):
            del sent[rng.randint(consumed["partials"][qp], len(sent)):]


class Worker:
    """One incarnation of a worker that owns every partition (app.py's wiring, with these lists as topics)."""

    def __init__(self, kafka: Kafka, incarnation: int) -> None:
        self.kafka, self.incarnation = kafka, incarnation
        metrics = PipelineMetrics(CollectorRegistry())
        horizon = horizon_ms(GRACE_MS)
        self.tables = {name: ChangeloggedTable(changelog) for name, changelog in kafka.changelogs.items()}
        for name, table in self.tables.items():
            if kafka.local is None:
                table.restore()
            else:
                table.restore(kafka.local[name], kafka.persisted[name])
        self.conversations = ConversationStage(
            self.tables["conversations"], metrics, bucket_ms=BUCKET_MS, grace_ms=GRACE_MS, horizon_ms=horizon,
            retention_ms=3_900_000, queue_partitions=QUEUE_PARTITIONS, event_clock=True, hand_on=True)
        self.agents = AgentStage(self.tables["agents"], metrics, queue_partitions=QUEUE_PARTITIONS,
                                 retention_ms=86_400_000, event_clock=True)
        self.queues = QueueStage(self.tables["queues"], metrics, bucket_ms=BUCKET_MS, horizon_ms=horizon,
                                 queue_partitions=QUEUE_PARTITIONS, event_clock=True)
        self.queues.rebuild(set(range(QUEUE_PARTITIONS)))
        # Where each consumer resumes: the committed offsets.
        self.next = {topic: list(offsets) for topic, offsets in kafka.committed.items()}
        self.last_agent_partitions: set[int] = set()
        self.last_partial_partitions: set[int] = set()

    def _in_context(self, table: str, partition: int) -> ChangeloggedTable:
        t = self.tables[table]
        t.context = partition
        return t

    def send(self, records: list[Out]) -> None:
        for r in records:
            if r.topic == "agent_changes":
                self.kafka.agent_changes[partition_of(r.key, EVENT_PARTITIONS)].append((r.key, r.value))
            elif r.topic == "partials":
                assert r.partition is not None
                self.kafka.partials[r.partition].append((r.key, r.value, r.local, self.incarnation))

    def score_events(self, p: int, n: int) -> None:
        records = self.kafka.events[p][self.next["events"][p]:self.next["events"][p] + n]
        if not records:
            return
        self._in_context("conversations", p)
        if p not in self.conversations.parts:  # app.py: every owned partition, at the first event after a start
            self.send(self.conversations.rebuild(set(range(EVENT_PARTITIONS))))
        for key, value in records:
            self.send(self.conversations.on_event(key, value, p, 0))
        self.conversations.flush(p)
        self.next["events"][p] += len(records)

    def score_agents(self, p: int, n: int) -> None:
        records = self.kafka.agent_changes[p][self.next["agent_changes"][p]:self.next["agent_changes"][p] + n]
        if not records:
            return
        self._in_context("agents", p)
        if p not in self.agents.parts:
            self.send(self.agents.rebuild(set(range(EVENT_PARTITIONS))))
        for key, value in records:
            self.agents.on_event(key, value, p)
        self.agents.flush(p)
        self.next["agent_changes"][p] += len(records)
        self.last_agent_partitions.add(p)

    def merge_partials(self, qp: int, n: int) -> None:
        records = self.kafka.partials[qp][self.next["partials"][qp]:self.next["partials"][qp] + n]
        if not records:
            return
        self._in_context("queues", qp)
        for key, value, local, incarnation in records:
            self.queues.on_event(key, value, qp, local if incarnation == self.incarnation else None)
        self.queues.flush(qp)
        self.next["partials"][qp] += len(records)
        self.last_partial_partitions.add(qp)

    def tick(self, wall_ms: int, fast: bool) -> None:
        # app.py: partitions owned and not rebuilt yet (no event since the start) are rebuilt on the tick, and all
        # the rebuild's records are sent before the stage's next batch (its lock): a step here.
        owned = set(range(EVENT_PARTITIONS))
        self.send(self.conversations.rebuild(owned) + self.agents.rebuild(owned))
        if fast:
            self.send(self.conversations.tick(wall_ms, fast=True) + self.agents.tick(fast=True))
        else:
            evicted: list[Out] = []
            for p in sorted(self.last_agent_partitions):
                self._in_context("agents", p)
                evicted += self.agents.evict(p, wall_ms)
            self.send(evicted + self.conversations.tick(wall_ms) + self.agents.tick())
        self.queues.tick(wall_ms, fast=fast)
        for qp in sorted(self.last_partial_partitions):
            self._in_context("queues", qp)
            self.queues.write_widened(qp)

    def commit(self) -> None:
        """Faust's commit as producers.py makes it: every table write and agent change so far acknowledged first."""
        for name, changelog in self.kafka.changelogs.items():
            self.kafka.acked_at_commit[name] = {p: len(records) for p, records in changelog.items()}
        self.kafka.agent_changes_at_commit = [len(changes) for changes in self.kafka.agent_changes]
        self.kafka.committed = {topic: list(offsets) for topic, offsets in self.next.items()}

    def rebalance(self) -> None:
        """A rebalance that gives this worker its partitions back (app.py's on_revoked, then the rebuilds): what
        it published lands first, and Faust commits before it gives the partitions up."""
        self.commit()
        owned = set(range(EVENT_PARTITIONS))
        self.conversations.revoke(owned)
        self.agents.revoke(owned)
        self.last_agent_partitions = set()
        self.incarnation += 1_000_000  # the handoff is cleared: nothing sent before is taken as it was
        self.queues.revoke()
        self.last_partial_partitions = set()
        self.queues.rebuild(set(range(QUEUE_PARTITIONS)))

    def step(self, rng: random.Random, wall_ms: int) -> None:
        """One thing a worker does next: a batch of one of its consumers, a tick, a commit or a rebalance."""
        choice = rng.random()
        if choice < 0.45:
            self.score_events(rng.randrange(EVENT_PARTITIONS), rng.randint(1, 12))
        elif choice < 0.6:
            self.score_agents(rng.randrange(EVENT_PARTITIONS), rng.randint(1, 6))
        elif choice < 0.8:
            self.merge_partials(rng.randrange(QUEUE_PARTITIONS), rng.randint(1, 30))
        elif choice < 0.93:
            self.tick(wall_ms, fast=rng.random() < 0.5)
        elif choice < 0.99:
            self.commit()
        else:
            self.rebalance()

    def done(self) -> bool:
        k = self.kafka
        return (all(self.next["events"][p] == len(k.events[p]) for p in range(EVENT_PARTITIONS))
                and all(self.next["agent_changes"][p] == len(k.agent_changes[p]) for p in range(EVENT_PARTITIONS))
                and all(self.next["partials"][qp] == len(k.partials[qp]) for qp in range(QUEUE_PARTITIONS)))

    def finish(self, wall_ms: int) -> dict[Scope, QueueView]:
        """Score everything left, tick until nothing more comes, and return the views of the last tick."""
        for _ in range(20):
            for p in range(EVENT_PARTITIONS):
                self.score_events(p, len(self.kafka.events[p]))
            self.tick(wall_ms, fast=False)
            for p in range(EVENT_PARTITIONS):
                self.score_agents(p, len(self.kafka.agent_changes[p]))
            self.tick(wall_ms, fast=False)
            for qp in range(QUEUE_PARTITIONS):
                self.merge_partials(qp, len(self.kafka.partials[qp]))
            self.tick(wall_ms, fast=False)
            if self.done():
                break
        assert self.done()
        return {k: orjson.loads(orjson.dumps(v)) for k, v in self.queues.latest.items()}


def event_records(stream: list[dict[str, Any]]) -> list[list[tuple[bytes, bytes]]]:
    out: list[list[tuple[bytes, bytes]]] = [[] for _ in range(EVENT_PARTITIONS)]
    for obj in stream:
        ev = parse_event(obj)
        key = ev.key.encode()
        out[partition_of(key, EVENT_PARTITIONS)].append((key, ev.to_json()))
    return out


def run_with_crashes(floor: Floor, seed: int, crashes: int, store: str = "memory") -> dict[Scope, QueueView]:
    rng = random.Random(seed)
    wall_ms = final_now(floor.events) + 3 * 3_600_000  # the event clock: the wall clock changes nothing
    kafka = Kafka(event_records(floor.stream))
    total = sum(len(records) for records in kafka.events)
    worker = Worker(kafka, 0)
    for incarnation in range(1, crashes + 1):
        crash_after = rng.randint(0, 4 * total // 3 + 10)  # steps (a step may move nothing)
        for _ in range(crash_after):
            worker.step(rng, wall_ms)
        local = {name: dict(t.data) for name, t in worker.tables.items()} if store == "rocksdb" else None
        kafka.crash(rng, worker.next, local)
        worker = Worker(kafka, incarnation)
    for _ in range(rng.randint(0, total)):
        worker.step(rng, wall_ms)
    return worker.finish(wall_ms)


def assert_as_if_nothing_happened(floor: Floor, seed: int, crashes: int, store: str) -> None:
    """The views after the crashes equal the reference's, and every field of them (the agents' own figures, which
    tests/reference.py does not model, included) equals what the same worker publishes without a crash."""
    got = run_with_crashes(floor, seed, crashes, store)
    assert_matches_reference(got, reference_views(floor.events, final_now(floor.events)), now=final_now(floor.events))
    problems = diff_views(got, run_with_crashes(floor, seed, 0), ("with a crash", "without a crash"))
    assert not problems, "\n".join(problems[:30])


# More examples than the other properties: a hole here shows in a few hundredths of them (each round of fixes was
# found in 1,500-2,000 random ones; about 90 s on 2 cores, twice that with the run without a crash).
@settings(PROPERTY, max_examples=500)
@given(floors(), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_a_worker_killed_anywhere_and_restarted_changes_no_figure(floor: Floor, seed: int, crashes: int) -> None:
    assert_as_if_nothing_happened(floor, seed, crashes, "memory")


@settings(PROPERTY, max_examples=500)
@given(floors(), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_a_worker_killed_anywhere_and_restarted_on_rocksdb_changes_no_figure(
    floor: Floor, seed: int, crashes: int,
) -> None:
    assert_as_if_nothing_happened(floor, seed, crashes, "rocksdb")


@PROPERTY
@given(floors(), st.integers(0, 2**32 - 1))
def test_the_model_without_a_crash_equals_the_reference(floor: Floor, seed: int) -> None:
    want = reference_views(floor.events, final_now(floor.events))
    assert_matches_reference(run_with_crashes(floor, seed, 0), want,
                             now=final_now(floor.events))


def test_a_change_lost_in_a_crash_is_swept_at_the_end_of_the_resend() -> None:
    """Stage 2 merged a bucket that stage 1 no longer holds (the retraction was sent on the output producer and
    lost with the worker): stage 1's rebuild re-sends all it holds between resend markers, and at the end stage 2
    drops what was not sent again, so every view is as before."""
    t0 = 1_800_000_000_000
    events = [
        {"event_id": "e1", "type": "message", "ts": t0, "tenant": "acme", "shop_id": "s1", "platform": "jd",
         "conversation_id": "c1", "sender": "customer", "queue": "presales"},
        {"event_id": "e2", "type": "message", "ts": t0 + 20_000, "tenant": "acme", "shop_id": "s1",
         "platform": "jd", "conversation_id": "c1", "sender": "agent", "agent_id": "a1"},
    ]
    scorer = InProcessScorer(event_partitions=1, queue_partitions=1)
    scorer.feed(events)
    scorer.tick(0)

    def views() -> dict[Scope, Any]:
        return {k: orjson.loads(orjson.dumps(v)) for k, v in scorer.queues.latest.items()}

    before = views()
    stale = partial_key("c", 0, Scope("acme", "s1", "jd", "presales"), t0 - 300_000)
    scorer.queues.on_event(stale, orjson.dumps({"c": {"arrivals": 1}, "frt": [0, 0, 0, []], "reply": [0, 0, 0, []]}), 0)
    scorer.queues.flush(0)
    scorer.tick(0)
    assert views() != before  # stage 2 counts the stale arrival
    scorer.conversations.revoke({0})
    scorer._route(scorer.conversations.rebuild({0}))
    scorer.tick(0)
    assert views() == before
    assert stale not in scorer.partials_table
    assert scorer.metrics.partials_swept._value.get() == 1


def test_equal_facts_of_a_conversation_survive_a_rebuild() -> None:
    """Two replies in the same millisecond with the same wait are one fact held twice in the conversation: a
    rebuild applies it with its count, and the reply distribution must count both, as it did event by event."""
    t0 = 1_800_000_000_000

    def message(n: int, ts: int, sender: str) -> dict[str, Any]:
        return {"event_id": f"e{n}", "type": "message", "ts": ts, "tenant": "acme", "shop_id": "s1",
                "platform": "jd", "conversation_id": "c1", "sender": sender, "queue": "presales",
                **({"agent_id": "a1"} if sender == "agent" else {})}

    events = [message(1, t0, "customer"), message(2, t0, "agent"), message(3, t0, "customer"), message(4, t0, "agent")]
    scorer = InProcessScorer(event_partitions=1, queue_partitions=1)
    scorer.feed(events)
    scorer.tick(0)
    queue = Scope("acme", "s1", "jd", "presales")
    before = orjson.loads(orjson.dumps(scorer.queues.latest[queue]))
    assert before["windows"]["1h"]["reply"]["count"] == 2
    scorer.conversations.revoke({0})
    scorer._route(scorer.conversations.rebuild({0}))
    scorer.tick(0)
    assert orjson.loads(orjson.dumps(scorer.queues.latest[queue])) == before


def test_stage_two_widens_a_resent_source_by_its_new_clock() -> None:
    """A crash lost the write of stage 1's last watermark (and the event that moved it): the rebuilt stage 1 is
    behind the clock stage 2 widened that source's buckets by, and re-sends them narrow. Stage 2 must not widen
    them by the old clock: a narrower change of the new stage 1 would then replace the wide bucket, and lose the
    parts it does not send again."""
    t0 = 1_800_000_000_000

    def message(n: int, cid: str, ts: int) -> dict[str, Any]:
        return {"event_id": f"e{n}", "type": "message", "ts": ts, "tenant": "acme", "shop_id": "s1",
                "platform": "jd", "conversation_id": cid, "sender": "customer", "queue": "presales"}

    early = [message(1, "c1", t0 + 1_000), message(2, "c1", t0 + 2_000)]
    clock = message(3, "c2", t0 + 600_000)  # ten minutes on: the early buckets widen
    change = message(4, "c1", t0 + 1_500)  # a change of one early bucket, after the crash
    clean = InProcessScorer(event_partitions=1, queue_partitions=1)
    scorer = InProcessScorer(event_partitions=1, queue_partitions=1)
    for s in (clean, scorer):
        s.feed([*early, clock])
        s.tick(0)
    # The crash: c2's record and the watermark after it were not acknowledged. Stage 2 restarts from its table and
    # reads again what it had not committed: the old stage 1's watermark record.
    scorer.conversations.revoke({0})
    del scorer.conv_table[parse_event(clock).key.encode()]
    del scorer.conv_table[watermark_key(0)]
    scorer.queues.revoke()
    scorer.queues.rebuild({0})
    scorer.queues.on_event(partial_key("c", 0, NO_SCOPE, SLOT_WATERMARK), orjson.dumps(t0 + 600_000), 0)
    scorer.queues.flush(0)
    scorer._route(scorer.conversations.rebuild({0}))
    scorer.tick(0)  # the whole re-send, narrow: stage 1's clock is at t0 + 2 s
    scorer.tick(0)  # stage 2 widens by what it has: the new clock, not the old one
    for s in (clean, scorer):
        s.feed([change])
        s.tick(0)
    scorer.feed([clock])  # replayed: it was after the committed offset
    for s in (clean, scorer):
        s.tick(0)
    queue = Scope("acme", "s1", "jd", "presales")
    assert scorer.queues.latest[queue]["windows"] == clean.queues.latest[queue]["windows"]
    assert clean.queues.latest[queue]["windows"]["15m"]["messages"]["customer"] == 4


def test_a_tombstone_re_asserts_the_chat_slot_its_conversation_held() -> None:
    """The agent change that ended a chat slot was lost in a crash, and the conversation was evicted after it (the
    tombstone kept): the rebuild re-asserts the slots a tombstone held, so the agent's chat is not active for good."""
    t0 = 1_800_000_000_000

    def event(n: int, cid: str, etype: str, ts: int, **extra: Any) -> dict[str, Any]:
        return {"event_id": f"e{n}", "type": etype, "ts": ts, "tenant": "acme", "shop_id": "s1", "platform": "jd",
                "conversation_id": cid, **extra}

    scorer = InProcessScorer(event_partitions=1, queue_partitions=1)
    scorer.feed([
        {"event_id": "st", "type": "agent.status", "ts": t0, "tenant": "acme", "shop_id": "s1", "platform": "jd",
         "agent_id": "a1", "status": "online", "queues": ["presales"], "capacity": 3},
        event(1, "c1", "message", t0, sender="customer", queue="presales"),
        event(2, "c1", "conversation.assigned", t0 + 1_000, agent_id="a1"),
    ])
    scorer.tick(0)
    queue = Scope("acme", "s1", "jd", "presales")
    assert scorer.queues.latest[queue]["live"]["slots_active"] == 1
    close = event(3, "c1", "conversation.closed", t0 + 2_000, reason="resolved")
    c1 = parse_event(close)
    lost = scorer.conversations.on_event(c1.key.encode(), c1.to_json(), 0, 0)
    assert [r.topic for r in lost] == ["agent_changes"]  # the slot's end, never delivered
    scorer.conversations.flush(0)
    scorer.feed([event(4, "c2", "message", t0 + 70 * 60_000, sender="customer", queue="presales")])  # evicts c1
    gone = decode_conversation_record(scorer.conv_table[c1.key.encode()])[2]  # the tombstone, naming c1's queue
    assert gone is not None and gone[:4] == list(queue)
    scorer.conversations.revoke({0})
    scorer._route(scorer.conversations.rebuild({0}))
    scorer.tick(0)
    assert scorer.queues.latest[queue]["live"]["slots_active"] == 0
