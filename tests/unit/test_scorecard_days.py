"""The scorecard's day state through the real stages (dict tables) and the API, against cases worked by hand.

Local time is Asia/Shanghai (UTC+8, SCORECARD_TZ's default). Every expected figure below is worked out
from shared/SCORECARD.md in the comments, not read from the code under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.days import AGENT_FIELDS, SHOP_FIELDS, days_of, days_to_json
from services.core.figures import QueueView
from services.core.scope import Scope
from services.core.wire import ENGINE_KEY_PREFIX
from services.scorer.inprocess import InProcessScorer

SH = ZoneInfo("Asia/Shanghai")
T = "acme"
Event = dict[str, Any]


def at(day: int, h: int, m: int = 0, s: float = 0, month: int = 3) -> int:
    """Epoch ms of 2026-<month>-<day> h:m:s in Shanghai."""
    whole = int(s)
    return int(datetime(2026, month, day, h, m, whole, int((s - whole) * 1e6), tzinfo=SH).timestamp() * 1000)


def day_start(day: int, month: int = 3) -> int:
    return at(day, 0, month=month)


class Floor:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def ev(self, shop: str, platform: str, cid: str, etype: str, ts: int, **extra: Any) -> None:
        self.events.append({"event_id": f"{cid}-{len(self.events):04d}", "type": etype, "ts": ts, "tenant": T,
                            "shop_id": shop, "platform": platform, "conversation_id": cid, "queue": "presales",
                            **extra})

    def chat(self, shop: str, platform: str, cid: str, start: int, frt_s: float, agent: str = "a1",
             close: str | None = None, csat: int | None = None, order: tuple[str, str] | None = None) -> None:
        """A buyer writes at `start`, `agent` answers frt_s later; then an order 60 s after the reply, a close
        120 s after, a rating 180 s after (each if given)."""
        reply = start + int(frt_s * 1000)
        self.ev(shop, platform, cid, "message", start, sender="customer")
        self.ev(shop, platform, cid, "message", reply, sender="agent", agent_id=agent)
        if order is not None:
            self.ev(shop, platform, cid, "order.placed", reply + 60_000, amount=order[0], currency=order[1])
        if close is not None:
            self.ev(shop, platform, cid, "conversation.closed", reply + 120_000, reason=close)
        if csat is not None:
            self.ev(shop, platform, cid, "csat.rated", reply + 180_000, score=csat)


def jd_and_taobao(f: Floor, day: int, agent: str = "a1") -> None:
    """Agent a1's day: 5 JD chats from 10:00, 6 Taobao chats from 11:00 (two minutes apart)."""
    # JD: first replies after 10, 20, 40, 50, 30 s (one reply each, so replies = first replies).
    jd = [(10, "resolved", 5, ("199.00", "CNY")), (20, "resolved", 3, None), (40, "timeout", None, None),
          (50, "resolved", None, None), (30, None, None, None)]
    for i, (frt, close, csat, order) in enumerate(jd):
        f.chat("jd1", "jd", f"{agent}-j{day}-{i}", at(day, 10, 2 * i), frt, agent, close, csat, order)
    # Taobao: first replies after 20 s five times and 200 s once; 4 resolved closes; 3 orders.
    tb = [(20, "resolved", ("88.50", "CNY")), (20, "resolved", ("10", "USD")), (20, "resolved", ("100", "CNY")),
          (20, "resolved", None), (20, None, None), (200, None, None)]
    for i, (frt, close, order) in enumerate(tb):
        f.chat("tb1", "taobao", f"{agent}-t{day}-{i}", at(day, 11, 2 * i), frt, agent, close, None, order)


def scorer_with(events: Iterable[Event], tick_at: int, **kw: Any) -> InProcessScorer:
    """The stages fed the events in time order (an event over an hour older than the newest is too old for any
    figure, the day's too: METRICS.md)."""
    s = InProcessScorer(**kw)
    s.feed(sorted(events, key=lambda e: e["ts"]))
    s.tick(tick_at)
    return s


