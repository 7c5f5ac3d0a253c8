"""Service-level thresholds X are configuration, per queue (METRICS.md, Alerts: "and so are the
service-level thresholds X, default 30 s and 180 s"): SL_THRESHOLDS_S, keyed by seconds in the views
and in the `threshold_s` label of Prometheus. Numbers hand-computed."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.alert_config import AlertRulesError, check_measured, load_rules, parse_rules
from services.core.config import SlThresholds, parse_sl_thresholds, sl_thresholds_for
from services.core.scope import queue_total
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import ViewsCollector

T = 1_800_000_000_000


def answered(cid: str, queue: str, frt_s: float) -> list[dict[str, Any]]:
    base = {"tenant": "t", "shop_id": "s", "platform": "web", "conversation_id": cid}
    return [
        {**base, "event_id": f"{cid}-o", "type": "conversation.opened", "ts": T, "queue": queue},
        {**base, "event_id": f"{cid}-c", "type": "message", "ts": T, "sender": "customer"},
        {**base, "event_id": f"{cid}-a", "type": "message", "ts": T + int(frt_s * 1000), "sender": "agent",
         "agent_id": "a"},
    ]


def floor() -> list[dict[str, Any]]:
    # FRTs 10, 20, 45, 100 s in each queue.
    return [e for q in ("vip", "presales") for i, s in enumerate((10, 20, 45, 100)) for e in answered(f"{q}{i}", q, s)]


def sl_of(views: dict[Any, Any], queue: str) -> dict[str, Any]:
    return dict(views[queue_total(queue)]["windows"]["5m"]["sl"])


def test_default_thresholds_are_30_and_180_s() -> None:
    s = InProcessScorer()
    s.feed(floor())
    views = s.tick(0)
    assert sl_of(views, "vip") == sl_of(views, "presales") == {"30": 0.5, "180": 1.0}


def test_thresholds_per_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_THRESHOLDS_S", '{"default": [30, 180], "vip": [15, 60]}')
    assert sl_thresholds_for("vip") == (15, 60) and sl_thresholds_for("presales") == (30, 180)
    s = InProcessScorer()
    s.feed(floor())
    views = s.tick(0)
    assert sl_of(views, "vip") == {"15": 0.25, "60": 0.75}
    assert sl_of(views, "presales") == {"30": 0.5, "180": 1.0}
    totals = [views[queue_total("vip")], views[queue_total("presales")]]
    series = {
        (sample.labels["queue"], sample.labels["threshold_s"]): sample.value
        for family in ViewsCollector(lambda: totals).collect()
        if family.name == "floorwatch_queue_service_level_ratio"
        for sample in family.samples if sample.labels["window"] == "5m"
    }
    assert series == {("vip", "15"): 0.25, ("vip", "60"): 0.75, ("presales", "30"): 0.5, ("presales", "180"): 1.0}
    text = ViewsCollector(lambda: totals[:1]).render().decode()
    assert 'floorwatch_queue_service_level_ratio{queue="vip",tenant="*",shop="*",platform="*",window="5m",' \
           'threshold_s="15"} 0.25' in text


def test_one_list_for_every_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_THRESHOLDS_S", "[180, 20]")
    s = InProcessScorer()
    s.feed(floor())
    assert sl_of(s.tick(0), "presales") == {"20": 0.5, "180": 1.0}


@pytest.mark.parametrize("raw", ["{", '"30"', "[]", "[0]", "[30.5]", '{"vip": 30}', "[true]", '{"default": []}'])
def test_bad_thresholds_are_refused(raw: str) -> None:
    with pytest.raises(SystemExit, match="SL_THRESHOLDS_S"):
        parse_sl_thresholds(raw)


def test_the_sla_breach_rule_judges_a_measured_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    vip_15 = {"queues": {"vip": {"sla_breach": {"threshold_s": 15}}}}
    with pytest.raises(AlertRulesError, match=r"queues.vip.sla_breach.threshold_s .* \[30, 180\] of queue 'vip'"):
        parse_rules(vip_15)  # vip measures 30 and 180 s unless configured
    monkeypatch.setenv("SL_THRESHOLDS_S", '{"vip": [15, 60]}')
    assert parse_rules(vip_15).thresholds_for("vip").sla_breach.threshold_s == 15
    with pytest.raises(AlertRulesError, match=r"default.sla_breach.threshold_s .* \[15, 60\] of queue 'vip'"):
        parse_rules({})  # the default rule (30 s) would judge vip on a figure vip does not have
    with pytest.raises(AlertRulesError, match="built-in alert rules"):
        load_rules()
    check_measured(parse_rules(vip_15), SlThresholds(default=(30, 180), queues={"vip": (15, 60)}))
