"""Property tests of the adapters: any JSON in -> events the contract accepts, or a clean AdapterError.

Two kinds of input: arbitrary JSON values, and envelopes shaped like each platform's deliveries
with arbitrary values at every field the adapter reads (so the mapping code itself is reached).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.events import parse_event
from services.ingest.adapters import ADAPTERS, AdapterConfig, AdapterError, Context, chatwoot, livechat, sunshine

CONFIG = AdapterConfig(
    queue_map={"chatwoot:inbox:1": "presales", "livechat:group:1": "vip", "sunshine:integration:i": "web"},
    agent_queues={"livechat": ("vip",)},
)
RECEIVED = 1_800_000_000_000

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Mostly usable ids and times (so the mapping code is reached), sometimes anything at all.
good_ids = st.one_of(
    st.integers(min_value=1, max_value=10**12), st.from_regex(r"[A-Za-z0-9@._-]{1,24}", fullmatch=True)
)
bad_ids = st.one_of(st.integers(min_value=-5, max_value=0), st.text(max_size=40), json_values)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` nine times in ten (one_of would pick each branch alike, and merges repeated ones)."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda i: good if i else bad)


ids = mostly(good_ids, bad_ids)
good_times = st.one_of(
    st.integers(min_value=1_000_000_000, max_value=4_000_000_000),
    st.floats(min_value=1e9, max_value=4e9, allow_nan=False),
    st.datetimes(min_value=datetime(2001, 1, 1)).map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2025-11-15T03:35:14.179Z", "2020-03-03 13:05:57 UTC"]),
)
times = mostly(
    good_times, st.one_of(st.integers(min_value=-10, max_value=10**14), st.sampled_from(["", "now", 0]), json_values)
)


def with_id(value: st.SearchStrategy[Any] = ids) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"id": value, "inbox_id": ids, "type": st.text(max_size=12)})


def check(platform: str, payload: Any) -> None:
    adapt = ADAPTERS[platform]
    try:
        mapped = adapt(payload, Context(received_ms=RECEIVED, config=CONFIG, account="1"))
    except AdapterError as err:
        assert str(err)
        return
    for event in mapped.events:
        parse_event(event)  # raises if the adapter produced something the contract refuses
        assert len(event["event_id"]) <= 128
        assert "text" not in event and "content" not in event
    again = adapt(payload, Context(received_ms=RECEIVED, config=CONFIG, account="1"))
    assert again.events == mapped.events  # deterministic: a retry maps to the same events
    assert all(isinstance(name, str) for name in mapped.ignored)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually `value`, sometimes any JSON at all."""
    return mostly(value, json_values)


_cw_change = st.fixed_dictionaries({
    "previous_value": st.one_of(ids, st.none(), st.sampled_from(["open", "pending", "resolved"])),
    "current_value": st.one_of(ids, st.none(), st.sampled_from(["open", "pending", "resolved"])),
})
chatwoot_deliveries = st.fixed_dictionaries(
    {
        "event": st.one_of(
            st.sampled_from(["conversation_created", "conversation_updated", "conversation_status_changed",
                             "message_created", "message_updated"]),
            st.sampled_from([*sorted(chatwoot.EVENTS), "other"]),
        ),
        "id": ids,
        "account": maybe(st.fixed_dictionaries({"id": ids})),
        "conversation": maybe(st.fixed_dictionaries(
            {"id": ids}, optional={"display_id": ids, "inbox_id": ids, "meta": st.fixed_dictionaries(
                {}, optional={"team": with_id()})}
        )),
        "message_type": maybe(st.sampled_from(["incoming", "outgoing", "template", 0, 1, 3])),
        "sender": maybe(st.fixed_dictionaries(
            {"id": ids}, optional={"type": st.sampled_from(["user", "agent_bot", "captain_assistant", "x"])})),
        "created_at": times,
        "updated_at": times,
        "status": st.sampled_from(["open", "pending", "resolved", "snoozed", 7]),
        "content_type": st.sampled_from(["text", "input_csat", "input_csat", "cards"]),
        "content_attributes": maybe(st.fixed_dictionaries({"submitted_values": st.fixed_dictionaries(
            {"csat_survey_response": st.fixed_dictionaries(
                {"rating": st.one_of(st.integers(1, 5), st.integers(-1, 7), json_values)})})})),
        "changed_attributes": maybe(st.lists(st.dictionaries(
            st.sampled_from(["status", "assignee_id", "team_id", "account_id"]), _cw_change, max_size=3
        ), max_size=3)),
    },
    optional={
        "inbox": with_id(),
        "inbox_id": ids,
        "messages": st.lists(st.fixed_dictionaries({}, optional={"account_id": ids}), max_size=2),
        "content": st.one_of(st.text(max_size=50), json_values),
        "private": st.one_of(st.just(False), json_values),
        "meta": st.fixed_dictionaries({}, optional={"sender": with_id(), "assignee": with_id(), "team": with_id()}),
        "channel": json_values,
    },
)

