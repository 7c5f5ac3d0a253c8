"""Queues named as the platforms name them: Chatwoot teams and inboxes, LiveChat groups, Sunshine
integrations, normalised to stable queue ids, with ADAPTER_QUEUE_MAP still in charge where it says
something, and what a rename in the platform does to a conversation already running."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.scope import Scope
from services.ingest.adapters import ADAPTERS, AdapterConfig, Context
from services.ingest.adapters.common import Mapped, Recall, queue_id
from services.scorer.inprocess import InProcessScorer
from tests.unit.test_adapters_common import livechat, valid

T0 = 1_800_000_000_000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Pre-Sales 售前", "pre-sales-售前"),
        ("  VIP   Support ", "vip-support"),
        ("ＶＩＰ　客服", "vip-客服"),  # full-width letters and space (NFKC)
        ("Straße", "strasse"),
        ("售后", "售后"),
        ("*", None),  # the scorer's "all queues"
        ("@agent:li", "agent-li"),  # never an agent's scope
        (":presales", "presales"),
        ("a:b*c/d", "a-b-c-d"),
        ("team.v2_east", "team.v2_east"),
        ("", None),
        ("---", None),
        (None, None),
        (42, None),
    ],
)
def test_queue_id(name: object, expected: str | None) -> None:
    assert queue_id(name) == expected


def test_queue_id_is_bounded_and_stable() -> None:
    long = queue_id("客服" * 100)
    assert long is not None and len(long) == 128
    assert queue_id("Pre-Sales 售前") == queue_id("pre-sales   售前") == queue_id("PRE-SALES 售前")


def chatwoot_created(team: dict[str, Any] | None, inbox: int = 3, display_id: int = 42) -> dict[str, Any]:
    return {
        "event": "conversation_created", "id": display_id, "inbox_id": inbox, "status": "open",
        "messages": [{"id": 1, "account_id": 7, "message_type": 0}], "created_at": T0 // 1000,
        "meta": {"sender": {"id": 163}, "assignee": None, "team": team},
    }


def adapt(platform: str, payload: Any, config: AdapterConfig | None = None, recall: Recall | None = None) -> Mapped:
    ctx = Context(received_ms=T0, config=config or AdapterConfig(), recall=recall or Recall())
    mapped = ADAPTERS[platform](payload, ctx)
    assert mapped.errors == []
    valid(mapped.events)
    return mapped


def test_chatwoot_queue_is_the_team_name() -> None:
    [opened] = adapt("chatwoot", chatwoot_created({"id": 2, "name": "Aftersales 售后"})).events
    assert (opened["queue"], opened["queue_source_id"]) == ("aftersales-售后", "chatwoot:7:team:2")


def test_chatwoot_queue_without_team_is_the_inbox_name_once_a_delivery_showed_it() -> None:
    recall = Recall()
    [opened] = adapt("chatwoot", chatwoot_created(None), recall=recall).events
    assert (opened["queue"], opened["queue_source_id"]) == ("inbox-3", "chatwoot:7:inbox:3")  # only its id known
    message = {
        "event": "message_created", "id": 900, "message_type": "incoming", "content": "hi", "account": {"id": 7},
        "inbox": {"id": 3, "name": "Web Shop"}, "conversation": {"id": 42, "inbox_id": 3}, "sender": {"id": 163},
        "created_at": "2027-01-15T08:00:01Z",
    }
    mapped = adapt("chatwoot", message, recall=recall)
    assert mapped.events[0]["queue"] == "web-shop"
    recall.learn(mapped)
    [opened] = adapt("chatwoot", chatwoot_created(None, display_id=43), recall=recall).events
    assert opened["queue"] == "web-shop"


def test_queue_map_still_overrides_names() -> None:
    team = {"id": 2, "name": "Aftersales"}
    by_team = AdapterConfig(queue_map={"chatwoot:team:2": "after"})
    assert adapt("chatwoot", chatwoot_created(team), by_team).events[0]["queue"] == "after"
    by_inbox = AdapterConfig(queue_map={"chatwoot:7:inbox:3": "presales"})  # the explicit mapping wins
    [opened] = adapt("chatwoot", chatwoot_created(team), by_inbox).events
    assert (opened["queue"], opened["queue_source_id"]) == ("presales", "chatwoot:7:inbox:3")
    whole_platform = AdapterConfig(queue_map={"chatwoot": "all-chatwoot"})
    assert adapt("chatwoot", chatwoot_created(team), whole_platform).events[0]["queue"] == "all-chatwoot"


def test_chatwoot_team_change_transfers_to_the_new_team_by_name() -> None:
    update = chatwoot_created({"id": 5, "name": "VIP"})
    update.update(event="conversation_updated", updated_at=T0 / 1000 + 30,
                  changed_attributes=[{"team_id": {"previous_value": 2, "current_value": 5}}])
    [moved] = adapt("chatwoot", update).events
    assert moved["type"] == "conversation.transferred"
    assert (moved["to_queue"], moved["to_queue_source_id"]) == ("vip", "chatwoot:7:team:5")


def test_livechat_queue_is_the_group_by_id() -> None:
    delivery = livechat("incoming_chat", {"chat": {
        "id": "C1", "users": [{"id": "u-1", "type": "customer"}],
        "thread": {"id": "T1", "created_at": "2027-01-15T08:00:00Z", "access": {"group_ids": [19]}, "events": []},
    }})
    mapped = adapt("livechat", delivery)
    [opened] = mapped.events
    assert (opened["queue"], opened["queue_source_id"]) == ("group-19", "livechat:org-1:group:19")
    vip = AdapterConfig(queue_map={"livechat:group:19": "vip"})
    assert adapt("livechat", delivery, vip).events[0]["queue"] == "vip"
    # An agent's availability names no groups: the agent serves the groups seen so far.
    recall = Recall()
    recall.learn(mapped)
    status = livechat("routing_status_set", {"agent_id": "a@example.com", "status": "accepting_chats"})
    assert adapt("livechat", status, recall=recall).events[0]["queues"] == ["group-19"]
    assert adapt("livechat", status).events[0]["queues"] == ["default"]  # nothing seen yet


def test_sunshine_queue_is_the_integration() -> None:
    delivery = {"app": {"id": "app-1"}, "webhook": {"id": "w"}, "events": [{
        "id": "ev-1", "type": "conversation:create", "createdAt": "2027-01-15T08:00:00Z",
        "payload": {"conversation": {"id": "c-1"}, "source": {"type": "whatsapp", "integrationId": "int-9"}},
    }]}
    [opened] = adapt("sunshine", delivery).events
    assert (opened["queue"], opened["queue_source_id"]) == ("whatsapp", "sunshine:app-1:integration:int-9")
    mapped = AdapterConfig(queue_map={"sunshine:integration:int-9": "wa-cn"})
    assert adapt("sunshine", delivery, mapped).events[0]["queue"] == "wa-cn"


def test_renaming_a_team_does_not_split_a_running_conversation() -> None:
    """The scorer keeps a conversation's queue from its first event (only a transfer moves it), so
    events named after the rename still count in the queue the conversation opened in; conversations
    opened after the rename count in the new name's queue."""
    before = chatwoot_created({"id": 2, "name": "Support"})
    renamed = {"id": 2, "name": "Customer Care"}

    def message(mid: int, display_id: int, at_s: int, kind: str, sender: dict[str, Any]) -> dict[str, Any]:
        return {
            "event": "message_created", "id": mid, "message_type": kind, "content": "hi", "account": {"id": 7},
            "inbox": {"id": 3, "name": "Web"}, "sender": sender, "created_at": T0 // 1000 + at_s,
            "conversation": {"id": display_id, "inbox_id": 3, "meta": {"team": renamed}},
        }

    deliveries = [
        before,
        message(1, 42, 1, "incoming", {"id": 163}),
        message(2, 42, 21, "outgoing", {"id": 5, "type": "user"}),
        chatwoot_created(renamed, display_id=43),
    ]
    events = [e for d in deliveries for e in adapt("chatwoot", d).events]
    assert [e.get("queue") for e in events] == ["support", "customer-care", None, "customer-care"]
    scorer = InProcessScorer(event_clock=True)
    scorer.feed(events)
    views = scorer.tick(T0 + 60_000)
    support = views[Scope("default", "*", "chatwoot", "support")]["windows"]["5m"]
    care = views[Scope("default", "*", "chatwoot", "customer-care")]["windows"]["5m"]
    assert (support["arrivals"], support["frt"]["count"], support["frt"]["mean_s"]) == (1, 1, 20.0)
    assert (care["arrivals"], care["frt"]["count"]) == (1, 0)


def test_a_name_without_an_id_still_names_the_queue() -> None:
    """Sunshine may send `source.type` without `integrationId`: the type still names the queue."""
    delivery = {"app": {"id": "app-1"}, "webhook": {"id": "w"}, "events": [{
        "id": "ev-1", "type": "conversation:create", "createdAt": "2027-01-15T08:00:00Z",
        "payload": {"conversation": {"id": "c-1"}, "source": {"type": "web"}},
    }]}
    [opened] = adapt("sunshine", delivery).events
    assert opened["queue"] == "web" and "queue_source_id" not in opened
