"""Stage 1 rebuilds in turns (`ConversationStage.rebuilding`, ordering.py's `in_turns`).

A taken-over partition of a large floor is seconds of decoding. Done in one go, it held the worker's loop for all of
it: a takeover of 50,000 conversations kept stage 2's views and /metrics waiting 2.6 s (benchmarks/PROFILE.md,
"Where a takeover's seconds went"). In turns, the loop serves the rest of the worker between them; what the
rebuild gives must not change, and a revoke in the middle must leave nothing half built."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.core.wire import (
    DAY_LEDGER_PREFIX,
    WATERMARK_KEY_PREFIX,
    conversation_record,
    decode_conversation_record,
    record_partition,
    tombstone_record,
)
from services.scorer.inprocess import InProcessScorer
from services.scorer.ordering import in_turns
from services.scorer.stages import Out, all_at_once, turn
from tests.unit.test_scorer_properties import CHEAP_PROPERTY, Floor, final_now, floors

PARTITIONS = set(range(6))


def fed(floor: Floor) -> InProcessScorer:
    scorer = InProcessScorer()
    scorer.feed(floor.stream)
    scorer.tick(final_now(floor.stream))
    return scorer


Sent = tuple[str, bytes, bytes | None, int | None]


def rebuilt(scorer: InProcessScorer, records: list[Out], now: int) -> tuple[list[Sent], list[Sent]]:
    """What a rebuild sent (in order), and what the full tick after it sent (the re-send itself: in the order of a
    set, so sorted)."""
    def sent(r: Out) -> Sent:
        return r.topic, r.key, r.value, r.partition

    return [sent(r) for r in records], sorted(map(sent, scorer.conversations.tick(now)), key=repr)


@CHEAP_PROPERTY
@given(floors(), st.integers(1, 5))
def test_in_turns_gives_what_all_at_once_gives(floor: Floor, per_turn: int) -> None:
    scorer = fed(floor)
    stage, now = scorer.conversations, final_now(floor.stream)
    stage.revoke(PARTITIONS)
    at_once = rebuilt(scorer, stage.rebuild(PARTITIONS), now)
    stage.revoke(PARTITIONS)
    steps = stage.rebuilding(PARTITIONS, per_turn=per_turn)
    turns = 0
    while (records := turn(steps)) is None:
        turns += 1
    assert rebuilt(scorer, records, now) == at_once
    # A turn after every `per_turn` conversations (and tombstones), then after every `per_turn` day contributions.
    conversations = [raw for k, raw in scorer.conv_table.items()
                     if not k.startswith((DAY_LEDGER_PREFIX, WATERMARK_KEY_PREFIX))]
    with_days = sum(1 for raw in conversations if decode_conversation_record(raw)[3])
    assert turns == len(conversations) // per_turn + with_days // per_turn


@CHEAP_PROPERTY
@given(floors(max_conversations=30))
def test_a_revoke_between_turns_puts_nothing_in_place(floor: Floor) -> None:
    scorer = fed(floor)
    stage, now = scorer.conversations, final_now(floor.stream)
    stage.revoke(PARTITIONS)
    at_once = rebuilt(scorer, stage.rebuild(PARTITIONS), now)
    stage.revoke(PARTITIONS)
    steps = stage.rebuilding(PARTITIONS, per_turn=1)
    if turn(steps) is not None:  # the first turn: the table read, one conversation derived
        return  # nothing to rebuild in turns (no conversation): nothing to check
    stage.revoke(set())  # a rebalance: every revoke counts, whatever it takes away
    assert all_at_once(steps) == []
    assert not stage.parts and not stage.resending and not stage.days and not stage.store.caches
    # The next rebuild reads the table again and gives all of it.
    assert rebuilt(scorer, stage.rebuild(PARTITIONS), now) == at_once


async def test_the_loop_runs_between_turns() -> None:
    """Other tasks run while a rebuild is under way, about once a turn."""
    scorer = InProcessScorer()
    t = 1_800_000_000_000
    scorer.feed([{"event_id": f"o{i}", "type": "conversation.opened", "ts": t + i, "tenant": "acme",
                  "shop_id": "s1", "platform": "jd", "conversation_id": f"c{i}", "queue": "presales"}
                 for i in range(50)])
    stage = scorer.conversations
    stage.revoke(PARTITIONS)
    ran_meanwhile = 0
    done = asyncio.Event()

    async def other_work() -> None:
        nonlocal ran_meanwhile
        while not done.is_set():
            ran_meanwhile += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    ran_before = ran_meanwhile
    records = await in_turns(stage.rebuilding(PARTITIONS, per_turn=5))
    done.set()
    await other
    assert ran_meanwhile - ran_before >= 50 // 5 - 1  # a turn of the other task between each two of the rebuild's
    assert sum(live.open for part in stage.parts.values() for live in part.live.values()) == 50
    assert len([r for r in records if r.topic == "partials"]) == 2 * 6 * 3  # its resend markers: begin, both sources


@given(st.integers(0, 10_000), st.booleans(), st.one_of(st.none(), st.just([["2026-12-01", {"chats": 1}]])),
       st.text(max_size=8))
def test_record_partition_reads_what_decoding_reads(partition: int, tombstone: bool, days: Any, name: str) -> None:
    raw = (tombstone_record(partition, [name, "s", "jd", "presales", 5], days) if tombstone
           else conversation_record(partition, [name, "s", "jd", 5, -1], days))
    assert record_partition(raw) == decode_conversation_record(raw)[0] == partition