def agent_day(s: InProcessScorer, shop: str, platform: str, agent: str, day: int) -> dict[str, int]:
    return dict(s.day_records[(Scope(T, shop, platform, "@agent:" + agent), day_start(day))]["sums"])


def test_agent_day_sums_by_hand() -> None:
    f = Floor()
    jd_and_taobao(f, 10)
    s = scorer_with(f.events, 0)
    assert agent_day(s, "jd1", "jd", "a1", 10) == {
        "frt_ms": 150_000, "frt_n": 5,  # 10 + 20 + 40 + 50 + 30 s
        "reply_ms": 150_000, "reply_n": 5,
        "rule_counted": 5, "rule_met": 3,  # JD 30 s: 10, 20 and 30 s met (at the limit is within it)
        "csat_n": 2, "csat_satisfied": 1,  # ratings 5 and 3
        "closed": 4, "closed_resolved": 3,  # resolved, resolved, timeout, resolved
        "chats_handled": 5, "converted": 1,
        "gmv:CNY": 1_990_000,  # 199.00 in units of 1/10000
    }
    assert agent_day(s, "tb1", "taobao", "a1", 10) == {
        "frt_ms": 300_000, "frt_n": 6, "reply_ms": 300_000, "reply_n": 6,
        "rule_counted": 6, "rule_met": 5,  # Taobao 3 min: the 200 s reply misses
        "closed": 4, "closed_resolved": 4, "chats_handled": 6, "converted": 3,
        "gmv:CNY": 1_885_000, "gmv:USD": 100_000,  # 88.50 + 100 CNY; 10 USD
    }
    # The shop's hour at 10:00: 5 buyers arrived, JD's rule counted 5 and met 3; replies 150 s in all.
    jd_hour = s.day_records[(Scope(T, "jd1", "jd", "@shop:jd1"), at(10, 10))]["sums"]
    assert jd_hour == {"arrivals": 5, "rule_counted": 5, "rule_met": 3, "reply_ms": 150_000, "reply_n": 5}


def test_one_worker_equals_two_and_a_rebuild() -> None:
    """Partitions split over workers, or rebuilt from the tables after a restart, add to the same day state."""
    f = Floor()
    jd_and_taobao(f, 10)
    jd_and_taobao(f, 10, agent="a2")
    one = scorer_with(f.events, 0, event_partitions=1)
    six = scorer_with(f.events, 0, event_partitions=6)
    assert one.day_records == six.day_records and one.day_records
    # A restart: stage 1 and stage 2 rebuilt from their tables, everything re-sent whole, nothing counted twice.
    six.conversations.revoke(set(range(6)))
    six.queues.revoke()
    six.conversations.rebuild(set(range(6)))
    six.queues.rebuild(set(range(3)))
    six.tick(0)
    assert {k: v["sums"] for k, v in six.day_records.items()} == {k: v["sums"] for k, v in one.day_records.items()}
    # Replayed events (at-least-once after a crash) change nothing.
    six.feed(f.events)
    six.tick(0)
    assert {k: v["sums"] for k, v in six.day_records.items()} == {k: v["sums"] for k, v in one.day_records.items()}


def test_day_rolls_over_at_local_midnight() -> None:
    f = Floor()
    # Waits from 23:59:40 and 23:59:50 local on the 10th; answered 10 s later: the first at 23:59:50 (day 10),
    # the second at 00:00:00.000 (day 11 starts at midnight: the reply is the 11th's).
    f.chat("jd1", "jd", "late-1", at(10, 23, 59, 40), 10)
    f.chat("jd1", "jd", "late-2", at(10, 23, 59, 50), 10)
    f.chat("jd1", "jd", "next-1", at(11, 0, 0, 5), 10)
    s = scorer_with(f.events, 0)
    d10, d11 = agent_day(s, "jd1", "jd", "a1", 10), agent_day(s, "jd1", "jd", "a1", 11)
    assert (d10["frt_n"], d10["chats_handled"]) == (1, 1)
    assert (d11["frt_n"], d11["chats_handled"]) == (2, 2)
    # JD counts waits started 09:00-23:00 only: none of these is counted.
    assert "rule_counted" not in d10 and "rule_counted" not in d11
    # The shop's hours: 23:00 on the 10th holds 2 arrivals, 00:00 on the 11th one.
    assert s.day_records[(Scope(T, "jd1", "jd", "@shop:jd1"), at(10, 23))]["sums"]["arrivals"] == 2
    assert s.day_records[(Scope(T, "jd1", "jd", "@shop:jd1"), at(11, 0))]["sums"]["arrivals"] == 1


