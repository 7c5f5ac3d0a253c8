"""No hot key: one queue carrying all traffic still spreads over every partition of stage 1, and what
stage 2 receives per tick depends on the buckets that changed, not on how many events came."""

from __future__ import annotations

from typing import Any

from services.core.scope import queue_total
from services.scorer.inprocess import InProcessScorer

T = 1_800_000_000_000


def burst(first: int, n: int, at_ms: int) -> list[dict[str, Any]]:
    """n conversations opened and written to just after `at_ms`: one 1 s bucket, (at_ms, at_ms + 1 s]."""
    base = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd", "queue": "presales"}
    out: list[dict[str, Any]] = []
    for i in range(first, first + n):
        cid = f"c{i}"
        out.append({**base, "event_id": f"{cid}-o", "type": "conversation.opened", "ts": at_ms + 1,
                    "conversation_id": cid})
        out.append({**base, "event_id": f"{cid}-m", "type": "message", "ts": at_ms + 2, "conversation_id": cid,
                    "sender": "customer"})
    return out


def partials_after(s: InProcessScorer, events: list[dict[str, Any]], now: int) -> int:
    s.feed(events)
    out = s.conversations.tick(now)
    s._route(out)  # on to stage 2, as Kafka would
    return len([r for r in out if r.topic == "partials"])


def test_one_queue_spreads_over_every_partition() -> None:
    s = InProcessScorer(event_partitions=6)
    s.feed(burst(0, 3000, T))
    per_partition = [sum(live.open for live in part.live.values()) for part in s.conversations.parts.values()]
    assert len(per_partition) == 6 and sum(per_partition) == 3000
    assert min(per_partition) > 3000 / 6 * 0.7  # hashed by conversation: no partition is the queue's


def test_stage_two_input_does_not_grow_with_traffic() -> None:
    s = InProcessScorer(event_partitions=6, queue_partitions=3)
    partials_after(s, burst(0, 10, T), T)  # warm up: first sight of the scope
    small = partials_after(s, burst(10, 60, T + 1000), T + 1000)  # enough to reach all 6 partitions
    large = partials_after(s, burst(70, 10_000, T + 2000), T + 2000)
    # Per partition: the live counters, the one changed bucket, the shop's hour of the scorecard's day state
    # (arrivals) and a watermark per queue partition; 60 conversations or 10,000, the same records.
    assert small == large == 6 * (1 + 1 + 1 + 3)
    views = s.tick(T + 3000)
    assert views[queue_total("presales")]["live"]["open"] == 10_070  # and still exact
