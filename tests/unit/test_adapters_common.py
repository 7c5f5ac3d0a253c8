"""Helpers shared by the adapter tests (fixture loading, a webhook harness) and tests of common.py.

Fixtures live in tests/fixtures/platforms: the project's own deliveries in the shapes of the
platforms' payloads (tests/fixtures/README.md). The vendors' and captured originals they were
written from, `../shared/fixtures/platforms` beside a working copy (`.jsonc` files there are JSON
with `//` comments and placeholders, stripped by `load_fixture`), are the reference that
test_adapters_fixtures.py cross-checks shapes and outcomes against when it is there.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.core.events import parse_event
from services.ingest.adapters.common import (
    AdapterConfig,
    AdapterError,
    Context,
    canonical_hash,
    ident,
    scoped,
    to_ms,
)
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.ingest.webhooks import RecentDeliveries, sign_chatwoot
from tests.unit.test_ingest_api import FakeProducer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "platforms"
REFERENCE = REPO.parent / "shared" / "fixtures" / "platforms"
# Each fixture of ours -> the reference payload whose shape it has (paths under REFERENCE).
REFERENCE_OF: dict[str, str] = {
    "chatwoot/contact_updated.json": "chatwoot/captured/contact_updated.NextCRM.json",
    "chatwoot/conversation_created.json": "chatwoot/captured_2025_11/conversation_created.json",
    "chatwoot/conversation_status_changed.json": "chatwoot/captured_2025_11/conversation_status_changed.json",
    "chatwoot/conversation_updated.json": "chatwoot/captured_2025_11/conversation_updated.json",
    "chatwoot/message_created.json": "chatwoot/captured_2025_11/message_created.json",
    "chatwoot/webwidget_triggered.json": "chatwoot/captured_2025_11/webwidget_triggered.json",
    "chatwoot/message_created.old_docs.json": "chatwoot/official_docs/message_created.sample.jsonc",
    "livechat/chat_deactivated.json": "livechat/chat_deactivated.jsonc",
    "livechat/chat_transferred.json": "livechat/chat_transferred.jsonc",
    "livechat/event_updated.json": "livechat/event_updated.jsonc",
    "livechat/events_marked_as_seen.json": "livechat/events_marked_as_seen.jsonc",
    "livechat/incoming_chat.json": "livechat/incoming_chat.jsonc",
    "livechat/incoming_event.json": "livechat/incoming_event.jsonc",
    "livechat/routing_status_set.json": "livechat/routing_status_set.jsonc",
    "livechat/structures/agent.json": "livechat/structures/agent.json",
    "livechat/structures/chat.json": "livechat/structures/chat.json",
    "livechat/structures/customer.json": "livechat/structures/customer.json",
    "livechat/structures/message.json": "livechat/structures/message.json",
    "livechat/structures/thread.json": "livechat/structures/thread.json",
    "livechat/thread_tagged.json": "livechat/thread_tagged.jsonc",
    "livechat/user_added_to_chat.json": "livechat/user_added_to_chat.jsonc",
    "livechat/user_removed_from_chat.json": "livechat/user_removed_from_chat.jsonc",
    "sunshine/conversationCreateEvent.json": "sunshine_conversations/conversationCreateEvent.json",
    "sunshine/conversationMessageDeliveryUserEvent.json":
        "sunshine_conversations/conversationMessageDeliveryUserEvent.json",
    "sunshine/conversationMessageEvent.json": "sunshine_conversations/conversationMessageEvent.json",
    "sunshine/conversationReadEvent.json": "sunshine_conversations/conversationReadEvent.json",
    "sunshine/conversationTypingEvent.json": "sunshine_conversations/conversationTypingEvent.json",
    "sunshine/switchboardAcceptControlEvent.json": "sunshine_conversations/switchboardAcceptControlEvent.json",
    "sunshine/switchboardPassControlEvent.json": "sunshine_conversations/switchboardPassControlEvent.json",
    "sunshine/switchboardReleaseControlEvent.json": "sunshine_conversations/switchboardReleaseControlEvent.json",
}

CHATWOOT_SECRET = "cw-secret-0123456789"
LIVECHAT_SECRET = "lc-secret-0123456789"
SUNSHINE_KEY = "sc-key-0123456789"


# --- fixture files ----------------------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """Drop `//` comments (outside strings) and trailing commas."""
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            in_string = c != '"'
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def load_fixture(path: Path) -> Any:
    """The payload of a fixture file; None for doc schemas that are no JSON even without comments.

    Chatwoot's old docs sample also lacks commas between some members: those are put back.
    """
    stripped = strip_jsonc(path.read_text(encoding="utf-8"))
    for text in (stripped, re.sub(r'([}\]"el0-9])(\s*\n\s*")', r"\1,\2", stripped)):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
    return None


def fixture_files() -> list[Path]:
    """Every fixture of the repository (a clone has them all: an empty list is a broken checkout)."""
    files = sorted(p for p in FIXTURES.rglob("*") if p.suffix == ".json")
    assert files, f"no fixtures under {FIXTURES}"
    return files


def fixture(rel: str) -> dict[str, Any]:
    """A fixture that is a JSON object (a delivery or a structure), as a fresh copy."""
    path = FIXTURES / rel
    value = load_fixture(path)
    assert isinstance(value, dict), rel
    return value


def valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assert every event passes the contract; return them."""
    for event in events:
        parse_event(event)
    return events


