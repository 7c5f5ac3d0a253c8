"""The API's HTTP layer over a view store filled by hand (the Kafka reader is tested end to end)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.figures import QueueView
from services.core.merge import QueueMerger
from services.core.partials import Live
from services.core.scope import Scope, queue_total
from services.core.waits import LiveSums


def make_view(key: Scope, **live: Any) -> QueueView:
    merger = QueueMerger(5000)
    scope = Scope("acme", "acme-jd", "jd", key.queue)
    lv = Live(open=3, unanswered=1, unassigned=1, awaiting_reply=1)
    lv.waiting[1_000] = 1
    merger.put_live("c", 0, scope, LiveSums.of(lv))
    view = merger.views(61_000)[key]
    cast(dict[str, Any], view["live"]).update(live)  # any figure, of any type
    return view


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    store = ViewStore("unused:9092", "unused")
    for key in [queue_total("presales"), Scope("acme", "acme-jd", "jd", "presales"), Scope("*", "*", "jd", "presales")]:
        store.views[key] = make_view(key)
    store.caught_up.set()
    app = create_app(ApiSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def test_queue_view_shape_and_nulls(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/queues/presales")
    assert r.status_code == 200
    v = r.json()
    assert v["queue"] == "presales" and v["as_of"].endswith("Z")
    assert v["live"]["oldest_wait_s"] == 60.0
    assert v["live"]["agents_online"] is None  # no agent data: null, not 0
    for name in ("1m", "5m", "15m", "1h"):
        w = v["windows"][name]
        assert w["frt"]["mean_s"] is None and w["sl"] == {"30": None, "180": None}


async def test_filters_pick_the_roll_up(client: httpx.AsyncClient) -> None:
    by_shop = (await client.get("/v1/queues/presales", params={"shop_id": "acme-jd"})).json()
    assert by_shop["scope"] == {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}
    by_platform = (await client.get("/v1/queues", params={"platform": "jd"})).json()
    assert [v["scope"]["platform"] for v in by_platform["queues"]] == ["jd"]
    assert (await client.get("/v1/queues/presales", params={"platform": "pdd"})).status_code == 404
    assert (await client.get("/v1/queues/aftersales")).status_code == 404


async def test_erlang_calculator_reference(client: httpx.AsyncClient) -> None:
    # METRICS.md: 100 chats per 30 min, AHT 180 s, 80% in 20 s, occupancy <= 85%, shrinkage 30% -> 14 / 20.
    r = await client.get("/v1/staffing/erlang", params={
        "arrivals_per_hour": 200, "aht_s": 180, "sl_target": 0.8, "sl_seconds": 20,
        "max_occupancy": 0.85, "shrinkage": 0.3,
    })
    assert r.status_code == 200
    body = r.json()
    assert body["required_agents"] == 14 and body["required_rostered"] == 20
    assert body["service_level"] >= 0.8 and body["occupancy"] <= 0.85


@pytest.mark.parametrize("params", [
    {"arrivals_per_hour": -1, "aht_s": 180},
    {"arrivals_per_hour": 10, "aht_s": 0},
    {"arrivals_per_hour": 10, "aht_s": 180, "sl_target": 1.5},
    {"arrivals_per_hour": "lots", "aht_s": 180},
])
async def test_erlang_calculator_rejects_bad_input(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    r = await client.get("/v1/staffing/erlang", params=params)
    assert r.status_code == 422
    assert r.json()["detail"]


async def test_staffing_on_live_view(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/staffing", params={"queue": "presales"})
    assert r.status_code == 200
    body = r.json()
    assert body["inputs"]["backlog"] == 1
    assert body["inputs"]["aht_source"] == "default"  # no closed conversations measured yet
    assert body["required_agents"] == 0  # no arrivals in the 15m window...
    assert body["overload"] is False
    assert body["backlog_drain"]["agents"] >= 1  # ...but a buyer waits,
    assert body["backlog_drain"]["minutes_at_current"] is None  # and with no agent available never drains
    assert (await client.get("/v1/staffing", params={"queue": "nope"})).status_code == 404


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    text = (await client.get("/metrics")).text
    assert "floorwatch_api_views 3.0" in text


async def test_staffing_overload_answers_with_growth_and_erlang_a() -> None:
    store = ViewStore("unused:9092", "unused")
    # One agent on duty with one slot: staffing reads the integers (slots_capacity, agents_serving).
    view = make_view(queue_total("presales"), agents_serving=1, slots_capacity=1, agents_available=0,
                     concurrency=1.0)
    view["windows"]["15m"].update({"arrivals": 150, "span_s": 900.0, "arrivals_per_min": 10.0})  # 600 chats an hour
    view["windows"]["1h"]["aht_s"] = 300.0  # 50 Erlangs on one slot: hopeless
    view["windows"]["1h"]["patience_s"] = 60.0
    store.views[queue_total("presales")] = view
    store.caught_up.set()
    app = create_app(ApiSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        body = (await c.get("/v1/staffing", params={"queue": "presales"})).json()
    assert body["overload"] is True and body["utilization"] == 50.0
    assert body["queue_growth_per_min"] > 0  # 10 arrive a minute, one slot clears 0.2
    assert 0.9 < body["erlang_a_abandon"] <= 1.0  # nearly everyone gives up after a minute
    assert body["required_agents"] > 50 and body["inputs"]["agents_staffing"] == 1
    assert body["backlog_drain"]["minutes_at_current"] is None


async def test_openapi_documents_every_public_route(client: httpx.AsyncClient) -> None:
    """/docs renders /openapi.json: it must build (a query type it cannot resolve made it answer 500)."""
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    paths = r.json()["paths"]
    for path in ("/v1/queues", "/v1/queues/{queue}", "/v1/agents", "/v1/agents/{agent_id}", "/v1/staffing",
                 "/v1/staffing/erlang", "/v1/alerts", "/v1/alerts/{alert_id}/ack", "/v1/stream", "/healthz"):
        assert path in paths, f"{path} missing from the OpenAPI document"
    assert (await client.get("/docs")).status_code == 200