# --- through the API ----------------------------------------------------------------------------------------

def store_of(s: InProcessScorer, views: dict[Scope, QueueView]) -> ViewStore:
    store = ViewStore("unused:9092", "unused")
    store.views.update(views)
    store.days.update(s.day_records)
    store.caught_up.set()
    return store


@pytest.fixture
def floor_day() -> tuple[InProcessScorer, dict[Scope, QueueView]]:
    f = Floor()
    jd_and_taobao(f, 10)
    f.ev("jd1", "jd", "clock", "message", at(10, 11, 30), sender="customer")  # the scorer's now: 11:30
    s = InProcessScorer()
    s.feed(sorted(f.events, key=lambda e: e["ts"]))
    return s, s.tick(0)


async def get(store: ViewStore, path: str) -> httpx.Response:
    app = create_app(ApiSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        return await c.get(path)


async def test_scorecard_today_by_hand(floor_day: Any) -> None:
    s, views = floor_day
    r = await get(store_of(s, views), "/v1/scorecard?period=today&agent_id=a1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == "today" and body["as_of"].startswith("2026-03-10T03:30:00")  # 11:30 local
    rows = {a["platform"]: a for a in body["agents"]}
    jd, tb = rows["jd"], rows["taobao"]
    k = jd["kpis"]
    # JD: FRT mean 150/5 = 30 s: 100 x (30 - 60) / (15 - 60) = 66.67 points; reply mean 30 s = target: 100;
    # rule 3/5 = 0.6: 100 x (0.6 - 0.5) / 0.3 = 33.33; CSAT 1/2 = 0.5 under the 0.6 floor: 0;
    # resolution 3/4 = 0.75: 50; conversion 1/5 = 0.2: 100 x 0.1 / 0.3 = 33.33.
    assert k["frt_mean_s"]["value"] == 30 and k["frt_mean_s"]["points"] == pytest.approx(200 / 3)
    assert k["reply_mean_s"]["points"] == 100
    assert k["rule_met_rate"]["value"] == 0.6 and k["rule_met_rate"]["points"] == pytest.approx(100 / 3)
    assert k["csat_satisfied_share"]["points"] == 0
    assert k["resolution_rate"]["points"] == pytest.approx(50)
    assert k["conversion_rate"]["value"] == 0.2 and k["conversion_rate"]["points"] == pytest.approx(100 / 3)
    assert (k["rule_met_rate"]["weight"], k["rule_met_rate"]["target"], k["rule_met_rate"]["floor"]) == (30, 0.8, 0.5)
    # JD weights 15/20/30/20/10/5: (15 x 66.67 + 20 x 100 + 30 x 33.33 + 0 + 10 x 50 + 5 x 33.33) / 100
    # = (1000 + 2000 + 1000 + 500 + 166.67) / 100 = 46.67: D.
    assert jd["score"] == pytest.approx(140 / 3) and jd["grade"] == "D"
    assert jd["chats_handled"] == 5 and jd["gmv"] == {"CNY": "199"}
    # Taobao: FRT and reply mean 300/6 = 50 s: FRT 100 x (50 - 60) / (15 - 60) = 22.22, reply
    # 100 x (50 - 120) / (30 - 120) = 77.78; rule 5/6 >= 0.8: 100; no rating: no CSAT (its weight 15 drops out);
    # resolution 4/4: 100; conversion 3/6 = 0.5 >= 0.4: 100. Weights with data 15+15+15+10+30 = 85 (>= 50):
    # (15 x 22.22 + 15 x 77.78 + 15 x 100 + 10 x 100 + 30 x 100) / 85 = 7000 / 85 = 82.35: B.
    assert tb["kpis"]["csat_satisfied_share"]["value"] is None and tb["kpis"]["csat_satisfied_share"]["points"] is None
    assert tb["score"] == pytest.approx(1400 / 17) and tb["grade"] == "B"
    assert tb["gmv"] == {"CNY": "188.5", "USD": "10"}
    # Overall, by chats: (5 x 46.67 + 6 x 82.35) / 11 = 66.13: C. Today's grade C: no coach, no warning.
    (overall,) = body["overall"]
    assert overall["score"] == pytest.approx((5 * 140 / 3 + 6 * 1400 / 17) / 11) and overall["grade"] == "C"
    assert overall["flags"] == [] and jd["flags"] == []


async def test_scorecard_1h_and_month_and_filters(floor_day: Any) -> None:
    s, views = floor_day
    store = store_of(s, views)
    month = (await get(store, "/v1/scorecard?period=month&platform=jd")).json()
    assert [a["platform"] for a in month["agents"]] == ["jd"]
    assert month["agents"][0]["score"] == pytest.approx(140 / 3)  # the month is that one day
    # The rolling hour at 11:30 holds the Taobao chats (11:00-11:16) and none of JD's replies (10:00-10:09):
    # the same Taobao figures as the day, so the same 82.35 (the window carries no GMV).
    hour = (await get(store, "/v1/scorecard?period=1h&platform=taobao")).json()
    (tb,) = hour["agents"]
    assert tb["score"] == pytest.approx(1400 / 17) and tb["chats_handled"] == 6 and tb["gmv"] == {}
    nobody = (await get(store, "/v1/scorecard?period=today&shop_id=other")).json()
    assert nobody["agents"] == [] and nobody["overall"] == []


@pytest.mark.parametrize("query", ["period=week", "", "period=today&shop_id=" + "x" * 200, "period=1h&agent_id="
                                   + "y" * 129, "period=month&platform=" + "p" * 300])
async def test_bad_parameters_are_422(query: str) -> None:
    r = await get(store_of(InProcessScorer(), {}), "/v1/scorecard?" + query)
    assert r.status_code == 422


async def test_standing_bad_parameters_are_422() -> None:
    r = await get(store_of(InProcessScorer(), {}), "/v1/standing?shop_id=" + "x" * 200)
    assert r.status_code == 422


def test_month_with_three_d_days_is_warned() -> None:
    """Agent d1 has a D day on the 2nd, 3rd and 4th: a warning; on the 4th (today) a D: coach too."""
    f = Floor()
    for day in (2, 3, 4):
        # Five JD chats answered after 60 s each: FRT 60 s (0 points), reply 60 s (100 x (60 - 120) / (30 - 120)
        # = 66.67), rule 0/5 met (0), no rating, no close, no order (conversion 0/5 = 0 under the floor: 0).
        # Weights with data 15 + 20 + 30 + 5 = 70: (0 + 20 x 66.67 + 0 + 0) / 70 = 19.05: D.
        for i in range(5):
            f.chat("jd1", "jd", f"d1-{day}-{i}", at(day, 10, 2 * i), 60, agent="d1")
    jd_and_taobao(f, 4)  # a1 on the 4th: C overall (as above)
    s = InProcessScorer()
    s.feed(sorted(f.events, key=lambda e: e["ts"]))
    views = s.tick(0)
    from services.core.scorecard import default_config
    from services.core.scorecard_report import AgentFilter, scorecard_report

    records = {k: v["sums"] for k, v in s.day_records.items()}
    now = at(4, 11, 30)
    report = scorecard_report(records, "today", now, "Asia/Shanghai", default_config(), AgentFilter())
    by_agent = {o["agent_id"]: o for o in report["overall"]}
    assert by_agent["d1"]["score"] == pytest.approx(20 * 200 / 3 / 70) and by_agent["d1"]["grade"] == "D"
    assert by_agent["d1"]["flags"] == ["coach", "warning"]
    assert by_agent["a1"]["flags"] == []
    # Two D days only (the 4th is not yet in the month): no warning on the 3rd.
    report3 = scorecard_report(records, "today", at(3, 23), "Asia/Shanghai", default_config(), AgentFilter())
    assert {o["agent_id"]: o["flags"] for o in report3["overall"]} == {"d1": ["coach"]}
    assert views  # the stages published views as well


# --- the platform standing and its budget ---------------------------------------------------------------------

def budget_floor() -> Floor:
    """JD shop jd1 (agent b1): yesterday (the 9th) 10 buyers 10:00-10:09 answered in 10 s; today from 10:00 two
    answered in 10 s, then four answered after 40 s (JD's 30 s missed)."""
    f = Floor()
    for i in range(10):
        f.chat("jd1", "jd", f"y-{i}", at(9, 10, i), 10, agent="b1")
    for i in range(2):
        f.chat("jd1", "jd", f"ok-{i}", at(10, 10, i), 10, agent="b1")
    for i in range(4):
        f.chat("jd1", "jd", f"late-{i}", at(10, 10, 10 + i), 40, agent="b1")
    return f


async def test_standing_by_hand() -> None:
    f = budget_floor()
    f.ev("other", "other", "clock", "message", at(10, 10, 30), sender="customer")  # the scorer's now: 10:30
    s = InProcessScorer()
    s.feed(sorted(f.events, key=lambda e: e["ts"]))
    views = s.tick(0)
    body = (await get(store_of(s, views), "/v1/standing?shop_id=jd1")).json()
    (jd,) = body["standings"]
    rate, mean = jd["rules"]
    # Today: counted 6, met 2. Projection: the rest of the day as yesterday had it (the only day with data):
    # the half of hour 10 still to come, 10 x 0.5 = 5 buyers, nothing later: 6 + 5 = 11 in the day.
    # Budget: floor(11 x (1 - 0.8)) = floor(2.2) = 2 misses; 4 already: 2 - 4 = -2 left, the day is lost.
    assert rate == {"rule": "first_reply_within_30s", "target": 0.8, "counted": 6, "met": 2,
                    "rate": pytest.approx(1 / 3), "misses_left": -2, "projected_counted": 11}
    # Average response: 2 x 10 s + 4 x 40 s = 180 s over 6 replies = 30 s (< 40 s). Replies projected the same
    # way: 6 + 5 = 11; the rest (5 replies) may average (40 x 11 - 180) / 5 = 52 s.
    assert mean["rule"] == "avg_response_s" and mean["target"] == 40
    assert (mean["counted"], mean["rate"], mean["projected_counted"]) == (6, 30, 11)
    assert mean["rest_mean_s"] == pytest.approx(52)


def alerts_of(s: InProcessScorer) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in s.alerts if r.value and not r.key.startswith(ENGINE_KEY_PREFIX.encode())]


def test_budget_runs_out_mid_day_and_pages_once() -> None:
    events = sorted(budget_floor().events, key=lambda e: e["ts"])
    late = sorted(e["ts"] for e in events if e["conversation_id"].startswith("late-") and e.get("sender") == "agent")
    s = InProcessScorer()
    s.feed([e for e in events if e["ts"] < late[1]])
    s.tick(0)
    # Up to 10:11:00 (late-1's buyer writes): counted 3 (two met, late-0 missed). 49/60 of hour 10 is to come:
    # yesterday's 10 x 49/60 = 8.17, rounded 8; projected 3 + 8 = 11, budget floor(11 x 0.2) = 2, 2 - 1 = 1 left:
    # half the budget, no alert.
    assert [a for a in alerts_of(s) if a["rule"] == "platform_budget"] == []
    s.feed([e for e in events if late[1] <= e["ts"] < late[2]])
    s.tick(0)
    # Up to 10:12:00: late-1 missed too, counted 4; 48/60 to come: 8; projected 12, budget floor(2.4) = 2,
    # 2 - 2 = 0 left: the budget is gone, critical, on the shop (queue "*").
    fired = [a for a in alerts_of(s) if a["rule"] == "platform_budget"]
    assert [(a["shop_id"], a["platform"], a["queue"], a["severity"], a["state"]) for a in fired] == [
        ("jd1", "jd", "*", "critical", "firing")]
    assert "budget is gone" in fired[0]["summary_en"] and fired[0]["value"] == 0
    # Two more misses and more ticks: the same episode, not a new page.
    s.feed([e for e in events if e["ts"] >= late[2]])
    s.tick(0)
    s.tick(1)
    assert len([a for a in alerts_of(s) if a["rule"] == "platform_budget"]) == 1


def clock_at(ts: int, tag: str) -> list[Event]:
    """Buyers of another shop writing at ts, in every partition: moves every partition's event time to ts."""
    f = Floor()
    for i in range(40):
        f.ev("other", "other", f"{tag}-{i}", "message", ts, sender="customer")
    return f.events


def test_settling_expired_tombstones_is_crash_safe() -> None:
    """A closed conversation leaves the table in two steps: a tombstone (with its day contributions), then, when
    the tombstone expires, its contributions move to the ledger, written before the tombstone is deleted. A crash
    that loses the delete must not count the conversation twice after a rebuild."""
    f = Floor()
    jd_and_taobao(f, 10)
    s = InProcessScorer(retention_ms=60_000)
    s.conversations.tombstone_ms = 3 * 3_600_000

    def agent_days() -> dict[Any, dict[str, int]]:
        return {k: v["sums"] for k, v in s.day_records.items() if "@agent:" in k[0].queue}

    s.feed(sorted(f.events, key=lambda e: e["ts"]))
    s.tick(0)
    expected = agent_days()
    s.feed(clock_at(at(10, 11, 30), "clock-1"))  # evicts the closed ones
    tombstones = {k: v for k, v in s.conv_table.items() if b'"gone"' in v}
    assert len(tombstones) == 8  # the 8 closed chats (4 JD, 4 Taobao)
    s.feed(clock_at(at(10, 14, 35), "clock-2"))  # the tombstones expire
    s.tick(0)
    assert not any(k in s.conv_table for k in tombstones)
    assert any(k.startswith(b"\x00day:") for k in s.conv_table)
    assert agent_days() == expected

    def rebuilt(table: dict[bytes, bytes]) -> dict[Any, dict[str, int]]:
        s.conv_table.clear()
        s.conv_table.update(table)
        s.conversations.revoke(set(range(s.event_partitions)))
        s.conversations.rebuild(set(range(s.event_partitions)))
        s.tick(0)
        return agent_days()

    settled = dict(s.conv_table)
    assert rebuilt(settled) == expected
    assert rebuilt({**settled, **tombstones}) == expected  # the deletes were lost: the ledger says it settled them
    # ... and when those tombstones expire again, nothing is settled twice.
    s.feed(clock_at(at(10, 14, 40), "clock-3"))
    s.tick(0)
    assert not any(k in s.conv_table for k in tombstones)
    assert agent_days() == expected
    assert rebuilt(dict(s.conv_table)) == expected


def test_platform_budget_levels() -> None:
    from services.core.alert_config import AlertRulesError, Thresholds, parse_rules
    from services.core.alert_judging import judge
    from services.core.alert_signals import Signals

    th = Thresholds()  # warning under 20% of the day's budget left, critical with none left

    def verdict(left: int | None, total: int | None) -> tuple[str, str | None]:
        j = judge("platform_budget", Signals(budget_misses_left=left, budget_total=total), th)
        return j.kind, j.level

    assert verdict(None, None) == ("gap", None)  # no standing for the shop: no reading
    assert verdict(2, 10) == ("clear", None)  # 20% left: not fewer than 20%
    assert verdict(1, 10) == ("fire", "warning")  # 10% left
    assert verdict(0, 10) == ("fire", "critical")  # gone
    assert verdict(-3, 10) == ("fire", "critical")  # the day is lost
    assert verdict(0, 0) == ("clear", None)  # nobody counted or projected yet: nothing to lose
    with pytest.raises(AlertRulesError, match=r"platform_budget\.warning_share"):
        parse_rules({"default": {"platform_budget": {"warning_share": 0}}})


def test_bad_scorecard_settings_refuse_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SCORECARD_TZ", "Mars/Olympus")
    with pytest.raises(SystemExit, match="SCORECARD_TZ"):
        ApiSettings()
    monkeypatch.delenv("SCORECARD_TZ")
    bad = tmp_path / "scorecard.toml"
    bad.write_text("min_chats = 5\n[kpis.frt_mean_s]\ntarget = 15\nfloor = 15\n")
    monkeypatch.setenv("SCORECARD_CONFIG", str(bad))
    with pytest.raises(SystemExit, match=r"line 4"):
        ApiSettings()


def test_prometheus_series() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from services.core.scorecard import default_config
    from services.scorer.metrics import ScorecardCollector, SignalsCollector

    f = budget_floor()
    jd_and_taobao(f, 10)
    f.ev("other", "other", "clock", "message", at(10, 11, 30), sender="customer")
    s = InProcessScorer()
    s.feed(sorted(f.events, key=lambda e: e["ts"]))
    s.tick(0)
    registry = CollectorRegistry()
    registry.register(ScorecardCollector(lambda: list(s.queues.today_scores(default_config()))))
    registry.register(SignalsCollector(lambda: list(s.queues.latest_signals.items())))
    samples = {(m.name, tuple(sorted(m.labels.items()))): m.value
               for fam in text_string_to_metric_families(generate_latest(registry).decode()) for m in fam.samples}
    a1_jd = (("agent", "a1"), ("platform", "jd"), ("shop", "jd1"), ("tenant", T))
    # a1 on JD today: the hand-worked 46.67 (test_scorecard_today_by_hand) over 5 chats ...
    assert samples[("floorwatch_agent_score", a1_jd)] == pytest.approx(140 / 3)
    assert samples[("floorwatch_agent_chats_handled_today", a1_jd)] == 5
    # ... and one series per agent and shop: a1 on jd1 and tb1, b1 on jd1 (6 chats today).
    assert {k[1]: v for k, v in samples.items() if k[0] == "floorwatch_agent_chats_handled_today"} == {
        a1_jd: 5, (("agent", "a1"), ("platform", "taobao"), ("shop", "tb1"), ("tenant", T)): 6,
        (("agent", "b1"), ("platform", "jd"), ("shop", "jd1"), ("tenant", T)): 6}
    shop = (("platform", "jd"), ("queue", "*"), ("shop", "jd1"), ("tenant", T))
    assert ("floorwatch_platform_rule_misses_left", shop) in samples


async def test_scorecard_page_is_served_and_reads_the_endpoints() -> None:
    r = await get(store_of(InProcessScorer(), {}), "/scorecard")
    assert r.status_code == 200 and "scorecard.js?v=" in r.text and "{{version}}" not in r.text
    js = await get(store_of(InProcessScorer(), {}), "/wallboard/scorecard.js")
    assert js.status_code == 200 and "/v1/scorecard?period=" in js.text and "/v1/standing" in js.text


@pytest.mark.parametrize("partitions", [1, 6])
def test_day_state_equals_the_reference_model(partitions: int) -> None:
    """A simulated floor (every platform, transfers, ratings, orders), delivered shuffled and with duplicates, through
    1 or 6 partitions: the day records equal tests/reference.py's own day sums (written without production code)."""
    import random

    from services.simulator.model import FloorModel, SimConfig
    from tests.reference import reference_day_sums

    start = at(10, 23, 40)  # across local midnight: two days and three hours
    events = [dict(e) for e in FloorModel(SimConfig(start_ms=start, seed=5, run_id="days")).events_until(
        start + 40 * 60_000)]
    rnd = random.Random(partitions)
    delivered = events + rnd.sample(events, len(events) // 10)  # at least once: a tenth again
    rnd.shuffle(delivered)  # any order (all within the horizon)
    s = InProcessScorer(event_partitions=partitions)
    s.feed(delivered)  # shuffled, not sorted: 40 minutes, all within the horizon
    s.tick(0)
    got = {(*scope, start): record["sums"] for (scope, start), record in s.day_records.items()}
    want = reference_day_sums(events)
    assert {k[4] for k in want if k[3].startswith("@agent:")} == {day_start(10), day_start(11)}
    assert any(k.startswith("gmv:") for v in want.values() for k in v) and any("csat_n" in v for v in want.values())
    assert got == want


async def test_standing_without_history_projects_the_last_hour_into_counted_hours_only(floor_day: Any) -> None:
    s, views = floor_day
    body = (await get(store_of(s, views), "/v1/standing?platform=taobao")).json()
    ((tb,),) = [st["rules"] for st in body["standings"]]
    # Taobao shop tb1 at 11:30, no earlier day: counted 6 (11:00-11:10), met 5. The last hour: half of hour 10
    # (nothing) and hour 11 so far (6) = 6 buyers an hour, for the half of hour 11 to come and hours 12-22
    # (Taobao counts waits started 08:00-23:00): 6 x 11.5 = 69; the day 6 + 69 = 75; floor(75 x 0.2) = 15
    # misses allowed, 1 made: 14 left.
    assert (tb["counted"], tb["met"], tb["projected_counted"], tb["misses_left"]) == (6, 5, 75, 14)


_SUM = st.integers(min_value=-3, max_value=10**9)


@given(st.dictionaries(
    st.tuples(st.sampled_from(["@agent:a1", "@agent:b", "@shop:s1"]), st.integers(0, 2**41)),
    st.dictionaries(st.sampled_from([*AGENT_FIELDS, *SHOP_FIELDS, "gmv:CNY", "gmv:USD"]), _SUM),
))
def test_a_conversations_day_contributions_survive_its_record(days: dict[tuple[str, int], dict[str, int]]) -> None:
    """What the record (or the tombstone) keeps reads back as the same non-zero sums, whatever the fields."""
    kept = {k: Counter(v) for k, v in days.items()}
    want = {k: {f: n for f, n in v.items() if n} for k, v in kept.items()}
    assert {k: dict(v) for k, v in days_of(orjson.loads(orjson.dumps(days_to_json(kept)))).items()} == \
        {k: v for k, v in want.items() if v}


def test_records_written_with_named_fields_still_read() -> None:
    """Records already in a changelog (named fields, before counts were positional) read as before."""
    old = [["@agent:a05", 1796054400000, {"reply_ms": 15359, "reply_n": 4, "closed": 1, "gmv:CNY": 12000}],
           ["@shop:acme-jd", 1796083200000, {"arrivals": 1}]]
    assert days_of(old) == {
        ("@agent:a05", 1796054400000): Counter({"reply_ms": 15359, "reply_n": 4, "closed": 1, "gmv:CNY": 12000}),
        ("@shop:acme-jd", 1796083200000): Counter({"arrivals": 1}),
    }


def test_positional_counts_are_smaller() -> None:
    """The reason for the format: one agent-day of a closed chat, as a tombstone keeps it."""
    sums = Counter({"frt_ms": 3986, "frt_n": 1, "reply_ms": 15359, "reply_n": 4, "chats_handled": 1,
                    "closed": 1, "closed_resolved": 1})
    named = orjson.dumps([["@agent:acme-jd-a05", 1796054400000, dict(sums)]])
    positional = orjson.dumps(days_to_json({("@agent:acme-jd-a05", 1796054400000): sums}))
    assert len(positional) < len(named) * 0.6, (positional, named)
