"""A rebuild's records go out before any change a later event makes (services/scorer/ordering.py).

A restarted worker's tick rebuilds stage 1 and re-asserts the chat slot of each conversation it holds, sending
the records one awaited `send` at a time, while the events' stream scores on. Here `send` yields to the loop on
every record, as a full batch waiting for Kafka does, and an event closes a conversation while the rebuild is
being sent: the agent stage must read the rebuild's re-assertion (open, as read) before the close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from services.core.events import parse_event, state_key
from services.scorer.inprocess import InProcessScorer
from services.scorer.ordering import StageOrder
from services.scorer.stages import Out

T = 1_800_000_000_000
SHOP = {"tenant": "acme", "shop_id": "s1", "platform": "jd"}
CHATS = 20  # conversations held: the rebuild re-asserts each, so it takes many sends


def restarted_stage_one() -> tuple[InProcessScorer, bytes, bytes]:
    """Agent a1 holding CHATS open conversations, stage 1 as a restarted worker has it (not rebuilt yet), and the
    last conversation's close still to be scored (its record's key, the conversation's, and value)."""
    scorer = InProcessScorer(event_partitions=1, queue_partitions=1)
    events: list[dict[str, Any]] = [{**SHOP, "event_id": "st", "type": "agent.status", "ts": T, "agent_id": "a1",
                                     "status": "online", "queues": ["presales"], "capacity": CHATS}]
    for i in range(CHATS):
        events += [
            {**SHOP, "event_id": f"o{i}", "type": "conversation.opened", "ts": T + i, "conversation_id": f"c{i}",
             "queue": "presales"},
            {**SHOP, "event_id": f"a{i}", "type": "conversation.assigned", "ts": T + 100 + i,
             "conversation_id": f"c{i}", "agent_id": "a1"},
        ]
    scorer.feed(events)
    scorer.conversations.revoke({0})
    close = parse_event({**SHOP, "event_id": "x", "type": "conversation.closed", "ts": T + 1_000,
                         "conversation_id": f"c{CHATS - 1}", "reason": "resolved"})
    return scorer, close.key.encode(), close.to_json()


def held_after(sent: list[Out], conversation: bytes) -> bool:
    """Whether the agent stage, reading `sent` in order, ends with the conversation holding a1's slot."""
    held = False
    for r in sent:
        if r.topic != "agent_changes" or r.key != state_key("acme", "a1").encode() or r.value is None:
            continue
        change = orjson.loads(r.value)
        if change.get("c") != conversation.decode():
            continue
        held = change["active"] if change["k"] == "assign" else bool(change["s"]) and change["s"][-1][1] is None
    return held


async def rebuild_during_a_batch(ordered: bool) -> tuple[list[Out], bytes]:
    """The tick rebuilds and sends; the batch with the close starts once the tick's first record is out. What was
    sent, in order, and the closed conversation's key."""
    scorer, key, value = restarted_stage_one()
    stage = scorer.conversations
    order = StageOrder(stage)
    sent: list[Out] = []
    started = asyncio.Event()

    async def send(records: list[Out]) -> None:
        for r in records:
            sent.append(r)
            started.set()
            await asyncio.sleep(0)  # as a record waiting for its batch to drain

    async def tick() -> None:
        if ordered:
            async with order.tick({0}, send):
                pass
        else:  # the tick before ordering.py: the rebuild sent with nothing held back
            await send(stage.rebuild({0}))

    @contextlib.asynccontextmanager
    async def batch_held() -> AsyncIterator[None]:
        if ordered:
            async with order.lock:
                yield
        else:
            yield

    async def batch() -> None:
        await started.wait()
        async with batch_held():
            if 0 not in stage.parts:  # as app.py's batch: a partition not built yet is rebuilt first
                await send(stage.rebuild({0}))
            await send(stage.on_event(key, value, 0, 0))
            stage.flush(0)

    await asyncio.gather(tick(), batch())
    return sent, key


async def test_the_close_goes_out_after_the_rebuild_that_read_the_chat_open() -> None:
    sent, conversation = await rebuild_during_a_batch(ordered=True)
    assert not held_after(sent, conversation)
    kinds = [orjson.loads(r.value)["k"] for r in sent if r.topic == "agent_changes" and r.value is not None]
    assert kinds == ["spans"] * CHATS + ["assign"]  # every re-assertion, then the close


async def test_without_the_order_the_close_is_overtaken() -> None:
    """Not vacuous: the same two tasks without StageOrder send the close before the re-assertion that read the
    chat open, and the agent holds a closed chat."""
    sent, conversation = await rebuild_during_a_batch(ordered=False)
    assert held_after(sent, conversation)


async def test_the_tick_waits_for_no_batch_once_built() -> None:
    """With every owned partition built and no re-send under way, the tick does not take the lock: a batch in
    progress does not hold it up."""
    scorer, _key, _value = restarted_stage_one()
    stage = scorer.conversations
    order = StageOrder(stage)
    sent: list[Out] = []

    async def send(records: list[Out]) -> None:
        sent.extend(records)

    async with order.tick({0}, send):  # the rebuild
        pass
    stage.tick(0)  # the full tick that ends its re-send
    assert not order.settling({0})
    entered = asyncio.Event()

    async def tick() -> None:
        async with order.tick({0}, send):
            entered.set()

    async with order.lock:  # a batch in progress
        ticking = asyncio.create_task(tick())
        await asyncio.sleep(0)  # one step of the loop: a tick that waited for the lock would be parked on it now
        try:
            assert entered.is_set()
        finally:
            ticking.cancel()
    assert order.settling({0, 1})  # a partition newly owned
