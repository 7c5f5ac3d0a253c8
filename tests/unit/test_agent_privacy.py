"""Agent ids that are e-mail addresses (LiveChat logins) never leave as addresses: the API's agent board,
the SSE stream and the scorer's /metrics show `agent-<12 hex>`, the same name everywhere (issue 16)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.figures import QueueView
from services.core.privacy import shown_agent_id
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import ViewsCollector
from tests.unit.test_agent_view import T, events
from tests.unit.test_stream import SSEClient

EMAIL = "jane.doe@shop.example"


def floor(monkeypatch: pytest.MonkeyPatch) -> dict[Any, QueueView]:
    monkeypatch.setenv("AGENT_ID_SALT", "salt-for-tests")
    s = InProcessScorer()
    s.feed([{**e, **({"agent_id": EMAIL} if e.get("agent_id") == "a1" else {})} for e in events()])
    return s.tick(T + 120_000)


def test_only_addresses_are_hashed_stably_and_by_salt() -> None:
    name = shown_agent_id(EMAIL, "s1")
    assert re.fullmatch(r"agent-[0-9a-f]{12}", name)
    assert shown_agent_id(EMAIL, "s1") == name and shown_agent_id(EMAIL, "s2") != name
    assert shown_agent_id("a-12", "s1") == "a-12"
    assert shown_agent_id("not@an-address", "s1") == "not@an-address"


async def test_api_and_stream_never_show_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    views = floor(monkeypatch)
    store = ViewStore("unused:9092", "unused")
    store.views.update(views)
    store.caught_up.set()
    app = create_app(ApiSettings(), store=store)
    shown = shown_agent_id(EMAIL)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        r = await c.get("/v1/agents")
        assert EMAIL not in r.text
        assert [a["agent_id"] for a in r.json()["agents"]] == [shown]
        assert (await c.get(f"/v1/agents/{shown}")).json()["agent_id"] == shown
        for path in ("/v1/thresholds", "/v1/queues", "/v1/alerts"):
            assert EMAIL not in (await c.get(path)).text, path
    async with SSEClient(app) as stream:
        _event, data = await stream.next()
        assert EMAIL not in orjson.dumps(data).decode()


def test_scorer_metrics_never_show_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    views = list(floor(monkeypatch).values())
    text = ViewsCollector(lambda: views).render().decode()
    assert EMAIL not in text
    assert f'agent="{shown_agent_id(EMAIL)}"' in text


@pytest.mark.parametrize("value", ["replace-me", "changeme"])
def test_a_placeholder_salt_stops_the_scorer_and_the_api(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from services.scorer.settings import ScorerSettings

    monkeypatch.setenv("AGENT_ID_SALT", value)
    with pytest.raises(SystemExit, match="AGENT_ID_SALT"):
        ScorerSettings()
    with pytest.raises(SystemExit, match="AGENT_ID_SALT"):
        ApiSettings()


def test_required_secrets_stop_an_unconfigured_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """With FLOORWATCH_REQUIRE_SECRETS (the Kubernetes base sets it) an empty secret stops the start; without
    it (local runs) an empty secret only refuses that traffic."""
    from services.ingest.settings import IngestSettings
    from services.scorer.settings import ScorerSettings

    monkeypatch.delenv("AGENT_ID_SALT", raising=False)
    ApiSettings(token="")
    ScorerSettings()
    monkeypatch.setenv("FLOORWATCH_REQUIRE_SECRETS", "true")
    with pytest.raises(SystemExit, match="AGENT_ID_SALT"):
        ScorerSettings()
    with pytest.raises(SystemExit, match="API_TOKEN"):
        ApiSettings(token="")
    with pytest.raises(SystemExit, match="INGEST_TOKEN or INGEST_TOKENS"):
        IngestSettings(token="", tokens={})
    monkeypatch.setenv("AGENT_ID_SALT", "a-random-salt-value")
    ScorerSettings()
    ApiSettings(token="a-random-token-value")
    IngestSettings(token="", tokens={"acme": "a-random-token-value"})
