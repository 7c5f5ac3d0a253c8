"""Whole conversations per platform, in the shapes of the real fixtures, through adapter and scorer.

Each script: open -> customer message -> bot message -> handoff -> assignment -> agent reply ->
close -> CSAT (where the platform sends one), plus a second conversation left unanswered. The
deliveries go (a) straight through the adapters into the in-process scorer and (b) through the
HTTP endpoint with a fake producer, with some deliveries retried; both give the same figures,
and retries are counted as duplicates, never twice.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from deploy.local.stack import webhook_lines
from services.core.figures import QueueView
from services.core.scope import Scope
from services.ingest.adapters import ADAPTERS, AdapterConfig, Context
from services.ingest.settings import IngestSettings
from services.ingest.webhooks import sign_chatwoot
from services.scorer.inprocess import InProcessScorer
from tests.unit.test_adapters_common import LIVECHAT_SECRET, NOW_S, MakeHooks, fixture, make_hooks, valid

__all__ = ["make_hooks"]

T0_S = 1_800_000_000  # 2027-01-15T08:00:00Z
T0 = T0_S * 1000


@dataclass
class Delivery:
    at_s: float  # seconds after T0 when the platform sends it
    payload: dict[str, Any]


def iso(offset_s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(T0_S + offset_s, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- Chatwoot: account 7, inbox 3 (queue presales) ----------------------------------------------------


def chatwoot_script() -> list[Delivery]:
    created = fixture("chatwoot/conversation_created.json")
    message = fixture("chatwoot/message_created.json")
    updated = fixture("chatwoot/conversation_updated.json")
    status = fixture("chatwoot/conversation_status_changed.json")

    def conv(display_id: int, at: float, **fields: Any) -> dict[str, Any]:
        c = copy.deepcopy(created)
        c.update(id=display_id, inbox_id=3, created_at=T0_S + at, updated_at=T0_S + at + 0.25, **fields)
        for m in c["messages"]:
            m["account_id"] = 7
        return c

    def msg(mid: int, display_id: int, at: float, kind: str, sender: dict[str, Any] | None, text: str,
            **extra: Any) -> dict[str, Any]:
        m = copy.deepcopy(message)
        m.update(id=mid, created_at=iso(at), message_type=kind, sender=sender, content=text, **extra)
        m["account"]["id"] = 7
        m["inbox"]["id"] = 3
        m["conversation"].update(id=display_id, inbox_id=3)
        return m

    def update(display_id: int, at: float, changes: dict[str, tuple[Any, Any]], **fields: Any) -> dict[str, Any]:
        u = copy.deepcopy(updated)
        u.update(id=display_id, inbox_id=3, updated_at=T0_S + at + 0.5, **fields)
        u["changed_attributes"] = [{k: {"previous_value": p, "current_value": c}} for k, (p, c) in changes.items()]
        for m in u["messages"]:
            m["account_id"] = 7
        return u

    resolved_status = copy.deepcopy(status)
    resolved_status.update(id=42, inbox_id=3, status="resolved", updated_at=T0_S + 40.5)
    for m in resolved_status["messages"]:
        m["account_id"] = 7
    contact = {"id": 163, "name": "buyer"}
    csat = msg(1004, 42, 35, "template", None, "Rate us", content_type="input_csat",
               content_attributes={"submitted_values": {"csat_survey_response": {"rating": 5, "feedback_message": ""}}})
    csat["event"] = "message_updated"
    return [
        Delivery(0, conv(42, 0)),  # status pending: the inbox's agent bot serves first
        Delivery(1, msg(1001, 42, 1, "incoming", contact, "你好")),
        Delivery(3, msg(1002, 42, 3, "outgoing", {"id": 9, "name": "bot", "type": "agent_bot"}, "Hi! How can I help?")),
        Delivery(10, update(42, 10, {"status": ("pending", "open")}, status="open")),  # the bot hands off
        Delivery(12, update(42, 12, {"assignee_id": (None, 5)}, status="open")),
        Delivery(20, conv(43, 20)),
        Delivery(21, msg(1005, 43, 21, "incoming", contact, "在吗")),
        Delivery(25, msg(1003, 42, 25, "outgoing", {"id": 5, "name": "Li", "type": "user"}, "您好，在的")),
        Delivery(26, msg(1006, 42, 26, "outgoing", {"id": 5, "type": "user"}, "note", private=True)),
        Delivery(40, resolved_status),
        Delivery(40.2, update(42, 40, {"status": ("open", "resolved")}, status="resolved")),  # same change
        Delivery(45, csat),
    ]


# --- LiveChat: organization org-9, group 19 (queue vip), group 20 (queue aftersales) ------------------

BOT = "5c9871d5372c824cbf22d860a707a578"  # LiveChat bot agents have 32-hex ids
CUSTOMER = "b7eff798-f8df-4364-8059-649c35c9ed0c"
AGENT = "smith@example.com"


def livechat_script() -> list[Delivery]:
    customer = fixture("livechat/structures/customer.json")
    thread_tpl = fixture("livechat/structures/thread.json")
    message = fixture("livechat/structures/message.json")

    def envelope(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        env = fixture(f"livechat/{name}.json") if name != "incoming_chat" else fixture("livechat/incoming_chat.json")
        env.update(secret_key=LIVECHAT_SECRET, organization_id="org-9", payload=payload)
        return env

    def event(eid: str, author: str, at: float, text: str) -> dict[str, Any]:
        e = copy.deepcopy(message)
        e.update(id=eid, author_id=author, created_at=iso(at), text=text)
        return e

    def chat(chat_id: str, thread_id: str, at: float, first_text: str) -> dict[str, Any]:
        thread = copy.deepcopy(thread_tpl)
        thread.update(id=thread_id, created_at=iso(at), access={"group_ids": [19]},
                      events=[event(f"{thread_id}_1", CUSTOMER, at + 0.5, first_text)])
        users = [customer, {"id": BOT, "type": "agent", "name": "ChatBot"}]
        return envelope("incoming_chat", {"chat": {"id": chat_id, "users": users, "thread": thread}})

    def incoming(chat_id: str, thread_id: str, e: dict[str, Any]) -> dict[str, Any]:
        return envelope("incoming_event", {"chat_id": chat_id, "thread_id": thread_id, "event": e})

    agent = fixture("livechat/structures/agent.json")
    return [
        Delivery(-5, envelope("routing_status_set", {"agent_id": AGENT, "status": "accepting_chats"})),
        Delivery(0, chat("CHAT1", "TH1", 0, "hello there")),
        Delivery(2, incoming("CHAT1", "TH1", event("TH1_2", BOT, 2, "Hi, I am a bot"))),
        Delivery(8, envelope("chat_transferred", {
            "chat_id": "CHAT1", "thread_id": "TH1", "requester_id": BOT, "reason": "manual",
            "transferred_to": {"group_ids": [20]},
        })),
        Delivery(9, envelope("user_added_to_chat", {
            "chat_id": "CHAT1", "thread_id": "TH1", "user": agent, "reason": "manual", "requester_id": BOT,
        })),
        Delivery(15, chat("CHAT2", "TH9", 15, "anyone?")),
        Delivery(20, incoming("CHAT1", "TH1", event("TH1_3", AGENT, 20, "Hello, Smith here"))),
        Delivery(30, envelope("chat_deactivated", {"chat_id": "CHAT1", "thread_id": "TH1", "user_id": AGENT})),
    ]


# --- Sunshine Conversations: app app-1, integration web-int (queue web) -------------------------------


def sunshine_script() -> list[Delivery]:
    create = fixture("sunshine/conversationCreateEvent.json")
    message = fixture("sunshine/conversationMessageEvent.json")
    passed = fixture("sunshine/switchboardPassControlEvent.json")
    release = fixture("sunshine/switchboardReleaseControlEvent.json")
    workspace = {
        "id": "sw-2", "name": "zd-agentWorkspace", "integrationId": "zd-1", "integrationType": "zd:agentWorkspace"
    }

    def wrap(*events: dict[str, Any]) -> dict[str, Any]:
        return {"app": {"id": "app-1"}, "webhook": {"id": "wh-1", "version": "v2"}, "events": list(events)}

    def opened(eid: str, conv: str, at: float) -> dict[str, Any]:
        e: dict[str, Any] = copy.deepcopy(create["events"][0])
        e.update(id=eid, createdAt=iso(at))
        e["payload"]["conversation"]["id"] = conv
        e["payload"]["source"]["integrationId"] = "web-int"
        return e

    def said(eid: str, conv: str, at: float, author: dict[str, Any], text: str, active: dict[str, Any] | None = None
             ) -> dict[str, Any]:
        e: dict[str, Any] = copy.deepcopy(message["events"][0])
        e.update(id=eid, createdAt=iso(at))
        e["payload"]["conversation"]["id"] = conv
        if active is not None:
            e["payload"]["conversation"]["activeSwitchboardIntegration"] = active
        m = e["payload"]["message"]
        m.update(id=f"m-{eid}", received=iso(at), author=author, content={"type": "text", "text": text})
        m["source"].update(integrationId="web-int", type="web")  # the integration the conversation opened in
        return e

    user = copy.deepcopy(message["events"][0]["payload"]["message"]["author"])
    handoff = copy.deepcopy(passed["events"][0])
    handoff.update(id="ev-4", createdAt=iso(10))
    handoff["payload"]["conversation"].update(id="conv-1", activeSwitchboardIntegration=workspace)
    closed = copy.deepcopy(release["events"][0])
    closed.update(id="ev-7", createdAt=iso(50))
    closed["payload"].update(reason="ticketClosed")
    closed["payload"]["conversation"]["id"] = "conv-1"
    return [
        Delivery(0, wrap(opened("ev-1", "conv-1", 0))),
        Delivery(1.5, wrap(said("ev-2", "conv-1", 1, user, "hello"),  # two events in one delivery
                           said("ev-3", "conv-1", 1.5, {"type": "business", "displayName": "Bot"}, "Hi, bot here"))),
        Delivery(10, wrap(handoff)),
        Delivery(20, wrap(opened("ev-5", "conv-2", 20), said("ev-6", "conv-2", 21, user, "hi?"))),
        Delivery(30, wrap(said("ev-8", "conv-1", 30, {"type": "business", "displayName": "Ana"}, "Ana here",
                               active=workspace))),
        Delivery(50, wrap(closed)),
    ]


CONFIG = AdapterConfig(
    queue_map={
        "chatwoot:inbox:3": "presales",
        "livechat:group:19": "vip",
        "livechat:group:20": "aftersales",
        "sunshine:integration:web-int": "web",
    },
    tenant="acme",
    agent_queues={"livechat": ("vip", "aftersales")},
)

SCRIPTS = {"chatwoot": chatwoot_script, "livechat": livechat_script, "sunshine": sunshine_script}
NOW = {"chatwoot": T0 + 60_000, "livechat": T0 + 60_000, "sunshine": T0 + 60_000}


def mapped_events(platform: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in SCRIPTS[platform]():
        mapped = ADAPTERS[platform](d.payload, Context(received_ms=T0 + int(d.at_s * 1000), config=CONFIG))
        assert mapped.errors == []
        out.extend(valid(mapped.events))
    return out


def views_of(events: list[dict[str, Any]], now: int) -> dict[Scope, QueueView]:
    scorer = InProcessScorer(event_clock=True)
    scorer.feed(events)
    views = scorer.tick(now)
    assert scorer.dead_letters == []
    return views


def queue_view(views: dict[Scope, QueueView], queue: str, platform: str) -> QueueView:
    return views[Scope("acme", "*", platform, queue)]


def check_chatwoot(views: dict[Scope, QueueView]) -> None:
    v = queue_view(views, "presales", "chatwoot")
    w = v["windows"]["5m"]
    assert w["arrivals"] == 2
    # Reply at 25 s; the wait for a human started at the handoff (updated_at 10.5 s), not at 1 s.
    assert (w["frt"]["count"], w["frt"]["mean_s"]) == (1, 14.5)
    assert v["live"]["unanswered"] == 1 and v["live"]["open"] == 1
    assert w["csat"]["mean"] == 5.0
    assert w["resolution_rate"] == 1.0


def check_livechat(views: dict[Scope, QueueView]) -> None:
    vip = queue_view(views, "vip", "livechat")
    after = queue_view(views, "aftersales", "livechat")
    assert vip["windows"]["5m"]["arrivals"] == 2
    assert vip["windows"]["5m"]["transfer_rate"] == 0.5
    assert vip["live"]["unanswered"] == 1  # CHAT2 waits in vip
    # Answered in the queue it was transferred to, 12 s after the bot's handoff at 8 s.
    assert (after["windows"]["5m"]["frt"]["count"], after["windows"]["5m"]["frt"]["mean_s"]) == (1, 12.0)
    assert after["live"]["agents_online"] == 1 and vip["live"]["agents_online"] == 1


def check_sunshine(views: dict[Scope, QueueView]) -> None:
    v = queue_view(views, "web", "sunshine")
    w = v["windows"]["5m"]
    assert w["arrivals"] == 2
    assert (w["frt"]["count"], w["frt"]["mean_s"]) == (1, 20.0)  # 30 s reply - 10 s handoff
    assert v["live"]["unanswered"] == 1 and v["live"]["open"] == 1
    assert w["resolution_rate"] == 1.0


CHECKS = {"chatwoot": check_chatwoot, "livechat": check_livechat, "sunshine": check_sunshine}


@pytest.mark.parametrize("platform", sorted(SCRIPTS))
def test_script_through_adapter_and_scorer(platform: str) -> None:
    events = mapped_events(platform)
    assert not any("text" in e or "content" in e for e in events)
    CHECKS[platform](views_of(events, NOW[platform]))


def test_chatwoot_script_maps_each_step() -> None:
    events = mapped_events("chatwoot")
    kinds = [(e["type"], e.get("sender")) for e in events if e["conversation_id"] == "chatwoot:7:42"]
    assert kinds == [
        ("conversation.opened", None), ("message", "customer"), ("message", "bot"), ("conversation.handoff", None),
        ("conversation.assigned", None), ("message", "agent"), ("conversation.closed", None),
        ("conversation.closed", None), ("csat.rated", None),
    ]
    closes = [e for e in events if e["type"] == "conversation.closed"]
    assert closes[0]["event_id"] == closes[1]["event_id"]  # status_changed + updated: one close


@pytest.mark.parametrize("platform", sorted(SCRIPTS))
async def test_script_through_http_with_retries(make_hooks: MakeHooks, platform: str) -> None:
    hooks = await make_hooks(adapters=CONFIG, now_s=T0_S)
    deliveries = SCRIPTS[platform]()
    accepted = duplicates = 0
    for d in deliveries:
        hooks.clock[0] = T0_S + d.at_s
        resp = await hooks.post(platform, d.payload)
        assert resp.status_code == 202, resp.text
        accepted += resp.json()["accepted"]
        duplicates += resp.json()["duplicates"]
    written = len(hooks.producer.records)
    assert written == accepted
    # The platform retries three deliveries (timeouts on its side): nothing is written twice.
    for d in (deliveries[1], deliveries[3], deliveries[-1]):
        hooks.clock[0] = T0_S + d.at_s + 20
        resp = await hooks.post(platform, d.payload)
        assert resp.status_code == 202, resp.text
        assert resp.json()["accepted"] == 0 and resp.json()["duplicates"] == resp.json()["mapped"]
    assert len(hooks.producer.records) == written
    assert hooks.sample("floorwatch_ingest_events_total", result="accepted") == written
    records = [orjson.loads(v) for _k, v in hooks.producer.records]
    CHECKS[platform](views_of(records, NOW[platform]))


# --- docs/quickstart-platforms.md, followed as written -------------------------------------------------

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart-platforms.md"
SECTIONS = {"chatwoot": "Chatwoot", "livechat": "LiveChat", "sunshine": "Sunshine Conversations"}
SECRET_VALUE = "secret-the-platform-shows-0123"


def quickstart_rows(platform: str) -> dict[str, str]:
    """The `| step | value |` rows of the platform's section: the first `code` of each value."""
    text = QUICKSTART.read_text(encoding="utf-8")
    section = text.split(f"\n## {SECTIONS[platform]}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for step, value in re.findall(r"^\| ([A-Z][a-zA-Z ]+) \| (.+) \|$", section, flags=re.M):
        code = re.search(r"`([^`]+)`", value)
        rows[step] = code.group(1) if code else value
    return rows


@pytest.mark.parametrize("platform", sorted(SCRIPTS))
async def test_quickstart_steps_deliver_the_script(
    make_hooks: MakeHooks, platform: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = quickstart_rows(platform)
    url = urlsplit(rows["Webhook URL"].replace("<ingest-host>", "ingest").replace("<account-id>", "7"))
    assert (url.scheme, url.netloc) == ("https", "ingest")
    # The secret goes where the doc says: the variable it names is the one ingest reads (a wrong name
    # leaves the platform unconfigured: 503). No queue mapping: the platforms' own names.
    for name in ("CHATWOOT_WEBHOOK_SECRET", "LIVECHAT_SECRET_KEY", "SUNSHINE_API_KEY", "ADAPTER_QUEUE_MAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(rows["Secret"], SECRET_VALUE)
    settings = IngestSettings(token="t", max_past_s=0.0, topic="unit.events", chatwoot_allow_unsigned=False)
    hooks = await make_hooks(settings=settings, now_s=T0_S)
    caplog.set_level(logging.INFO, logger="floorwatch.ingest.webhooks")
    metrics = (await hooks.client.get("/metrics")).text
    assert f"webhook {platform:<9} no delivery yet" in "\n".join(webhook_lines(metrics, T0_S))
    header = rows["Header"]
    for d in SCRIPTS[platform]():
        hooks.clock[0] = T0_S + d.at_s
        payload = copy.deepcopy(d.payload)
        if platform == "livechat":  # no header: the row names the body member that carries the secret
            payload[header] = SECRET_VALUE
        raw = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if platform == "chatwoot":
            signed = sign_chatwoot(SECRET_VALUE, int(hooks.clock[0]), raw)
            headers[header] = signed[header]
            headers["X-Chatwoot-Timestamp"] = signed["X-Chatwoot-Timestamp"]
        elif platform == "sunshine":
            headers[header] = SECRET_VALUE
        resp = await hooks.client.post(f"{url.path}?{url.query}" if url.query else url.path, content=raw,
                                       headers=headers)
        assert resp.status_code == 202, resp.text
    events = hooks.events
    assert events and all(e["platform"] == platform for e in events)
    queues = {e[k] for e in events for k in ("queue", "to_queue") if k in e}
    expected = {"chatwoot": {"inbox-3", "旗舰店"}, "livechat": {"group-19", "group-20"}, "sunshine": {"web"}}
    assert queues == expected[platform]
    if platform == "chatwoot":  # ?account= of the URL is used where a delivery names none
        assert {e["conversation_id"].split(":")[1] for e in events} == {"7"}
    # What the quick start says to check: make status's line and the ingest log's.
    metrics = (await hooks.client.get("/metrics")).text
    line = next(x for x in webhook_lines(metrics, T0_S + 60) if x.split()[1] == platform)
    assert "last delivery" in line and "refused" not in line
    assert [r.getMessage() for r in caplog.records].count("first webhook delivery accepted") == 1


async def test_quickstart_wrong_secret_shows_as_refused(
    make_hooks: MakeHooks, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = await make_hooks()
    caplog.set_level(logging.INFO, logger="floorwatch.ingest.webhooks")
    delivery = SCRIPTS["sunshine"]()[0].payload
    for _ in range(3):
        resp = await hooks.post("sunshine", delivery, sign=False, headers={"X-API-Key": "not-the-secret"})
        assert resp.status_code == 401
    metrics = (await hooks.client.get("/metrics")).text
    [line] = [x for x in webhook_lines(metrics, NOW_S) if x.split()[1] == "sunshine"]
    assert line == "  webhook sunshine  no delivery yet; refused 401: 3 (see the ingest log)"
    refused = [r for r in caplog.records if r.getMessage().startswith("webhook delivery refused")]
    assert len(refused) == 1 and refused[0].__dict__["reason"] == "missing or wrong X-API-Key"