# --- a webhook harness (fake producer, lifespan entered) ----------------------------------------

NOW_S = 1_773_177_800.0  # 2026-03-10T21:23:20Z, just after the Chatwoot deliveries of tests/fixtures
NOW_MS = int(NOW_S * 1000)


def webhook_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "token": "t",
        "max_future_s": 300.0,
        "max_past_s": 0.0,  # fixtures are years old: no past limit in these tests
        "chatwoot_webhook_secret": CHATWOOT_SECRET,
        "chatwoot_allow_unsigned": False,
        "chatwoot_replay_window_s": 300.0,
        "livechat_secret_key": LIVECHAT_SECRET,
        "sunshine_api_key": SUNSHINE_KEY,
        "redelivery_window_s": 60.0,
        "adapters": AdapterConfig(),
        "topic": "unit.events",
    }
    values.update(overrides)
    return IngestSettings(**values)


class Hooks:
    def __init__(self, client: httpx.AsyncClient, producer: FakeProducer, app: Any, clock: list[float]) -> None:
        self.client = client
        self.producer = producer
        self.app = app
        self.clock = clock

    async def post(self, platform: str, payload: Any, *, sign: bool = True, params: dict[str, str] | None = None,
                   headers: dict[str, Any] | None = None) -> httpx.Response:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        sent: dict[str, Any] = {"Content-Type": "application/json"}
        if sign and platform == "chatwoot":
            sent.update(sign_chatwoot(CHATWOOT_SECRET, int(self.clock[0]), raw))
        if sign and platform == "sunshine":
            sent["X-API-Key"] = SUNSHINE_KEY
        sent.update(headers or {})
        return await self.client.post(f"/v1/webhooks/{platform}", content=raw, headers=sent, params=params)

    def sample(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _key, value in self.producer.records]


MakeHooks = Callable[..., Awaitable[Hooks]]


@pytest.fixture
async def make_hooks() -> AsyncIterator[MakeHooks]:
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**overrides: Any) -> Hooks:
        clock = [overrides.pop("now_s", NOW_S)]
        producer = FakeProducer()
        settings = overrides.pop("settings", None) or webhook_settings(**overrides)
        app = create_app(settings, producer, wall_clock=lambda: clock[0])
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")
        opened.append((lifespan, client))
        return Hooks(client, producer, app, clock)

    yield make
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def livechat(action: str, payload: dict[str, Any], org: str = "org-1") -> dict[str, Any]:
    return {
        "webhook_id": "wh-1", "secret_key": LIVECHAT_SECRET, "action": action, "organization_id": org,
        "payload": payload, "additional_data": {},
    }


# --- tests of common.py -----------------------------------------------------------------------


