"""Tenants apart (issue 16, finding 7): conversation and agent state is keyed by (tenant, id), so two tenants
using the same conversation id or agent id never merge, and one tenant cannot close, reassign or load another
tenant's conversation or agent."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.api.agents import agent_view
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.events import parse_event, split_state_key, state_key
from services.core.figures import QueueView
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer

T = 1_800_000_000_000
SHOPS = {"acme": {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"},
         "bolt": {"tenant": "bolt", "shop_id": "bolt-jd", "platform": "jd"}}


def ev(tenant: str, n: str, etype: str, s: float, **extra: Any) -> dict[str, Any]:
    return {**SHOPS[tenant], "event_id": f"{tenant}-{n}", "type": etype, "ts": T + int(s * 1000), **extra}


def status(tenant: str, n: str, s: float, agent: str, st: str, capacity: int) -> dict[str, Any]:
    return ev(tenant, n, "agent.status", s, agent_id=agent, status=st, capacity=capacity, queues=["presales"])


def scorer(events: list[dict[str, Any]], now_s: float) -> dict[Scope, QueueView]:
    s = InProcessScorer(event_clock=False)
    s.feed(events)
    assert not s.dead_letters
    return s.tick(T + int(now_s * 1000))


def queue(views: dict[Scope, QueueView], tenant: str) -> QueueView:
    shop = SHOPS[tenant]
    return views[Scope(tenant, shop["shop_id"], shop["platform"], "presales")]


def test_the_state_key_is_per_tenant_and_splits_back() -> None:
    assert state_key("acme", "c1") != state_key("bolt", "c1")
    assert split_state_key(state_key("acme", "c:1")) == ("acme", "c:1")
    # Ids are printable (docs/events-bounds.md): the separator cannot be part of a tenant or an id.
    a = parse_event(ev("acme", "1", "message", 0, conversation_id="c1", sender="customer"))
    b = parse_event(ev("bolt", "1", "message", 0, conversation_id="c1", sender="customer"))
    assert a.key != b.key and split_state_key(a.key) == ("acme", "c1")
    st_a = parse_event(status("acme", "s", 0, "a1", "online", 1))
    assert split_state_key(st_a.key) == ("acme", "a1")
    with pytest.raises(ValueError):
        split_state_key("c1")


def test_two_tenants_with_the_same_conversation_id_are_two_conversations() -> None:
    views = scorer([
        ev("acme", "1", "conversation.opened", 0, conversation_id="c1", queue="presales"),
        ev("acme", "2", "message", 1, conversation_id="c1", sender="customer"),
        ev("acme", "3", "message", 11, conversation_id="c1", sender="agent", agent_id="x"),  # FRT 10 s
        ev("bolt", "1", "conversation.opened", 2, conversation_id="c1", queue="presales"),
        ev("bolt", "2", "message", 3, conversation_id="c1", sender="customer"),
        ev("bolt", "3", "message", 43, conversation_id="c1", sender="agent", agent_id="y"),  # FRT 40 s
        ev("bolt", "4", "message", 50, conversation_id="c1", sender="customer"),  # bolt's buyer waits again
    ], now_s=60)
    acme, bolt = queue(views, "acme"), queue(views, "bolt")
    assert acme["windows"]["5m"]["arrivals"] == 1 and bolt["windows"]["5m"]["arrivals"] == 1
    assert acme["windows"]["5m"]["frt"]["count"] == 1 and acme["windows"]["5m"]["frt"]["mean_s"] == 10.0
    assert bolt["windows"]["5m"]["frt"]["count"] == 1 and bolt["windows"]["5m"]["frt"]["mean_s"] == 40.0
    assert acme["live"]["open"] == 1 and bolt["live"]["open"] == 1
    assert acme["live"]["awaiting_reply"] == 0 and bolt["live"]["awaiting_reply"] == 1
    total = views[queue_total("presales")]
    assert total["live"]["open"] == 2 and total["windows"]["5m"]["arrivals"] == 2


def test_a_tenants_close_does_not_close_another_tenants_conversation() -> None:
    views = scorer([
        ev("acme", "1", "conversation.opened", 0, conversation_id="c1", queue="presales"),
        ev("acme", "2", "message", 1, conversation_id="c1", sender="customer"),
        ev("bolt", "1", "conversation.closed", 5, conversation_id="c1", reason="resolved"),
        ev("bolt", "2", "conversation.assigned", 6, conversation_id="c1", agent_id="a1"),
    ], now_s=30)
    acme = queue(views, "acme")
    assert acme["live"]["open"] == 1 and acme["live"]["unassigned"] == 1
    assert acme["live"]["oldest_wait_s"] == 29.0
    assert acme["windows"]["5m"]["closed"] == 0


def test_two_tenants_agents_with_the_same_id_stay_apart() -> None:
    views = scorer([
        status("acme", "s1", 0, "a1", "online", 3),
        status("bolt", "s1", 0, "a1", "away", 1),
        status("bolt", "s2", 20, "a1", "offline", 1),
        ev("acme", "1", "conversation.opened", 1, conversation_id="c1", queue="presales"),
        ev("acme", "2", "conversation.assigned", 2, conversation_id="c1", agent_id="a1"),
        ev("acme", "3", "message", 4, conversation_id="c1", sender="agent", agent_id="a1"),
        ev("acme", "4", "conversation.opened", 3, conversation_id="c2", queue="presales"),
        ev("acme", "5", "conversation.assigned", 5, conversation_id="c2", agent_id="a1"),
        ev("bolt", "1", "conversation.opened", 1, conversation_id="c9", queue="presales"),
        ev("bolt", "2", "message", 2, conversation_id="c9", sender="customer"),
        ev("bolt", "3", "message", 9, conversation_id="c9", sender="agent", agent_id="a1"),
        ev("bolt", "4", "conversation.closed", 10, conversation_id="c9", reason="resolved"),
    ], now_s=40)
    a = agent_view(views[Scope("acme", "acme-jd", "jd", "@agent:a1")])
    b = agent_view(views[Scope("bolt", "bolt-jd", "jd", "@agent:a1")])
    assert (a["status"], a["capacity"], a["active_chats"]) == ("online", 3, 2)
    assert (b["status"], b["capacity"], b["active_chats"]) == ("offline", 1, 0)
    assert a["windows"]["5m"]["max_concurrent"] == 2 and b["windows"]["5m"]["max_concurrent"] == 1
    assert a["windows"]["5m"]["status_seconds"] == {"online": 40.0, "busy": 0.0, "away": 0.0, "offline": 0.0}
    assert b["windows"]["5m"]["status_seconds"] == {"online": 0.0, "busy": 0.0, "away": 20.0, "offline": 20.0}
    assert a["windows"]["5m"]["chats_handled"] == 0 and b["windows"]["5m"]["chats_handled"] == 1
    assert a["windows"]["5m"]["messages_sent"] == 1 and b["windows"]["5m"]["messages_sent"] == 1
    acme, bolt = queue(views, "acme")["live"], queue(views, "bolt")["live"]
    assert (acme["agents_online"], acme["slots_capacity"], acme["slots_active"]) == (1, 3, 2)
    assert (bolt["agents_online"], bolt["slots_capacity"], bolt["slots_active"]) == (0, 0, 0)


async def test_the_api_tells_two_tenants_agents_apart() -> None:
    views = scorer([status("acme", "s1", 0, "a1", "online", 3), status("bolt", "s1", 0, "a1", "away", 1)], now_s=10)
    store = ViewStore("unused:9092", "unused")
    store.views.update(views)
    store.caught_up.set()
    app = create_app(ApiSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        listed = (await c.get("/v1/agents")).json()["agents"]
        assert sorted((a["tenant"], a["agent_id"], a["status"]) for a in listed) == [
            ("acme", "a1", "online"), ("bolt", "a1", "away")]
        assert (await c.get("/v1/agents/a1")).status_code == 409  # whose? not the first one found
        one = await c.get("/v1/agents/a1", params={"tenant": "bolt"})
        assert (one.status_code, one.json()["tenant"], one.json()["status"]) == (200, "bolt", "away")
        assert (await c.get("/v1/agents/a1", params={"tenant": "nobody"})).status_code == 404
