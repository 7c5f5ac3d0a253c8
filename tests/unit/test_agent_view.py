"""The per-agent (Chitu) view, hand-computed: handled chats, FRT and reply means, messages,
answer/question ratio, chats now and at most, and time per status."""

from __future__ import annotations

from typing import Any

from services.api.agents import agent_view
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer

T = 1_800_000_000_000
BASE = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}


def ev(n: str, etype: str, s: float, **extra: Any) -> dict[str, Any]:
    return {**BASE, "event_id": n, "type": etype, "ts": T + int(s * 1000), **extra}


def events() -> list[dict[str, Any]]:
    status = {"capacity": 3, "queues": ["presales"]}
    return [
        ev("s1", "agent.status", 0, agent_id="a1", status="online", **status),
        ev("1o", "conversation.opened", 0, conversation_id="c1", queue="presales"),
        ev("1c", "message", 2, conversation_id="c1", sender="customer"),
        ev("1a", "conversation.assigned", 4, conversation_id="c1", agent_id="a1"),
        ev("1r", "message", 10, conversation_id="c1", sender="agent", agent_id="a1"),  # FRT 8, reply 8
        ev("2c", "message", 5, conversation_id="c2", sender="customer", queue="presales"),
        ev("2r", "message", 15, conversation_id="c2", sender="agent", agent_id="a1"),  # FRT 10, reply 10; assigns
        ev("1c2", "message", 20, conversation_id="c1", sender="customer"),  # a question to a1
        ev("1r2", "message", 50, conversation_id="c1", sender="agent", agent_id="a1"),  # reply 30
        ev("1x", "conversation.closed", 60, conversation_id="c1", reason="resolved"),  # handled 56 s
        ev("s2", "agent.status", 100, agent_id="a1", status="away", **status),
    ]


def test_agent_view_hand_computed() -> None:
    s = InProcessScorer(event_clock=False)  # now = 120 s, past the last event
    s.feed(events())
    views = s.tick(T + 120_000)
    a = agent_view(views[Scope("acme", "acme-jd", "jd", "@agent:a1")])
    assert (a["agent_id"], a["status"], a["capacity"], a["active_chats"]) == ("a1", "away", 3, 1)
    w = a["windows"]["5m"]
    assert w["chats_handled"] == 1 and w["aht_s"] == 56.0
    assert w["first_responses"] == 2 and w["frt_mean_s"] == 9.0
    assert w["replies"] == 3 and w["reply_mean_s"] == 16.0
    assert w["messages_sent"] == 3 and w["answer_question_ratio"] == 3.0  # one question while assigned
    assert w["max_concurrent"] == 2
    assert w["status_seconds"] == {"online": 100.0, "busy": 0.0, "away": 20.0, "offline": 0.0}
    assert w["platform_rule"] == {"counted": 2, "met": 2, "met_rate": 1.0}  # JD: first replies within 30 s
    # The queue's figures are not changed by the agent's copies.
    q = views[queue_total("presales")]["windows"]["5m"]
    assert q["frt"]["count"] == 2 and q["reply"]["count"] == 3 and q["closed"] == 1


def test_agent_views_stay_out_of_queue_listings() -> None:
    s = InProcessScorer()
    s.feed(events())
    views = s.tick(T + 120_000)
    assert all(not k.queue.startswith("@agent:") or (k.tenant, k.shop_id, k.platform) == ("acme", "acme-jd", "jd")
               for k in views)
