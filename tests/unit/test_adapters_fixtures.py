"""Every real payload in shared/fixtures/platforms through its adapter and through the HTTP endpoint.

EXPECTED names each file's outcome; a fixture file missing from it fails the run, so a new
fixture is never silently untested. Placeholders of the vendors' docs (`// "Event" object`)
are also filled with the strict samples of livechat/structures/ for the shapes they stand for.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ingest.adapters import ADAPTERS, AdapterConfig, AdapterError, Context
from services.ingest.adapters.common import Mapped
from tests.unit.test_adapters_common import (
    FIXTURES,
    LIVECHAT_SECRET,
    NOW_MS,
    MakeHooks,
    fixture,
    fixture_files,
    load_fixture,
    make_hooks,
    valid,
)

__all__ = ["make_hooks"]  # the fixture, imported for pytest

PLATFORM_OF = {"chatwoot": "chatwoot", "livechat": "livechat", "sunshine_conversations": "sunshine"}
LC_ORG = "390e44e6-f1e6-0368c-z6ddb-74g14508c2ex"
LC_CONV = f"livechat:{LC_ORG}:PJ0MRSHTDG:K600PKZON8"
SC_APP = "5ebee0975ac5304b664a12fa"
SC_CONV = f"sunshine:{SC_APP}:f52b01137aa6c250bc7251fa"

# relative path -> ("events", [(type, {field: value})]) | ("ignored", [names]) | ("error", text) | ("unparseable",)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "chatwoot/captured/contact_updated.NextCRM.json": ("ignored", ["contact_updated"]),
    "chatwoot/captured_2025_11/conversation_created.json": ("events", [
        ("conversation.opened", {
            "event_id": "chatwoot:1:150:opened", "ts": 1763177714000, "conversation_id": "chatwoot:1:150",
            "queue": "default", "shop_id": "chatwoot:1:1", "customer_id": "chatwoot:1:contact:163",
            "channel": "webwidget", "tenant": "default", "platform": "chatwoot",
        }),
    ]),
    # Fired at creation with status pending (an agent bot's inbox): neither a handoff nor a close.
    "chatwoot/captured_2025_11/conversation_status_changed.json": ("ignored", ["conversation_status_changed"]),
    # changed_attributes of the creation: status open -> pending (handed to the bot), no assignee.
    "chatwoot/captured_2025_11/conversation_updated.json": ("ignored", ["conversation_updated"]),
    "chatwoot/captured_2025_11/message_created.json": ("events", [
        ("message", {
            "event_id": "chatwoot:1:msg:810", "ts": 1763177714179, "conversation_id": "chatwoot:1:150",
            "sender": "customer", "chars": 2, "customer_id": "chatwoot:1:contact:163", "queue": "default",
        }),
    ]),
    "chatwoot/captured_2025_11/webwidget_triggered.json": ("ignored", ["webwidget_triggered"]),
    "chatwoot/official_docs/message_created.sample.jsonc": ("events", [
        ("message", {"event_id": "chatwoot:1:msg:1", "ts": 1583240757000, "conversation_id": "chatwoot:1:1",
                     "sender": "customer", "chars": 2}),
    ]),
    "chatwoot/official_docs/schema_conversation_created.jsonc": ("error", "?account="),
    "chatwoot/official_docs/schema_conversation_status_changed.jsonc": ("ignored", ["conversation_status_changed"]),
    "chatwoot/official_docs/schema_conversation_updated.jsonc": ("ignored", ["conversation_updated"]),
    "chatwoot/official_docs/schema_envelope.jsonc": ("ignored", ["other"]),
    "chatwoot/official_docs/schema_message_created.jsonc": ("ignored", ["message_created"]),
    "chatwoot/official_docs/schema_message_updated.jsonc": ("ignored", ["message_updated"]),
    "chatwoot/official_docs/schema_object_account.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_object_contact.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_object_conversation.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_object_inbox.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_object_message.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_object_user.jsonc": ("error", "`event`"),
    "chatwoot/official_docs/schema_webwidget_triggered.jsonc": ("unparseable",),  # `"id": ,`
    "livechat/chat_deactivated.jsonc": ("events", [
        ("conversation.closed", {"event_id": f"{LC_CONV}:closed", "conversation_id": LC_CONV, "reason": "resolved",
                                 "ts": NOW_MS, "shop_id": f"livechat:{LC_ORG}"}),
    ]),
    "livechat/chat_transferred.jsonc": ("events", [
        ("conversation.transferred", {"conversation_id": LC_CONV, "to_queue": "default", "reason": "manual",
                                      "to_agent_id": f"livechat:{LC_ORG}:agent:smith@example.com", "ts": NOW_MS}),
    ]),
    "livechat/event_updated.jsonc": ("ignored", ["event_updated"]),
    "livechat/events_marked_as_seen.jsonc": ("ignored", ["events_marked_as_seen"]),
    "livechat/incoming_chat.jsonc": ("error", "thread_id is missing"),  # the thread is a placeholder
    "livechat/incoming_event.jsonc": ("ignored", ["incoming_event"]),  # the event is a placeholder
    "livechat/routing_status_set.jsonc": ("events", [
        ("agent.status", {"agent_id": f"livechat:{LC_ORG}:agent:agent1@example.com", "status": "online",
                          "capacity": 5, "queues": ["default"], "ts": NOW_MS}),
    ]),
    "livechat/structures/agent.json": ("error", "`action`"),
    "livechat/structures/chat.json": ("error", "`action`"),
    "livechat/structures/customer.json": ("error", "`action`"),
    "livechat/structures/message.json": ("error", "`action`"),
    "livechat/structures/thread.json": ("error", "`action`"),
    "livechat/thread_tagged.jsonc": ("ignored", ["thread_tagged"]),
    "livechat/user_added_to_chat.jsonc": ("ignored", ["user_added_to_chat"]),  # the user is a placeholder
    "livechat/user_removed_from_chat.jsonc": ("ignored", ["user_removed_from_chat"]),
    "sunshine_conversations/conversationCreateEvent.json": ("events", [
        ("conversation.opened", {
            "event_id": f"sunshine:{SC_APP}:ev:5f74a0d52b5315fc007e798a", "ts": 1601478869834,
            "conversation_id": SC_CONV, "queue": "default", "channel": "web", "shop_id": f"sunshine:{SC_APP}",
            "customer_id": f"sunshine:{SC_APP}:user:26508c10541a4b0ff472e5e2",
        }),
    ]),
    "sunshine_conversations/conversationMessageDeliveryUserEvent.json": (
        "ignored", ["conversation:message:delivery:user"]
    ),
    "sunshine_conversations/conversationMessageEvent.json": ("events", [
        ("message", {"event_id": f"sunshine:{SC_APP}:msg:5f74c7d84a146f3abd72af1d", "ts": 1601488856820,
                     "sender": "customer", "chars": 5, "conversation_id": SC_CONV,
                     "customer_id": f"sunshine:{SC_APP}:user:26508c10541a4b0ff472e5e2"}),
    ]),
    "sunshine_conversations/conversationReadEvent.json": ("ignored", ["conversation:read"]),
    "sunshine_conversations/conversationTypingEvent.json": ("ignored", ["conversation:typing"]),
    # The examples show the *bot* as the integration now in control: not a handoff to humans.
    "sunshine_conversations/switchboardAcceptControlEvent.json": ("ignored", ["switchboard:acceptControl"]),
    "sunshine_conversations/switchboardPassControlEvent.json": ("ignored", ["switchboard:passControl"]),
    "sunshine_conversations/switchboardReleaseControlEvent.json": ("ignored", ["switchboard:releaseControl"]),
}

FILES = fixture_files()
if not FILES:
    pytestmark = pytest.mark.skip(reason=f"no fixtures at {FIXTURES} (shared/ beside the repository)")


def rel(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def adapt(path_rel: str, payload: Any, **ctx: Any) -> Mapped:
    platform = PLATFORM_OF[path_rel.split("/", 1)[0]]
    return ADAPTERS[platform](payload, Context(received_ms=NOW_MS, **ctx))


def test_every_fixture_file_has_an_expectation() -> None:
    assert sorted(rel(p) for p in FILES if p.suffix != ".yaml") == sorted(EXPECTED)


@pytest.mark.parametrize("path", [p for p in FILES], ids=rel)
def test_fixture_maps_as_expected(path: Any) -> None:
    name = rel(path)
    expected = EXPECTED[name]
    payload = load_fixture(path)
    if expected[0] == "unparseable":
        assert payload is None
        return
    assert payload is not None, f"{name} did not parse after stripping comments"
    if expected[0] == "error":
        with pytest.raises(AdapterError, match=expected[1].replace("?", r"\?")):
            adapt(name, payload)
        return
    mapped = adapt(name, payload)
    assert mapped.errors == []
    if expected[0] == "ignored":
        assert mapped.events == [] and mapped.ignored == expected[1]
        return
    events = valid(mapped.events)
    assert [e["type"] for e in events] == [t for t, _ in expected[1]]
    for event, (_type, fields) in zip(events, expected[1], strict=True):
        assert {k: event.get(k) for k in fields} == fields
        assert "text" not in event and "content" not in event  # never the message text


def test_same_payload_maps_to_same_event_ids() -> None:
    for path in FILES:
        payload = load_fixture(path)
        if EXPECTED[rel(path)][0] != "events":
            continue
        first = adapt(rel(path), payload)
        again = adapt(rel(path), copy.deepcopy(payload))
        assert [e["event_id"] for e in first.events] == [e["event_id"] for e in again.events]


def test_queue_and_tenant_come_from_config() -> None:
    cfg = AdapterConfig(
        queue_map={"chatwoot:inbox:1": "presales", "sunshine:integration:5ecff63ffc3ab25f4561c8a0": "web"},
        tenants={"chatwoot:1": "acme"},
    )
    [opened] = adapt("chatwoot/x", fixture("chatwoot/captured_2025_11/conversation_created.json"), config=cfg).events
    assert (opened["queue"], opened["tenant"]) == ("presales", "acme")
    [opened] = adapt("sunshine_conversations/x", fixture("sunshine_conversations/conversationCreateEvent.json"),
                     config=cfg).events
    assert (opened["queue"], opened["tenant"]) == ("web", "default")


def test_two_chatwoot_accounts_never_collide() -> None:
    message = fixture("chatwoot/captured_2025_11/message_created.json")
    other = copy.deepcopy(message)
    other["account"]["id"] = 2
    [a] = adapt("chatwoot/x", message).events
    [b] = adapt("chatwoot/x", other).events
    assert a["conversation_id"] != b["conversation_id"] and a["event_id"] != b["event_id"]
    assert a["shop_id"] == "chatwoot:1:1" and b["shop_id"] == "chatwoot:2:1"


# --- placeholders filled with the strict samples -------------------------------------------------


def filled_incoming_chat() -> dict[str, Any]:
    delivery = fixture("livechat/incoming_chat.jsonc")
    delivery["payload"]["chat"]["users"] = [fixture("livechat/structures/customer.json"),
                                            fixture("livechat/structures/agent.json")]
    delivery["payload"]["chat"]["thread"] = fixture("livechat/structures/thread.json")
    return delivery


def test_livechat_incoming_chat_with_its_placeholders_filled() -> None:
    mapped = adapt("livechat/x", filled_incoming_chat())
    events = valid(mapped.events)
    conv = f"livechat:{LC_ORG}:PJ0MRSHTDG:K600PKZON8"
    assert [e["type"] for e in events] == ["conversation.opened", "conversation.assigned", "message", "message"]
    opened, assigned, first, second = events
    assert opened["conversation_id"] == conv and opened["ts"] == 1588835488288
    assert opened["customer_id"] == f"livechat:{LC_ORG}:customer:b7eff798-f8df-4364-8059-649c35c9ed0c"
    assert assigned["agent_id"] == f"livechat:{LC_ORG}:agent:smith@example.com"
    assert (first["sender"], first["chars"], second["chars"]) == ("customer", len("Hello there"), len("Thank you"))
    # The sample's two thread events share one id: they are one event to the pipeline.
    assert first["event_id"] == second["event_id"]


def test_livechat_incoming_event_with_a_message() -> None:
    delivery = fixture("livechat/incoming_event.jsonc")
    delivery["payload"]["event"] = fixture("livechat/structures/message.json")
    [message] = valid(adapt("livechat/x", delivery).events)
    assert (message["sender"], message["chars"], message["ts"]) == ("customer", 11, 1507821561010)
    agent_reply = copy.deepcopy(delivery)
    agent_reply["payload"]["event"]["author_id"] = "smith@example.com"
    [reply] = valid(adapt("livechat/x", agent_reply).events)
    assert (reply["sender"], reply["agent_id"]) == ("agent", f"livechat:{LC_ORG}:agent:smith@example.com")


def test_livechat_user_added_with_an_agent_is_an_assignment() -> None:
    delivery = fixture("livechat/user_added_to_chat.jsonc")
    delivery["payload"]["user"] = fixture("livechat/structures/agent.json")
    [assigned] = valid(adapt("livechat/x", delivery).events)
    assert assigned["type"] == "conversation.assigned"
    delivery["payload"]["user"] = fixture("livechat/structures/customer.json")
    assert adapt("livechat/x", delivery).ignored == ["user_added_to_chat"]


def test_sunshine_control_passed_to_agent_workspace_is_a_handoff() -> None:
    for name in ("switchboardPassControlEvent.json", "switchboardAcceptControlEvent.json"):
        delivery = fixture(f"sunshine_conversations/{name}")
        delivery["events"][0]["payload"]["conversation"]["activeSwitchboardIntegration"]["name"] = "zd-agentWorkspace"
        [handoff] = valid(adapt("sunshine_conversations/x", delivery).events)
        assert (handoff["type"], handoff["conversation_id"]) == ("conversation.handoff", SC_CONV)
    release = fixture("sunshine_conversations/switchboardReleaseControlEvent.json")
    release["events"][0]["payload"]["reason"] = "ticketClosed"
    [closed] = valid(adapt("sunshine_conversations/x", release).events)
    assert (closed["type"], closed["reason"]) == ("conversation.closed", "resolved")


# --- through the HTTP endpoint ----------------------------------------------------------------


def deliverable(path: Any) -> tuple[str, Any]:
    name = rel(path)
    payload = load_fixture(path)
    if isinstance(payload, dict) and "secret_key" in payload:
        payload["secret_key"] = LIVECHAT_SECRET  # the docs' "<secret_key>" placeholder
    return PLATFORM_OF[name.split("/", 1)[0]], payload


@pytest.mark.parametrize("path", [p for p in FILES if EXPECTED.get(rel(p), ("",))[0] in ("events", "ignored")], ids=rel)
async def test_fixture_posted_to_the_webhook(make_hooks: MakeHooks, path: Any) -> None:
    hooks = await make_hooks()
    platform, payload = deliverable(path)
    expected = EXPECTED[rel(path)]
    resp = await hooks.post(platform, payload)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    if expected[0] == "ignored":
        assert body == {"accepted": 0, "duplicates": 0, "mapped": 0, "ignored": expected[1]}
        for name in expected[1]:
            assert hooks.sample("floorwatch_ingest_webhook_ignored_total", platform=platform, event=name) == 1
    else:
        assert body["accepted"] == len(expected[1])
        assert [e["type"] for e in hooks.events] == [t for t, _ in expected[1]]
        again = await hooks.post(platform, payload)  # the platform retries the same delivery
        assert again.json()["duplicates"] == len(expected[1]) and again.json()["accepted"] == 0
        assert len(hooks.producer.records) == len(expected[1])


@pytest.mark.parametrize("path", [p for p in FILES if EXPECTED.get(rel(p), ("",))[0] == "error"], ids=rel)
async def test_fixture_that_cannot_be_mapped_is_a_422(make_hooks: MakeHooks, path: Any) -> None:
    hooks = await make_hooks()
    platform, payload = deliverable(path)
    if platform == "livechat" and "secret_key" not in payload:
        payload["secret_key"] = LIVECHAT_SECRET
    resp = await hooks.post(platform, payload)
    assert resp.status_code == 422, resp.text
    assert EXPECTED[rel(path)][1] in resp.json()["detail"]
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="bad_payload") == 1


async def test_raw_jsonc_is_refused_as_invalid_json(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    raw = (FIXTURES / "chatwoot/official_docs/schema_webwidget_triggered.jsonc").read_bytes()
    resp = await hooks.post("chatwoot", raw)
    assert resp.status_code == 422 and "not valid JSON" in resp.json()["detail"]


async def test_filled_incoming_chat_in_batch_dedupes_the_repeated_sample_id(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    delivery = filled_incoming_chat()
    delivery["secret_key"] = LIVECHAT_SECRET
    resp = await hooks.post("livechat", delivery)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 3, "duplicates": 1, "mapped": 4}
    assert [orjson.loads(v)["type"] for _k, v in hooks.producer.records] == [
        "conversation.opened", "conversation.assigned", "message"
    ]