_lc_event = maybe(st.fixed_dictionaries(
    {
        "id": ids, "type": st.sampled_from(["message", "message", "file", "system_message", "filled_form"]),
        "author_id": st.one_of(st.sampled_from(["a@b.c", "5c9871d5372c824cbf22d860a707a578", "u-1"]), ids),
        "created_at": times,
    },
    optional={"text": json_values, "visibility": st.sampled_from(["all", "agents"])},
))
livechat_deliveries = st.fixed_dictionaries(
    {
        "action": st.one_of(
            st.sampled_from(["incoming_chat", "incoming_event", "chat_deactivated", "chat_transferred",
                             "user_added_to_chat", "routing_status_set"]),
            st.sampled_from([*sorted(livechat.EVENTS), "other"]),
        ),
        "organization_id": ids,
        "payload": maybe(st.fixed_dictionaries(
            {"chat_id": ids, "thread_id": ids},
            optional={
                "agent_id": ids, "requester_id": maybe(st.sampled_from(["a@b.c", "5c9871d5372c824cbf22d860a707a578"])),
                "reason": json_values,
                "status": maybe(
                    st.sampled_from(["accepting chats", "accepting_chats", "not_accepting_chats", "offline"])
                ),
                "event": _lc_event,
                "user": maybe(st.fixed_dictionaries({"id": ids}, optional={
                    "type": st.sampled_from(["agent", "customer"]), "visibility": st.sampled_from(["all", "agents"])})),
                "transferred_to": maybe(st.fixed_dictionaries({}, optional={
                    "group_ids": st.lists(ids, max_size=2), "agent_ids": st.lists(ids, max_size=2)})),
                "chat": maybe(st.fixed_dictionaries({"id": ids, "thread": st.fixed_dictionaries(
                    {"id": ids}, optional={
                        "created_at": times, "events": st.lists(_lc_event, max_size=3),
                        "access": st.fixed_dictionaries({}, optional={"group_ids": st.lists(ids, max_size=2)})})},
                    optional={"users": st.lists(st.fixed_dictionaries({"id": ids}, optional={
                        "type": st.sampled_from(["agent", "customer"])}), max_size=3)})),
            },
        )),
    },
    optional={"license_id": ids, "secret_key": st.text(max_size=5)},
)

_sc_event = maybe(st.fixed_dictionaries(
    {
        "type": st.one_of(
            st.sampled_from(["conversation:create", "conversation:message", "switchboard:passControl",
                             "switchboard:acceptControl", "switchboard:releaseControl"]),
            st.sampled_from([*sorted(sunshine.EVENTS), "other"]),
        ),
        "id": ids,
        "createdAt": times,
        "payload": maybe(st.fixed_dictionaries(
            {
                "conversation": st.fixed_dictionaries({"id": ids}, optional={
                    "activeSwitchboardIntegration": st.fixed_dictionaries({}, optional={
                        "name": st.sampled_from(["bot", "zd-agentWorkspace"]), "integrationType": json_values})}),
                "message": maybe(st.fixed_dictionaries(
                    {
                        "id": ids, "received": times,
                        "author": maybe(st.fixed_dictionaries(
                            {"type": st.sampled_from(["user", "business", "business", "x"])},
                            optional={
                                "userId": ids, "displayName": json_values,
                                "subtypes": st.one_of(st.lists(st.sampled_from(["agent", "bot", "AI"]), max_size=2),
                                                      json_values),
                            })),
                    },
                    optional={"content": st.fixed_dictionaries({}, optional={
                        "type": st.just("text"), "text": json_values})},
                )),
            },
            optional={
                "reason": st.sampled_from(["ticketClosed", "transferToEmail", 3]),
                "source": st.fixed_dictionaries({}, optional={"integrationId": ids, "type": json_values}),
                "user": with_id(),
            },
        )),
    },
))
sunshine_deliveries = st.fixed_dictionaries(
    {"events": st.lists(_sc_event, max_size=4), "app": maybe(st.fixed_dictionaries({"id": ids}))},
    optional={"webhook": json_values},
)


@settings(max_examples=300)
@given(payload=json_values, platform=st.sampled_from(sorted(ADAPTERS)))
def test_arbitrary_json_is_events_or_a_clean_rejection(payload: Any, platform: str) -> None:
    check(platform, payload)


@settings(max_examples=400)
@given(payload=chatwoot_deliveries)
def test_chatwoot_shaped_deliveries(payload: dict[str, Any]) -> None:
    check("chatwoot", payload)


@settings(max_examples=400)
@given(payload=livechat_deliveries)
def test_livechat_shaped_deliveries(payload: dict[str, Any]) -> None:
    check("livechat", payload)


@settings(max_examples=400)
@given(payload=sunshine_deliveries)
def test_sunshine_shaped_deliveries(payload: dict[str, Any]) -> None:
    check("sunshine", payload)
