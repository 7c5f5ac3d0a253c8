"""The API side of the wallboard: saved boards (`queues`/`group` on the stream) and alerts that carry
their current value as well as the value they fired at."""

from __future__ import annotations

from typing import Any, cast

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.api.alerts import AlertStore, CurrentValues
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.api.wallboard import queue_matcher
from services.core.figures import QueueView
from services.core.scope import queue_total
from services.scorer.inprocess import InProcessScorer
from tests.unit.test_stream import SSEClient, bump, filled_store

QUEUES = ["presales", "jd-presales", "presales_vip", "preSalesX", "aftersales", "jd-aftersales", "vip"]


def test_queue_matcher_names_globs_and_groups() -> None:
    assert queue_matcher(None, None) is None and queue_matcher(" , ", "") is None
    names = queue_matcher("vip, jd-*", None)
    assert names is not None and [q for q in QUEUES if names(q)] == ["jd-presales", "jd-aftersales", "vip"]
    group = queue_matcher(None, "presales")
    assert group is not None and [q for q in QUEUES if group(q)] == ["presales", "jd-presales", "presales_vip"]
    both = queue_matcher("vip", "aftersales")
    assert both is not None and [q for q in QUEUES if both(q)] == ["aftersales", "jd-aftersales", "vip"]


@pytest.fixture
def store() -> ViewStore:
    return filled_store()


@pytest.fixture
def app(store: ViewStore) -> FastAPI:
    return create_app(ApiSettings(), store=store, alert_store=AlertStore("unused:9092", "unused"))


async def test_the_stream_sends_only_a_saved_boards_queues(app: FastAPI, store: ViewStore) -> None:
    async with SSEClient(app, "group=aftersales") as sse:
        data = await sse.next_event("views")
        assert [v["queue"] for v in data["queues"]] == ["aftersales"]
        assert list(data["signals"]) == ["aftersales"]
        assert data["options"]["queues"] == ["aftersales", "presales"]  # the drop-down still offers every queue
        assert data["filters"]["group"] == "aftersales"
        await bump(store, open=9)
        data = await sse.next_event("views")
        assert [v["queue"] for v in data["queues"]] == ["aftersales"]
    async with SSEClient(app, "queues=presales,nothing-*&platform=jd") as sse:
        data = await sse.next_event("views")
        assert [(v["queue"], v["scope"]["platform"]) for v in data["queues"]] == [("presales", "jd")]


def alert(state: str = "firing", value: float = 100.0, **extra: Any) -> dict[str, Any]:
    return {
        "id": "oldest_wait:presales:*:*:*:1000", "rule": "oldest_wait", "queue": "presales", "tenant": "*",
        "shop_id": "*", "platform": "*", "severity": "warning", "state": state,
        "started_at": "2023-11-14T22:13:20.000Z", "resolved_at": None, "updated_at": "2023-11-14T22:13:20.000Z",
        "value": value, "threshold": 100.0,
        "summary_zh": "…", "summary_en": "…", "time_to_breach_s": None, **extra,
    }


async def test_alerts_carry_the_value_at_firing_and_the_current_one(store: ViewStore) -> None:
    store_ = AlertStore("unused:9092", "unused")
    app = create_app(ApiSettings(), store=store, alert_store=store_)
    store_.apply(b"oldest_wait:presales:*:*:*:1000", orjson.dumps(alert(value=100.0, current_value=100.0)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        (got,) = (await client.get("/v1/alerts")).json()["alerts"]
        # The presales view (a buyer waiting since 1 s, view at 61 s) is read now: 60 s, not the 100 fired at.
        assert (got["value"], got["current_value"]) == (100.0, 60.0)
        assert got["current_as_of"] == store.views[queue_total("presales")]["as_of"]
        assert (await client.get(f"/v1/alerts/{got['id']}")).json()["current_value"] == 60.0

        # A scope the API has no view of: the engine's last published reading.
        other = alert(queue="refunds", current_value=130.0, id="oldest_wait:refunds:*:*:*:1000")
        store_.apply(b"oldest_wait:refunds:*:*:*:1000", orjson.dumps(other))
        got = (await client.get("/v1/alerts/oldest_wait:refunds:*:*:*:1000")).json()
        assert (got["value"], got["current_value"], got["current_as_of"]) == (100.0, 130.0, other["updated_at"])

        # Resolved: the reading that cleared it, as published; records from before current_value: value.
        store_.apply(b"oldest_wait:presales:*:*:*:1000", orjson.dumps(alert("resolved", value=10.0)))
        got = (await client.get("/v1/alerts/oldest_wait:presales:*:*:*:1000")).json()
        assert (got["value"], got["current_value"]) == (10.0, 10.0)


B = 1_795_700_000_000


def test_current_values_follow_the_view_and_say_nothing_without_a_reading() -> None:
    # Views as the scorer publishes them (with `judged`): a buyer waiting since B, views 200 s later.
    scorer = InProcessScorer(event_clock=False)
    scope = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}
    scorer.feed([{**scope, "event_id": "o", "type": "conversation.opened", "ts": B, "conversation_id": "c1",
                  "queue": "presales"},
                 {**scope, "event_id": "m", "type": "message", "ts": B, "conversation_id": "c1",
                  "sender": "customer"}])
    store = ViewStore("unused:9092", "unused")
    store.views.update(scorer.tick(B + 200_000))
    current = CurrentValues(store)
    assert current(alert()) == (200.0, store.views[queue_total("presales")]["as_of"])
    assert current(alert(tenant="acme", shop_id="acme-jd", platform="jd"))[0] == 200.0  # type: ignore[index]
    assert current(alert(rule="sla_breach")) is None  # nothing measured in 5 min yet: a gap, no reading
    assert current(alert(queue="nowhere")) is None
    assert current(alert(rule="no_such_rule")) is None
    # A view without the scorer's reading: the API does not judge it itself.
    store.views[queue_total("presales")] = cast(QueueView, {
        k: v for k, v in store.views[queue_total("presales")].items() if k != "judged"})
    assert current(alert()) is None
