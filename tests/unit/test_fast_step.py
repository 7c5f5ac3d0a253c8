"""Stage 2's fast step (between ticks): a new figure goes out as soon as its partials arrive, exactly as the
tick would show it at that moment, and nothing else moves (agents' views and the alert rules wait for the tick)."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.scope import is_agent_scope, queue_total
from services.scorer.inprocess import InProcessScorer
from tests.unit.test_agent_view import T, ev, events

QUEUE_TOTAL = queue_total("presales")


def busy_scorer(event_clock: bool = True) -> InProcessScorer:
    s = InProcessScorer(event_clock=event_clock)
    s.feed(events())
    s.tick(T + 120_000)
    return s


def test_a_fast_step_publishes_the_changed_queue_views_as_the_tick_would() -> None:
    fast, full = busy_scorer(), busy_scorer()
    waiting_before = fast.queues.latest[QUEUE_TOTAL]["live"]["awaiting_reply"]
    opened = [ev("9o", "conversation.opened", 120.1, conversation_id="c9", queue="presales"),
              ev("9c", "message", 120.1, conversation_id="c9", sender="customer")]
    for s in (fast, full):
        s.feed(opened)
    published = fast.tick(T + 120_250, fast=True)
    assert QUEUE_TOTAL in published and not any(is_agent_scope(k.queue) for k in published)
    assert not fast.alerts[len(full.alerts):] and not fast.tombstoned
    expected = full.tick(T + 120_250)
    for key, view in published.items():
        assert view == expected[key], key  # exact: what the tick shows at that moment
    assert published[QUEUE_TOTAL]["live"]["awaiting_reply"] == waiting_before + 1  # the new buyer shows


def test_a_fast_step_with_nothing_new_publishes_nothing() -> None:
    s = busy_scorer()
    assert s.tick(T + 120_250, fast=True) == {}


@pytest.mark.parametrize("event_clock", [True, False], ids=["event clock", "wall clock"])
def test_fast_steps_between_ticks_end_where_ticks_alone_do(event_clock: bool) -> None:
    """The compacted views (the last record per key) after the next tick are the same with or without fast steps,
    and so are the alerts and the scorecard's day records (agents' figures and days go out on the tick)."""
    with_fast, ticks_only = busy_scorer(event_clock), busy_scorer(event_clock)
    compacted: dict[str, dict[Any, Any]] = {"fast": {}, "ticks": {}}
    for second in range(121, 131):
        more = [ev(f"{second}o", "conversation.opened", second + 0.1, conversation_id=f"d{second}", queue="presales"),
                ev(f"{second}c", "message", second + 0.2, conversation_id=f"d{second}", sender="customer")]
        for s in (with_fast, ticks_only):
            s.feed(more)
        for quarter in (250, 500, 750):
            compacted["fast"].update(with_fast.tick(T + second * 1000 + quarter, fast=True))
        compacted["fast"].update(with_fast.tick(T + second * 1000 + 1000))
        compacted["ticks"].update(ticks_only.tick(T + second * 1000 + 1000))
    assert compacted["fast"] == compacted["ticks"]
    assert any(is_agent_scope(k.queue) for k in compacted["fast"])
    assert with_fast.alerts == ticks_only.alerts
    assert with_fast.day_records == ticks_only.day_records and with_fast.day_records