def test_jsonc_loader_keeps_urls_and_drops_comments() -> None:
    assert orjson.loads(strip_jsonc('{"a": "http://x//y", // c\n "b": [1,],}')) == {"a": "http://x//y", "b": [1]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-15T03:35:14.179Z", 1763177714179),
        ("2020-03-03 13:05:57 UTC", 1583240757000),
        ("2017-10-12T15:19:21.010200Z", 1507821561010),
        ("2026-11-11T00:00:05.120+08:00", 1794326405120),
        ("2020-09-30T18:00:56.820123456Z", 1601488856820),
        (1763177714, 1763177714000),
        (1763177714.155967, 1763177714156),
        (1763177714155, 1763177714155),
    ],
)
def test_platform_timestamps(value: object, expected: int) -> None:
    assert to_ms(value, "t") == expected


@pytest.mark.parametrize("value", ["yesterday", "", 12, -5, True, None, [], float("nan"), "9999-99-99", "1" * 500])
def test_bad_timestamps_are_adapter_errors(value: object) -> None:
    with pytest.raises(AdapterError):
        to_ms(value, "t")


def test_ids_are_scoped_and_bounded() -> None:
    assert scoped("chatwoot", "1", "150") == "chatwoot:1:150"
    long = scoped("livechat", "o" * 100, "chat", "x" * 100)
    assert len(long) <= 128 and long.startswith("livechat:~")
    assert long == scoped("livechat", "o" * 100, "chat", "x" * 100)
    assert ident(42, "id") == "42" and ident("😀-7", "id") == "😀-7"
    for bad in (None, True, "", "a\x00b", "rtl\u200fmark", {"id": 1}, "x" * 600, 1.5):
        with pytest.raises(AdapterError):
            ident(bad, "id")


def test_canonical_hash_ignores_key_order() -> None:
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_QUEUE_MAP", '{"chatwoot:inbox:1": "presales", "livechat:group:19": "vip"}')
    monkeypatch.setenv("ADAPTER_TENANT", '{"*": "acme", "livechat:org-2": "beta"}')
    monkeypatch.setenv("ADAPTER_AGENT_CAPACITY", "3")
    monkeypatch.setenv("LIVECHAT_BOT_AGENT_IDS", "bot-1, bot-2")
    monkeypatch.setenv("CHATWOOT_DEFAULT_ACCOUNT", " 7 ")
    cfg = AdapterConfig.from_env()
    assert cfg.chatwoot_default_account == "7"
    assert cfg.queue_for("chatwoot", "1", ("team", 4), ("inbox", 1)) == "presales"
    assert cfg.queue_for("chatwoot", "1", ("inbox", 2)) == "inbox-2"  # unmapped, unnamed: by its id
    assert cfg.tenant_for("livechat", "org-2") == "beta" and cfg.tenant_for("chatwoot", "1") == "acme"
    assert cfg.agent_capacity == 3 and cfg.livechat_bot_agents == {"bot-1", "bot-2"}
    assert cfg.queues_of_agent("livechat", "org-1", "a@x", "livechat:org-1:agent:a@x") == ["vip"]
    assert "zd-agentWorkspace" in cfg.sunshine_agent_integrations
    monkeypatch.setenv("ADAPTER_TENANT", "plain")
    assert AdapterConfig.from_env().tenant_for("sunshine", "app") == "plain"
    monkeypatch.setenv("ADAPTER_QUEUE_MAP", "[1, 2]")
    with pytest.raises(SystemExit):
        AdapterConfig.from_env()


def test_redelivery_memory_keeps_first_arrival_within_window() -> None:
    memory = RecentDeliveries(window_s=60)
    assert memory.first_seen(b"a", 1_000) == 1_000
    assert memory.first_seen(b"a", 50_000) == 1_000  # a retry
    assert memory.first_seen(b"b", 50_000) == 50_000
    assert memory.first_seen(b"a", 62_000) == 62_000  # the window passed: a new delivery
    off = RecentDeliveries(window_s=0)
    assert off.first_seen(b"a", 1) == 1 and off.first_seen(b"a", 2) == 2 and len(off) == 0


def test_context_defaults() -> None:
    ctx = Context(received_ms=1)
    assert ctx.config.tenant == "default" and ctx.account is None
