"""Every platform payload of tests/fixtures/platforms through its adapter and through the HTTP endpoint.

EXPECTED names each file's outcome; a fixture file missing from it fails the run, so a new
fixture is never silently untested. Placeholders of the vendors' docs (`// "Event" object`),
left empty in our copies as in the docs' samples, are also filled with the strict samples of
livechat/structures/ for the shapes they stand for. Where ../shared/fixtures/platforms (the
reference our fixtures were written from) is present, each fixture is checked to have its
reference's shape and to map to the same kinds of events; without it those checks are reported
as skipped (`-ra`), and everything else runs from the repository alone.
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
    REFERENCE,
    REFERENCE_OF,
    MakeHooks,
    fixture,
    fixture_files,
    load_fixture,
    make_hooks,
    valid,
)

__all__ = ["make_hooks"]  # the fixture, imported for pytest

LC_ORG = "0470bf1f-22fc-dd9b0-11434-bd08459c9553"
LC_CONV = f"livechat:{LC_ORG}:ESCLSLAWJJ:CLAGU0ASAG"
SC_APP = "319081452da2decae377626b"
SC_CONV = f"sunshine:{SC_APP}:eb36d57f4c8ed47b26ec867a"
CUSTOMER = "20f388aa-2e45-5707-889d-957c951dac55"
CW = "chatwoot:4001"  # account 4001; inbox 4001 is named 旗舰店 in message events

# relative path -> ("events", [(type, {field: value})]) | ("ignored", [names]) | ("error", text)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "chatwoot/contact_updated.json": ("ignored", ["contact_updated"]),
    # A conversation event names its inbox by id only: queue by id, until a message showed the name.
    "chatwoot/conversation_created.json": ("events", [
        ("conversation.opened", {
            "event_id": f"{CW}:4150:opened", "ts": 1773177714000, "conversation_id": f"{CW}:4150",
            "queue": "inbox-4001", "queue_source_id": f"{CW}:inbox:4001", "shop_id": f"{CW}:4001",
            "customer_id": f"{CW}:contact:4163", "channel": "webwidget", "tenant": "default", "platform": "chatwoot",
        }),
    ]),
    # Fired at creation with status pending (an agent bot's inbox): neither a handoff nor a close.
    "chatwoot/conversation_status_changed.json": ("ignored", ["conversation_status_changed"]),
    # changed_attributes of the creation: status open -> pending (handed to the bot), no assignee.
    "chatwoot/conversation_updated.json": ("ignored", ["conversation_updated"]),
    "chatwoot/message_created.json": ("events", [
        ("message", {
            "event_id": f"{CW}:msg:4810", "ts": 1773177714179, "conversation_id": f"{CW}:4150",
            "sender": "customer", "chars": 2, "customer_id": f"{CW}:contact:4163", "queue": "旗舰店",
            "queue_source_id": f"{CW}:inbox:4001",
        }),
    ]),
    "chatwoot/webwidget_triggered.json": ("ignored", ["webwidget_triggered"]),
    "chatwoot/message_created.old_docs.json": ("events", [
        ("message", {"event_id": f"{CW}:msg:4001", "ts": 1593240757000, "conversation_id": f"{CW}:4001",
                     "sender": "customer", "chars": 2, "queue": "default"}),
    ]),
    "livechat/chat_deactivated.json": ("events", [
        ("conversation.closed", {"event_id": f"{LC_CONV}:closed", "conversation_id": LC_CONV, "reason": "resolved",
                                 "ts": NOW_MS, "shop_id": f"livechat:{LC_ORG}"}),
    ]),
    "livechat/chat_transferred.json": ("events", [
        ("conversation.transferred", {
            "conversation_id": LC_CONV, "to_queue": "group-4019", "reason": "manual", "ts": NOW_MS,
            "to_queue_source_id": f"livechat:{LC_ORG}:group:4019",
            "to_agent_id": f"livechat:{LC_ORG}:agent:li.wei@example.com",
        }),
    ]),
    "livechat/event_updated.json": ("ignored", ["event_updated"]),
    "livechat/events_marked_as_seen.json": ("ignored", ["events_marked_as_seen"]),
    "livechat/incoming_chat.json": ("error", "thread_id is missing"),  # the thread is a placeholder
    "livechat/incoming_event.json": ("ignored", ["incoming_event"]),  # the event is a placeholder
    "livechat/routing_status_set.json": ("events", [
        ("agent.status", {"agent_id": f"livechat:{LC_ORG}:agent:zhao.min@example.com", "status": "online",
                          "capacity": 5, "queues": ["default"], "ts": NOW_MS}),
    ]),
    "livechat/structures/agent.json": ("error", "`action`"),
    "livechat/structures/chat.json": ("error", "`action`"),
    "livechat/structures/customer.json": ("error", "`action`"),
    "livechat/structures/message.json": ("error", "`action`"),
    "livechat/structures/thread.json": ("error", "`action`"),
    "livechat/thread_tagged.json": ("ignored", ["thread_tagged"]),
    "livechat/user_added_to_chat.json": ("ignored", ["user_added_to_chat"]),  # the user is a placeholder
    "livechat/user_removed_from_chat.json": ("ignored", ["user_removed_from_chat"]),
    "sunshine/conversationCreateEvent.json": ("events", [
        ("conversation.opened", {
            "event_id": f"sunshine:{SC_APP}:ev:ad65f63dae308b0dfcfb3b3b", "ts": 1611478869834,
            "conversation_id": SC_CONV, "queue": "web", "channel": "web", "shop_id": f"sunshine:{SC_APP}",
            "queue_source_id": f"sunshine:{SC_APP}:integration:69bae75995f1b4f34c0f8097",
            "customer_id": f"sunshine:{SC_APP}:user:7f59dadd6d52742c36352be9",
        }),
    ]),
    "sunshine/conversationMessageDeliveryUserEvent.json": ("ignored", ["conversation:message:delivery:user"]),
    "sunshine/conversationMessageEvent.json": ("events", [
        ("message", {"event_id": f"sunshine:{SC_APP}:msg:47514b19166316d95bc7feeb", "ts": 1611488856820,
                     "sender": "customer", "chars": 5, "conversation_id": SC_CONV, "queue": "telegram",
                     "customer_id": f"sunshine:{SC_APP}:user:7f59dadd6d52742c36352be9"}),
    ]),
    "sunshine/conversationReadEvent.json": ("ignored", ["conversation:read"]),
    "sunshine/conversationTypingEvent.json": ("ignored", ["conversation:typing"]),
    # The examples show the *bot* as the integration now in control: not a handoff to humans.
    "sunshine/switchboardAcceptControlEvent.json": ("ignored", ["switchboard:acceptControl"]),
    "sunshine/switchboardPassControlEvent.json": ("ignored", ["switchboard:passControl"]),
    "sunshine/switchboardReleaseControlEvent.json": ("ignored", ["switchboard:releaseControl"]),
}

FILES = fixture_files()


def rel(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def adapt(path_rel: str, payload: Any, **ctx: Any) -> Mapped:
    platform = path_rel.split("/", 1)[0]
    return ADAPTERS[platform](payload, Context(received_ms=NOW_MS, **ctx))


def test_every_fixture_file_has_an_expectation_and_a_reference() -> None:
    assert sorted(rel(p) for p in FILES) == sorted(EXPECTED)
    assert set(REFERENCE_OF) <= set(EXPECTED)  # a fixture of our own may have no original


# --- our fixtures against the reference they were written from (when it is beside the repository) ---

needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference payloads not present at {REFERENCE} (a clone has only its own)"
)


def shape(value: Any, path: str = "$") -> set[tuple[str, str]]:
    """(path, JSON type) of every member, list items folded into `[]`."""
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    out = {(path, kinds.get(type(value), "number"))}
    if isinstance(value, dict):
        for key, item in value.items():
            out |= shape(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            out |= shape(item, f"{path}[]")
    return out


def outcome(path_rel: str, payload: Any) -> tuple[Any, ...]:
    """What a payload maps to, without the values: event types and their fields, or ignored names."""
    try:
        mapped = adapt(path_rel, payload)
    except AdapterError as err:
        return ("error", str(err))
    return ("mapped", [(e["type"], sorted(e)) for e in mapped.events], mapped.ignored)


@needs_reference
@pytest.mark.parametrize("name", sorted(REFERENCE_OF))
def test_fixture_has_the_shape_of_its_reference(name: str) -> None:
    ours = load_fixture(FIXTURES / name)
    reference = load_fixture(REFERENCE / REFERENCE_OF[name])
    assert reference is not None, REFERENCE_OF[name]
    assert shape(ours) == shape(reference)
    assert outcome(name, ours) == outcome(name, reference)


def test_shape_tells_a_missing_or_retyped_member() -> None:
    delivery = fixture("chatwoot/message_created.json")
    assert shape(delivery) == shape(copy.deepcopy(delivery))
    retyped = copy.deepcopy(delivery)
    retyped["account"]["id"] = "4001"
    missing = copy.deepcopy(delivery)
    del missing["inbox"]["name"]
    assert shape(retyped) != shape(delivery) and shape(missing) != shape(delivery)


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
        queue_map={"chatwoot:inbox:4001": "presales", "sunshine:integration:69bae75995f1b4f34c0f8097": "site"},
        tenants={"chatwoot:4001": "acme"},
    )
    [opened] = adapt("chatwoot/x", fixture("chatwoot/conversation_created.json"), config=cfg).events
    assert (opened["queue"], opened["tenant"]) == ("presales", "acme")
    [opened] = adapt("sunshine/x", fixture("sunshine/conversationCreateEvent.json"), config=cfg).events
    assert (opened["queue"], opened["tenant"]) == ("site", "default")


def test_two_chatwoot_accounts_never_collide() -> None:
    message = fixture("chatwoot/message_created.json")
    other = copy.deepcopy(message)
    other["account"]["id"] = 2
    [a] = adapt("chatwoot/x", message).events
    [b] = adapt("chatwoot/x", other).events
    assert a["conversation_id"] != b["conversation_id"] and a["event_id"] != b["event_id"]
    assert a["shop_id"] == "chatwoot:4001:4001" and b["shop_id"] == "chatwoot:2:4001"


# --- placeholders filled with the strict samples -------------------------------------------------


def filled_incoming_chat() -> dict[str, Any]:
    delivery = fixture("livechat/incoming_chat.json")
    delivery["payload"]["chat"]["users"] = [fixture("livechat/structures/customer.json"),
                                            fixture("livechat/structures/agent.json")]
    delivery["payload"]["chat"]["thread"] = fixture("livechat/structures/thread.json")
    return delivery


def test_livechat_incoming_chat_with_its_placeholders_filled() -> None:
    mapped = adapt("livechat/x", filled_incoming_chat())
    events = valid(mapped.events)
    conv = f"livechat:{LC_ORG}:ESCLSLAWJJ:CLAGU0ASAG"
    assert [e["type"] for e in events] == ["conversation.opened", "conversation.assigned", "message", "message"]
    opened, assigned, first, second = events
    assert opened["conversation_id"] == conv and opened["ts"] == 1598835488288
    assert opened["customer_id"] == f"livechat:{LC_ORG}:customer:{CUSTOMER}"
    assert (opened["queue"], opened["queue_source_id"]) == ("group-4001", f"livechat:{LC_ORG}:group:4001")
    assert assigned["agent_id"] == f"livechat:{LC_ORG}:agent:li.wei@example.com"
    assert (first["sender"], first["chars"], second["chars"]) == ("customer", len("Hi, a question"), len("Many thanks"))
    # The sample's two thread events share one id: they are one event to the pipeline.
    assert first["event_id"] == second["event_id"]


def test_livechat_incoming_event_with_a_message() -> None:
    delivery = fixture("livechat/incoming_event.json")
    delivery["payload"]["event"] = fixture("livechat/structures/message.json")
    [message] = valid(adapt("livechat/x", delivery).events)
    assert (message["sender"], message["chars"], message["ts"]) == ("customer", len("hi there"), 1517821561010)
    agent_reply = copy.deepcopy(delivery)
    agent_reply["payload"]["event"]["author_id"] = "li.wei@example.com"
    [reply] = valid(adapt("livechat/x", agent_reply).events)
    assert (reply["sender"], reply["agent_id"]) == ("agent", f"livechat:{LC_ORG}:agent:li.wei@example.com")


def test_livechat_user_added_with_an_agent_is_an_assignment() -> None:
    delivery = fixture("livechat/user_added_to_chat.json")
    delivery["payload"]["user"] = fixture("livechat/structures/agent.json")
    [assigned] = valid(adapt("livechat/x", delivery).events)
    assert assigned["type"] == "conversation.assigned"
    delivery["payload"]["user"] = fixture("livechat/structures/customer.json")
    assert adapt("livechat/x", delivery).ignored == ["user_added_to_chat"]


def test_sunshine_control_passed_to_agent_workspace_is_a_handoff() -> None:
    for name in ("switchboardPassControlEvent.json", "switchboardAcceptControlEvent.json"):
        delivery = fixture(f"sunshine/{name}")
        delivery["events"][0]["payload"]["conversation"]["activeSwitchboardIntegration"]["name"] = "zd-agentWorkspace"
        [handoff] = valid(adapt("sunshine/x", delivery).events)
        assert (handoff["type"], handoff["conversation_id"]) == ("conversation.handoff", SC_CONV)
    release = fixture("sunshine/switchboardReleaseControlEvent.json")
    release["events"][0]["payload"]["reason"] = "ticketClosed"
    [closed] = valid(adapt("sunshine/x", release).events)
    assert (closed["type"], closed["reason"]) == ("conversation.closed", "resolved")


# --- through the HTTP endpoint ----------------------------------------------------------------


def deliverable(path: Any) -> tuple[str, Any]:
    name = rel(path)
    payload = load_fixture(path)
    if isinstance(payload, dict) and "secret_key" in payload:
        payload["secret_key"] = LIVECHAT_SECRET  # the docs' "<secret_key>" placeholder
    return name.split("/", 1)[0], payload


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
    # As Chatwoot's old docs print a delivery: comments and a member without a value.
    raw = b'{\n  "event": "webwidget_triggered", // the name of the event\n  "id": ,\n}\n'
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
