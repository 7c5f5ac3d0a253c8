"""The webhook endpoint's checks: signatures, secrets, replay window, limits and hostile input."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from services.ingest.adapters import AdapterConfig
from services.ingest.webhooks import sign_chatwoot
from tests.unit.test_adapters_common import (
    CHATWOOT_SECRET,
    NOW_S,
    SUNSHINE_KEY,
    MakeHooks,
    livechat,
    make_hooks,
)

__all__ = ["make_hooks"]


def chatwoot_message(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event": "message_created", "id": 810, "message_type": "incoming", "content": "你好",
        "created_at": "2025-11-15T03:35:14.179Z", "private": False, "account": {"id": 1},
        "inbox": {"id": 1}, "conversation": {"id": 150, "inbox_id": 1}, "sender": {"id": 163},
    }
    out.update(overrides)
    return out


def sunshine_delivery(*events: dict[str, Any]) -> dict[str, Any]:
    return {"app": {"id": "app-1"}, "webhook": {"id": "w"}, "events": list(events)}


def sunshine_message(eid: str, text: str = "hello", **author: Any) -> dict[str, Any]:
    return {
        "id": eid, "type": "conversation:message", "createdAt": "2025-11-15T03:36:00.000Z",
        "payload": {"conversation": {"id": "c-1"}, "message": {
            "id": f"m-{eid}", "received": "2025-11-15T03:36:00.000Z", "author": author or {"type": "user"},
            "content": {"type": "text", "text": text}}},
    }


# --- Chatwoot signatures ----------------------------------------------------------------------


async def test_chatwoot_signed_delivery_is_accepted(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    resp = await hooks.post("chatwoot", chatwoot_message())
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 1, "duplicates": 0, "mapped": 1}
    assert hooks.sample("floorwatch_ingest_webhook_requests_total", platform="chatwoot", code="202") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "bad_signature"),
        ({"X-Chatwoot-Timestamp": str(int(NOW_S))}, "bad_signature"),
        ({"X-Chatwoot-Signature": "sha256=" + "0" * 64, "X-Chatwoot-Timestamp": str(int(NOW_S))}, "bad_signature"),
        ({"X-Chatwoot-Signature": "sha256=abc", "X-Chatwoot-Timestamp": "yesterday"}, "bad_signature"),
        ({"X-Chatwoot-Signature": "sha256=☃".encode(), "X-Chatwoot-Timestamp": str(int(NOW_S))}, "bad_signature"),
    ],
)
async def test_chatwoot_bad_or_missing_signature_is_401(
    make_hooks: MakeHooks, headers: dict[str, Any], reason: str
) -> None:
    hooks = await make_hooks()
    resp = await hooks.post("chatwoot", chatwoot_message(), sign=False, headers=headers)
    assert resp.status_code == 401, resp.text
    assert hooks.sample("floorwatch_ingest_rejected_total", reason=reason) == 1
    assert hooks.producer.records == []


async def test_chatwoot_signature_covers_the_body(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    raw = orjson.dumps(chatwoot_message())
    headers = sign_chatwoot(CHATWOOT_SECRET, int(NOW_S), raw)
    tampered = raw.replace(b"810", b"811")
    resp = await hooks.post("chatwoot", tampered, sign=False, headers=headers)
    assert resp.status_code == 401
    assert (await hooks.post("chatwoot", raw, sign=False, headers=headers)).status_code == 202


@pytest.mark.parametrize("offset_s", [-301, 301, -10_000])
async def test_chatwoot_signature_outside_the_replay_window_is_401(make_hooks: MakeHooks, offset_s: int) -> None:
    hooks = await make_hooks()
    raw = orjson.dumps(chatwoot_message())
    headers = sign_chatwoot(CHATWOOT_SECRET, int(NOW_S) + offset_s, raw)
    resp = await hooks.post("chatwoot", raw, sign=False, headers=headers)
    assert resp.status_code == 401 and "replay" in resp.json()["detail"]
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="stale_signature") == 1
    inside = sign_chatwoot(CHATWOOT_SECRET, int(NOW_S) - 299, raw)
    assert (await hooks.post("chatwoot", raw, sign=False, headers=inside)).status_code == 202


async def test_chatwoot_without_secret_refuses_unless_unsigned_allowed(
    make_hooks: MakeHooks, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="floorwatch.ingest.webhooks"):
        refusing = await make_hooks(chatwoot_webhook_secret="")
    resp = await refusing.post("chatwoot", chatwoot_message())
    assert resp.status_code == 503 and "CHATWOOT_WEBHOOK_SECRET" in resp.json()["detail"]
    assert refusing.sample("floorwatch_ingest_rejected_total", reason="secret_not_configured") == 1
    assert [r.getMessage() for r in caplog.records].count(
        "webhook endpoint refuses all traffic with 503: no secret configured"
    ) == 1
    unsigned = await make_hooks(chatwoot_webhook_secret="", chatwoot_allow_unsigned=True)
    assert (await unsigned.post("chatwoot", chatwoot_message(), sign=False)).status_code == 202


async def test_chatwoot_unsigned_allowed_still_checks_a_signature_it_can(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks(chatwoot_allow_unsigned=True)
    assert (await hooks.post("chatwoot", chatwoot_message(), sign=False)).status_code == 202
    bad = {"X-Chatwoot-Signature": "sha256=" + "1" * 64, "X-Chatwoot-Timestamp": str(int(NOW_S))}
    assert (await hooks.post("chatwoot", chatwoot_message(id=811), sign=False, headers=bad)).status_code == 401


async def test_chatwoot_account_from_the_url(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    status = {"event": "conversation_status_changed", "id": 150, "inbox_id": 1, "status": "resolved",
              "updated_at": 1763177760.5, "messages": []}
    resp = await hooks.post("chatwoot", status, params={"account": "1"})
    assert resp.status_code == 202, resp.text
    assert hooks.events[0]["conversation_id"] == "chatwoot:1:150"
    assert hooks.sample("floorwatch_ingest_webhook_assumed_total", platform="chatwoot", what="account",
                        source="default") == 0
    assert (await hooks.post("chatwoot", status, params={"account": "a\u200fb"})).status_code == 400


def widget_conversation(display_id: int = 151, inbox: int = 1, team: dict[str, Any] | None = None) -> dict[str, Any]:
    """conversation_created as a web widget sends it: before the first message, so no messages[] and
    nothing naming the account."""
    return {
        "event": "conversation_created", "id": display_id, "inbox_id": inbox, "status": "open", "messages": [],
        "channel": "Channel::WebWidget", "created_at": 1763177760, "updated_at": 1763177760.25,
        "meta": {"sender": {"id": 163, "type": "contact"}, "assignee": None, "team": team},
    }


async def test_chatwoot_conversation_without_account_is_counted_not_refused(
    make_hooks: MakeHooks, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = await make_hooks()
    caplog.set_level(logging.WARNING, logger="floorwatch.ingest.webhooks")
    resp = await hooks.post("chatwoot", widget_conversation(team={"id": 2, "name": "Pre-Sales 售前"}))
    assert resp.status_code == 202, resp.text  # was 422, which Chatwoot does not retry: the arrival was lost
    [opened] = hooks.events
    assert opened["type"] == "conversation.opened"
    assert opened["conversation_id"] == "chatwoot:default:151"
    assert (opened["queue"], opened["queue_source_id"]) == ("pre-sales-售前", "chatwoot:default:team:2")
    assert hooks.sample("floorwatch_ingest_webhook_assumed_total", platform="chatwoot", what="account",
                        source="default") == 1
    [warning] = [r for r in caplog.records if "without an account id" in r.getMessage()]
    assert "CHATWOOT_DEFAULT_ACCOUNT" in warning.getMessage() and "?account=" in warning.getMessage()
    await hooks.post("chatwoot", widget_conversation(152))  # counted again, logged once
    assert hooks.sample("floorwatch_ingest_webhook_assumed_total", platform="chatwoot", what="account",
                        source="default") == 2
    assert len([r for r in caplog.records if "without an account id" in r.getMessage()]) == 1


async def test_chatwoot_default_account_setting(make_hooks: MakeHooks, caplog: pytest.LogCaptureFixture) -> None:
    hooks = await make_hooks(adapters=AdapterConfig(chatwoot_default_account="7"))
    caplog.set_level(logging.WARNING, logger="floorwatch.ingest.webhooks")
    resp = await hooks.post("chatwoot", widget_conversation())
    assert resp.status_code == 202, resp.text
    assert hooks.events[0]["conversation_id"] == "chatwoot:7:151"
    assert hooks.sample("floorwatch_ingest_webhook_assumed_total", platform="chatwoot", what="account",
                        source="setting") == 1
    assert not [r for r in caplog.records if "without an account id" in r.getMessage()]  # chosen, not a surprise
    # A delivery that names its account keeps it.
    assert (await hooks.post("chatwoot", chatwoot_message(account={"id": 9}))).status_code == 202
    assert hooks.events[-1]["conversation_id"] == "chatwoot:9:150"


async def test_chatwoot_account_and_inbox_name_remembered_from_an_earlier_delivery(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    message = chatwoot_message(account={"id": 7}, inbox={"id": 3, "name": "Web Shop"},
                               conversation={"id": 40, "inbox_id": 3})
    assert (await hooks.post("chatwoot", message)).status_code == 202
    assert (hooks.events[0]["queue"], hooks.events[0]["queue_source_id"]) == ("web-shop", "chatwoot:7:inbox:3")
    resp = await hooks.post("chatwoot", widget_conversation(41, inbox=3))
    assert resp.status_code == 202, resp.text
    opened = hooks.events[-1]
    # The account this inbox belongs to, and its name, as the message showed them.
    assert (opened["conversation_id"], opened["queue"]) == ("chatwoot:7:41", "web-shop")
    assert hooks.sample("floorwatch_ingest_webhook_assumed_total", platform="chatwoot", what="account",
                        source="inbox") == 1
    # Another inbox, never seen: no account to borrow.
    await hooks.post("chatwoot", widget_conversation(42, inbox=4))
    assert (hooks.events[-1]["conversation_id"], hooks.events[-1]["queue"]) == ("chatwoot:default:42", "inbox-4")


async def test_chatwoot_delivery_without_a_conversation_id_is_still_a_422(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    broken = widget_conversation()
    del broken["id"]
    resp = await hooks.post("chatwoot", broken)
    assert resp.status_code == 422 and "conversation id is missing" in resp.json()["detail"]


# --- LiveChat and Sunshine secrets ----------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong", 12345, ["lc"], "lc-secret-012345678"])
async def test_livechat_wrong_or_missing_secret_is_401(make_hooks: MakeHooks, secret: Any) -> None:
    hooks = await make_hooks()
    delivery = livechat("chat_deactivated", {"chat_id": "C", "thread_id": "T"})
    if secret is None:
        del delivery["secret_key"]
    else:
        delivery["secret_key"] = secret
    resp = await hooks.post("livechat", delivery)
    assert resp.status_code == 401
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="unauthorized") == 1


async def test_livechat_and_sunshine_without_secret_answer_503(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks(livechat_secret_key="", sunshine_api_key="")
    resp = await hooks.post("livechat", livechat("chat_deactivated", {"chat_id": "C", "thread_id": "T"}))
    assert resp.status_code == 503 and "LIVECHAT_SECRET_KEY" in resp.json()["detail"]
    resp = await hooks.post("sunshine", sunshine_delivery())
    assert resp.status_code == 503 and "SUNSHINE_API_KEY" in resp.json()["detail"]


@pytest.mark.parametrize("key", [None, "", "wrong", SUNSHINE_KEY + " "])
async def test_sunshine_wrong_api_key_is_401(make_hooks: MakeHooks, key: str | None) -> None:
    hooks = await make_hooks()
    headers = {} if key is None else {"X-API-Key": key}
    resp = await hooks.post("sunshine", sunshine_delivery(sunshine_message("e1")), sign=False, headers=headers)
    assert resp.status_code == 401


async def test_sunshine_one_bad_event_does_not_hold_back_the_others(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    bad = sunshine_message("e2")
    bad["payload"]["conversation"]["id"] = {"nested": True}
    delivery = sunshine_delivery(sunshine_message("e1"), bad, {"id": "e3", "type": "conversation:typing"})
    resp = await hooks.post("sunshine", delivery)
    assert resp.status_code == 422
    body = resp.json()
    assert body["accepted"] == 1 and body["ignored"] == ["conversation:typing"]
    assert body["errors"] == [{"reason": "events[1]: conversation.id must be a string or integer id, got dict"}]


# --- platform, size, depth, unicode ---------------------------------------------------------------


async def test_unknown_platform_is_404(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    for name in ("zendesk", "Chatwoot", "😀", "a" * 300):
        resp = await hooks.post(name, {"event": "x"})
        assert resp.status_code == 404, name
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="unknown_platform") == 4
    assert hooks.sample("floorwatch_ingest_webhook_requests_total", platform="other", code="404") == 4


async def test_body_limit_is_413(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks(max_body_bytes=1024)
    resp = await hooks.post("chatwoot", chatwoot_message(content="x" * 2000))
    assert resp.status_code == 413
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="body_too_large") == 1


@pytest.mark.parametrize("depth", [65, 1100, 100_000])
async def test_deep_json_is_422_on_webhooks_and_events(make_hooks: MakeHooks, depth: int) -> None:
    hooks = await make_hooks(chatwoot_allow_unsigned=True)
    deep = b'{"event":"message_created","x":' + b"[" * depth + b"]" * depth + b"}"
    resp = await hooks.post("chatwoot", deep, sign=False)
    assert resp.status_code == 422 and "deeper than 64" in resp.json()["detail"], resp.text
    resp = await hooks.client.post("/v1/events", content=deep, headers={"Authorization": "Bearer t"})
    assert resp.status_code == 422 and "deeper than 64" in resp.json()["detail"]
    ndjson = b'{"a":1}\n' + b"[" * depth + b"]" * depth + b"\n"
    resp = await hooks.client.post(
        "/v1/events", content=ndjson, headers={"Authorization": "Bearer t", "Content-Type": "application/x-ndjson"}
    )
    assert resp.status_code == 422 and "deeper than 64" in resp.text
    assert hooks.sample("floorwatch_ingest_rejected_total", reason="too_deep") == 3


async def test_nesting_up_to_the_limit_is_fine(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    nested: Any = {}
    for _ in range(60):
        nested = {"n": nested}
    resp = await hooks.post("chatwoot", chatwoot_message(content_attributes=nested))
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b'{"event": "message_created", "content": "\\ud800"}', 422, "invalid_json"),  # lone surrogate
        (b'{"event": "message_created", "content": "\xed\xa0\x80"}', 422, "invalid_json"),  # encoded surrogate
        (b'{"event": "message_created", "content": "\xff"}', 422, "invalid_json"),  # not UTF-8
        (b"", 422, "invalid_json"),
        (b"[1, 2]", 422, "bad_payload"),
        (b'"message_created"', 422, "bad_payload"),
        (b'{"event": 5}', 422, "bad_payload"),
        (b'{"event": "message_created", "id": 1e400}', 422, "invalid_json"),
        (b"NaN", 422, "invalid_json"),
    ],
)
async def test_hostile_bodies_get_a_clear_4xx(make_hooks: MakeHooks, raw: bytes, status: int, reason: str) -> None:
    hooks = await make_hooks()
    resp = await hooks.post("chatwoot", raw)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]
    assert hooks.sample("floorwatch_ingest_rejected_total", reason=reason) == 1


@pytest.mark.parametrize(
    ("ids", "status"),
    [
        ({"id": "m\x00"}, 422),
        ({"conversation": {"id": "c\u200f1", "inbox_id": 1}}, 422),  # RTL mark
        ({"conversation": {"id": "c\u202e1", "inbox_id": 1}}, 422),  # RTL override
        ({"account": {"id": {"id": 1}}}, 422),
        ({"id": True}, 422),
        ({"id": "😀-810", "conversation": {"id": "对话-🛼", "inbox_id": 1}}, 202),  # emoji are printable
        ({"account": {"id": "a" * 200}}, 202),  # long ids are hashed to fit
        ({"created_at": "soon"}, 422),
        ({"created_at": 1}, 422),
        ({"message_type": ["incoming"]}, 202),  # not a type we map: acknowledged, ignored
        ({"content": "x" * 100_000}, 202),
        ({"content": None}, 202),
    ],
)
async def test_odd_ids_and_types_in_a_delivery(make_hooks: MakeHooks, ids: dict[str, Any], status: int) -> None:
    hooks = await make_hooks()
    resp = await hooks.post("chatwoot", chatwoot_message(**ids))
    assert resp.status_code == status, resp.text
    for event in hooks.events:
        assert len(event["event_id"]) <= 128 and len(event["conversation_id"]) <= 128


async def test_kafka_down_is_503_then_the_retry_writes_once(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    hooks.producer.fail = "broker down"
    resp = await hooks.post("chatwoot", chatwoot_message())
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    hooks.producer.fail = None
    resp = await hooks.post("chatwoot", chatwoot_message())
    assert resp.status_code == 202 and resp.json()["accepted"] == 1
    assert (await hooks.post("chatwoot", chatwoot_message())).json()["duplicates"] == 1
    assert len(hooks.producer.records) == 1


async def test_livechat_status_toggle_is_not_taken_for_a_retry(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    on = livechat("routing_status_set", {"agent_id": "a@x.com", "status": "accepting_chats"})
    off = livechat("routing_status_set", {"agent_id": "a@x.com", "status": "not_accepting_chats"})
    assert (await hooks.post("livechat", on)).json()["accepted"] == 1
    hooks.clock[0] += 5
    assert (await hooks.post("livechat", on)).json()["duplicates"] == 1  # a retry within the window
    hooks.clock[0] += 100
    assert (await hooks.post("livechat", off)).json()["accepted"] == 1
    hooks.clock[0] += 100
    assert (await hooks.post("livechat", on)).json()["accepted"] == 1  # back on: a new event
    assert [e["status"] for e in hooks.events] == ["online", "busy", "online"]


async def test_openapi_documents_both_request_bodies(make_hooks: MakeHooks) -> None:
    hooks = await make_hooks()
    spec = (await hooks.client.get("/openapi.json")).json()
    webhook = spec["paths"]["/v1/webhooks/{platform}"]["post"]
    assert set(webhook["requestBody"]["content"]) == {"application/json"}
    assert {p["name"] for p in webhook["parameters"]} >= {"platform", "X-Chatwoot-Signature", "X-API-Key"}
    events = spec["paths"]["/v1/events"]["post"]
    assert set(events["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
