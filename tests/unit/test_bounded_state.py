"""State that goes: idle views and old resolved alerts leave the topics (tombstones), names over a
tenant's limits are refused by stage 1 too, and the alert engine forgets scopes that went."""

from __future__ import annotations

from typing import Any

from services.core.alert_signals import Signals
from services.core.alerts import AlertEngine
from services.core.limits import TenantLimits
from services.core.scope import Scope, queue_total
from services.core.wire import parse_day_view_key, parse_view_key
from services.scorer.inprocess import InProcessScorer

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z


def ev(n: int, ts: int, etype: str, conv: str, queue: str, tenant: str = "t", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": etype, "ts": ts, "tenant": tenant, "shop_id": "s", "platform": "jd",
            "conversation_id": conv, "queue": queue, **extra}


def tick(s: InProcessScorer, now: int) -> tuple[set[Scope], set[Scope]]:
    """(view keys published, view keys tombstoned) by one tick of every stage (the day records aside)."""
    s._route(s.conversations.tick(now) + s.agents.tick())
    views, alerts = s.queues.tick(now)
    s.alerts.extend(alerts)
    queue_views = [v for v in views if parse_day_view_key(v.key) is None]
    return ({parse_view_key(v.key) for v in queue_views if v.value is not None},
            {parse_view_key(v.key) for v in queue_views if v.value is None})


def test_a_queue_idle_past_every_window_leaves_the_views_topic() -> None:
    s = InProcessScorer()
    s.feed([ev(1, T0, "conversation.opened", "c1", "old"),
            ev(2, T0 + 1000, "message", "c1", "old", sender="customer"),
            ev(3, T0 + 5000, "conversation.closed", "c1", "old", reason="abandoned")])
    published, _ = tick(s, T0 + 5000)
    old_keys = {k for k in published if k.queue == "old"}
    assert queue_total("old") in old_keys and Scope("t", "s", "jd", "old") in old_keys
    tombstoned: dict[Scope, int] = {}
    for minute in range(1, 90):  # traffic goes on in another queue
        now = T0 + minute * 60_000
        s.feed([ev(100 + minute, now, "conversation.opened", f"n{minute}", "new")])
        _, gone = tick(s, now)
        for k in gone:
            tombstoned.setdefault(k, minute)
    assert set(tombstoned) == old_keys  # every view of the idle queue, once, and nothing else
    assert min(tombstoned.values()) > 60  # not before the 1h window (and its grace) let it go
    assert not any(k.queue == "old" for k in s.queues.latest)


def test_an_open_conversation_keeps_its_queue_on_the_board() -> None:
    s = InProcessScorer()
    s.feed([ev(1, T0, "conversation.opened", "c1", "waiting"),
            ev(2, T0 + 1000, "message", "c1", "waiting", sender="customer")])
    tick(s, T0 + 1000)
    for minute in range(1, 90):
        now = T0 + minute * 60_000
        s.feed([ev(100 + minute, now, "conversation.opened", f"n{minute}", "new")])
        _, gone = tick(s, now)
        assert not any(k.queue == "waiting" for k in gone)  # a buyer still waits there


def test_stage_one_refuses_names_over_the_tenant_limits() -> None:
    s = InProcessScorer()
    s.conversations.limits = TenantLimits(tenants=10, queues=2, shops=10, agents=10, queues_per_agent=2)
    # One conversation id: one partition, so its budget sees every queue name.
    s.feed([ev(i, T0 + i, "message", "c1", f"q{i}", sender="customer") for i in range(5)])
    assert len(s.dead_letters) == 3
    import orjson

    reasons = [orjson.loads(d.value)["reason"] for d in s.dead_letters]  # type: ignore[arg-type]
    assert all("LIMIT_QUEUES_PER_TENANT" in r for r in reasons)
    assert s.metrics.dead_letters.labels("limit_queues")._value.get() == 3


def _sig(wait: float) -> Signals:
    return Signals(oldest_wait_s=wait)


def test_resolved_alerts_are_forgotten_after_the_retention_and_survive_a_restart() -> None:
    engine = AlertEngine(resolved_retention_ms=3_600_000)
    scope = queue_total("presales")
    fired = [a for t in range(0, 40_000, 1000) for a in engine.evaluate({scope: _sig(200.0)}, T0 + t)]
    assert [a.state for a in fired] == ["firing"]
    resolved = [a for t in range(40_000, 200_000, 1000) for a in engine.evaluate({scope: _sig(0.0)}, T0 + t)]
    assert [a.state for a in resolved] == ["resolved"]
    restored = AlertEngine.from_json(engine.to_json(), engine.rules)
    restored.resolved_retention_ms = 3_600_000
    assert restored.expired(T0 + 200_000) == []
    assert restored.expired(T0 + 3_900_000) == [fired[0].id]
    assert restored.expired(T0 + 4_000_000) == []  # once
    assert engine.expired(T0 + 3_900_000) == [fired[0].id]


def test_the_alert_engine_forgets_scopes_that_went() -> None:
    engine = AlertEngine()
    for i in range(100):
        engine.evaluate({queue_total(f"q{i}"): _sig(0.0)}, T0 + i * 1000)
    assert len(engine._first_seen) == 1  # each scope judged once, then gone (its view was tombstoned)


def test_the_scorer_tombstones_old_alerts_and_their_acks() -> None:
    s = InProcessScorer()
    for engine in s.queues.engines.values():
        engine.resolved_retention_ms = 600_000
    s.feed([ev(1, T0, "conversation.opened", "c1", "vip"),
            ev(2, T0 + 1000, "message", "c1", "vip", sender="customer")])
    for sec in range(5, 400, 5):  # the event clock moves with traffic elsewhere
        s.feed([ev(20_000 + sec, T0 + sec * 1000, "conversation.opened", f"j{sec}", "other")])
        tick(s, T0 + sec * 1000)
    s.feed([ev(3, T0 + 400_000, "message", "c1", "vip", sender="agent", agent_id="a1")])
    for sec in range(400, 1400, 5):
        s.feed([ev(10_000 + sec, T0 + sec * 1000, "conversation.opened", f"k{sec}", "other")])
        tick(s, T0 + sec * 1000)
    fired = {o.key for o in s.alerts if o.value is not None and not o.key.startswith(b"__engine__")}
    assert any(k.startswith(b"oldest_wait:vip:") for k in fired)
    tombs = {o.key for o in s.alerts if o.value is None}
    for key in (k for k in fired if k.startswith(b"oldest_wait:vip:")):
        assert key in tombs and b"ack:" + key in tombs
