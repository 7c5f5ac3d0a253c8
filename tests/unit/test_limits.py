"""Per-tenant name limits: at ingest (422 per event with a reason, counted) and as a pure budget."""

from __future__ import annotations

from typing import Any

from services.core.events import ChatEvent
from services.core.limits import NameBudget, TenantLimits
from tests.unit.test_ingest_api import NOW_MS, MakeHarness, make_harness  # noqa: F401  (the fixture)

LIMITS = TenantLimits(tenants=2, queues=3, shops=2, agents=2, queues_per_agent=2, idle_s=3600)


def event(n: int, tenant: str = "t1", shop: str = "s1", queue: str | None = "q1", **extra: Any) -> ChatEvent:
    fields: dict[str, Any] = {"conversation_id": f"c{n}", "queue": queue, "type": "conversation.opened"}
    fields.update(extra)
    return ChatEvent(event_id=f"e{n}", ts_ms=0, tenant=tenant, shop_id=shop, platform="jd", **fields)


def test_new_names_past_a_limit_are_refused_and_known_ones_still_pass() -> None:
    budget = NameBudget(LIMITS)
    for i, q in enumerate(("q1", "q2", "q3")):
        assert budget.admit(event(i, queue=q), 0) is None
    over = budget.admit(event(9, queue="q4"), 0)
    assert over is not None and over.code == "limit_queues" and "LIMIT_QUEUES_PER_TENANT" in over.reason
    assert budget.admit(event(10, queue="q2"), 0) is None  # a queue it has is never refused
    assert budget.in_use("t1", "queue") == 3
    # Another tenant has its own budget; a third tenant is one too many.
    assert budget.admit(event(11, tenant="t2", queue="q4"), 0) is None
    over = budget.admit(event(12, tenant="t3"), 0)
    assert over is not None and over.code == "limit_tenants"


def test_a_refused_event_counts_none_of_its_names() -> None:
    budget = NameBudget(LIMITS)
    assert budget.admit(event(1, shop="s1"), 0) is None
    assert budget.admit(event(2, shop="s2"), 0) is None
    status = event(3, shop="s3", queue=None, type="agent.status", agent_id="a1", conversation_id=None,
                   status="online", capacity=2, queues=("q1",))
    over = budget.admit(status, 0)
    assert over is not None and over.code == "limit_shops"
    assert budget.in_use("t1", "agent") == 0  # the agent of the refused event was not counted


def test_agents_and_queues_per_agent() -> None:
    budget = NameBudget(LIMITS)

    def status(n: int, agent: str, queues: tuple[str, ...]) -> ChatEvent:
        return event(n, queue=None, type="agent.status", agent_id=agent, conversation_id=None, status="online",
                     capacity=2, queues=queues)

    over = budget.admit(status(1, "a1", ("q1", "q2", "q3")), 0)
    assert over is not None and over.code == "limit_queues_per_agent"
    assert budget.admit(status(2, "a1", ("q1", "q2")), 0) is None
    assert budget.admit(event(3, type="conversation.assigned", agent_id="a2"), 0) is None
    over = budget.admit(event(4, type="conversation.assigned", agent_id="a3"), 0)
    assert over is not None and over.code == "limit_agents"


def test_names_unused_past_idle_no_longer_count() -> None:
    budget = NameBudget(LIMITS)
    for i, q in enumerate(("q1", "q2", "q3")):
        assert budget.admit(event(i, queue=q), i * 1000) is None
    assert budget.admit(event(5, queue="q4"), 3_600_000) is not None  # q1..q3 used within the hour
    assert budget.admit(event(6, queue="q4"), 3_600_000 + 1500) is None  # q1 (at 0 s) and q2 (1 s) went idle
    assert budget.in_use("t1", "queue") == 2


def test_memory_stays_bounded_whatever_a_sender_tries() -> None:
    budget = NameBudget(LIMITS)
    for i in range(2000):
        budget.admit(event(i, tenant=f"t{i % 7}", shop=f"s{i}", queue=f"q{i}"), i)
    assert len(budget.tenants) <= LIMITS.tenants
    assert all(len(kind) <= 3 for per in budget.names.values() for kind in per.values())


async def test_ingest_refuses_events_over_a_limit_per_event(make_harness: MakeHarness) -> None:  # noqa: F811
    h = await make_harness(limits=LIMITS)
    base = {"type": "conversation.opened", "ts": NOW_MS, "tenant": "t1", "shop_id": "s1", "platform": "jd"}
    batch = [{**base, "event_id": f"o{i}", "conversation_id": f"c{i}", "queue": f"q{i}"} for i in range(5)]
    r = await h.post(batch)
    assert r.status_code == 422
    body = r.json()
    assert body["accepted"] == 3
    assert [e["index"] for e in body["errors"]] == [3, 4]
    assert all("LIMIT_QUEUES_PER_TENANT" in e["reason"] for e in body["errors"])
    assert h.sample("floorwatch_ingest_rejected_total", reason="limit_queues") == 2
    assert len(h.producer.records) == 3
    # All or nothing, when asked for.
    r = await h.post([{**base, "event_id": "o9", "conversation_id": "c9", "queue": "q1"},
                      {**base, "event_id": "o10", "conversation_id": "c10", "queue": "q-new"}],
                     params={"atomic": "true"})
    assert r.status_code == 422 and r.json()["accepted"] == 0
