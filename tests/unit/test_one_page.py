"""One condition, one page (issue 10, defect 5; METRICS.md, Alerts).

Where a roll-up scope (a queue across shops) and its only member scope (that queue in one shop) are
the same conversations, only one alert fires; where a roll-up has several members, member alerts are
grouped under it (one notification, members listed). Before, one waiting buyer in a single-shop queue
fired `oldest_wait` on the queue total and on the shop, and /v1/alerts listed both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from services.api.alerts import AlertStore
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.alert_signals import paging_scopes
from services.core.scope import Scope, queue_total
from services.core.wire import ENGINE_KEY_PREFIX
from services.scorer.inprocess import InProcessScorer

REPO = Path(__file__).resolve().parents[2]
B = 1_795_700_000_000


def waiting_buyer(shop: str, platform: str, conv: str, ts: int = B) -> list[dict[str, Any]]:
    scope = {"tenant": "acme", "shop_id": shop, "platform": platform}
    return [
        {**scope, "event_id": f"{conv}-o", "type": "conversation.opened", "ts": ts, "conversation_id": conv,
         "queue": "presales"},
        {**scope, "event_id": f"{conv}-m", "type": "message", "ts": ts, "conversation_id": conv,
         "sender": "customer"},
    ]


def floor_alerts(s: InProcessScorer) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in s.alerts if r.value and not r.key.startswith(ENGINE_KEY_PREFIX.encode())]


def scorer_after(events: list[dict[str, Any]], *ticks: int) -> InProcessScorer:
    s = InProcessScorer(event_clock=False)
    s.feed(events)
    for t in ticks:
        s.tick(t)
    return s


@pytest.fixture
async def api_of_single_shop_floor() -> AsyncIterator[httpx.AsyncClient]:
    s = scorer_after(waiting_buyer("acme-jd", "jd", "c1"), B + 50_000, B + 101_000, B + 150_000, B + 200_000)
    alerts = AlertStore("unused:9092", "unused")
    for record in s.alerts:
        alerts.apply(record.key, record.value)
    alerts.caught_up.set()
    views = ViewStore("unused:9092", "unused")
    views.caught_up.set()
    app = create_app(ApiSettings(), store=views, alert_store=alerts)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


def test_one_waiting_buyer_in_a_single_shop_queue_is_one_alert() -> None:
    s = scorer_after(waiting_buyer("acme-jd", "jd", "c1"), B + 50_000, B + 101_000, B + 150_000, B + 200_000)
    alerts = floor_alerts(s)
    assert {a["id"] for a in alerts} == {alerts[0]["id"]}  # one episode: fired, then escalated in place
    assert (alerts[0]["rule"], alerts[0]["shop_id"], alerts[0]["platform"]) == ("oldest_wait", "acme-jd", "jd")
    assert [a["severity"] for a in alerts] == ["warning", "critical"]
    # The queue total's figures are still judged and exported (Prometheus), only not paged twice.
    assert queue_total("presales") in s.queues.latest_signals


async def test_v1_alerts_lists_one_alert_for_one_waiting_buyer(api_of_single_shop_floor: httpx.AsyncClient) -> None:
    body = (await api_of_single_shop_floor.get("/v1/alerts", params={"state": "firing"})).json()
    assert [(a["rule"], a["shop_id"], a["severity"]) for a in body["alerts"]] == [
        ("oldest_wait", "acme-jd", "critical")]


def test_several_shops_are_grouped_under_the_queue() -> None:
    s = scorer_after(
        waiting_buyer("acme-jd", "jd", "c1") + waiting_buyer("acme-tb", "taobao", "c2", B + 5_000),
        B + 50_000, B + 106_000,
    )
    fired = floor_alerts(s)
    assert {(a["shop_id"], a["rule"]) for a in fired} == {("*", "oldest_wait"), ("acme-jd", "oldest_wait"),
                                                          ("acme-tb", "oldest_wait")}
    assert {a["group"] for a in fired} == {"oldest_wait:presales:*:*:*"}


def test_paging_scopes() -> None:
    one = {queue_total("q"), Scope("t", "s1", "jd", "q")}
    assert paging_scopes(one) == {Scope("t", "s1", "jd", "q")}
    two = one | {Scope("t", "s2", "pdd", "q"), queue_total("r"), Scope("t", "s1", "jd", "r")}
    assert paging_scopes(two) == {queue_total("q"), Scope("t", "s1", "jd", "q"), Scope("t", "s2", "pdd", "q"),
                                  Scope("t", "s1", "jd", "r")}


def test_alertmanager_sends_a_queue_and_its_shops_as_one_notification() -> None:
    [path] = [p for p in (REPO / "deploy" / "alertmanager").glob("alertmanager.yml*")]
    route = yaml.safe_load(path.read_text(encoding="utf-8"))["route"]
    for r in [route, *route.get("routes", [])]:
        group_by = r.get("group_by", route["group_by"])
        # A shop's labels would split a queue's alerts of one rule into one notification per shop.
        assert set(group_by) == {"alertname", "rule", "queue"}, r
