"""The platforms' reply-time rules as windows: JD counts first replies within 30 s all day;
Pinduoduo/Taobao/Tmall count every human reply within 180 s for buyers who wrote 08:00-23:00 China time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.core.platform_rules import PlatformRule, parse_rules
from services.scorer.inprocess import InProcessScorer

CHINA = timezone(timedelta(hours=8))


def at(hh: int, mm: int, ss: int = 0) -> int:
    return int(datetime(2026, 11, 11, hh, mm, ss, tzinfo=CHINA).timestamp() * 1000)


def chat(cid: str, platform: str, wrote: int, replies_after_s: list[float]) -> list[dict[str, Any]]:
    base = {"tenant": "t", "shop_id": f"s-{platform}", "platform": platform, "conversation_id": cid}
    out = [{**base, "event_id": f"{cid}-o", "type": "conversation.opened", "ts": wrote, "queue": "q"}]
    t = wrote
    for i, after in enumerate(replies_after_s):
        out.append({**base, "event_id": f"{cid}-c{i}", "type": "message", "ts": t, "sender": "customer"})
        t += int(after * 1000)
        out.append({**base, "event_id": f"{cid}-a{i}", "type": "message", "ts": t, "sender": "agent", "agent_id": "a"})
        t += 1000
    return out


def rule_figures(events: list[dict[str, Any]], platform: str) -> dict[str, Any]:
    s = InProcessScorer()
    s.feed(events)
    now = max(int(e["ts"]) for e in events)
    return dict(s.tick(now)[("q", "*", "*", platform)]["windows"]["1h"]["platform_rule"])


def test_jd_counts_first_replies_within_30s_all_day() -> None:
    events = chat("j1", "jd", at(3, 0), [20, 200]) + chat("j2", "jd", at(3, 1), [45])
    assert rule_figures(events, "jd") == {"counted": 2, "met": 1, "met_rate": 0.5}


def test_pdd_counts_every_reply_within_180s_in_counted_hours() -> None:
    inside = chat("p1", "pdd", at(22, 50), [100, 200])  # both waits start before 23:00: counted
    outside = chat("p2", "pdd", at(23, 5), [10])  # a buyer writing at 23:05 is not counted
    assert rule_figures(inside + outside, "pdd") == {"counted": 2, "met": 1, "met_rate": 0.5}


def test_platform_without_a_rule_counts_nothing() -> None:
    assert rule_figures(chat("w1", "web", at(12, 0), [10]), "web") == {"counted": 0, "met": 0, "met_rate": None}


def test_rules_are_configuration() -> None:
    rules = parse_rules('{"douyin": {"limit_s": 60, "hours": [9, 21]}, "jd": null}')
    assert rules["douyin"] == PlatformRule(60, hours=(9, 21)) and "jd" not in rules
    assert rules["pdd"].counts(at(8, 0)) and not rules["pdd"].counts(at(7, 59))
    with pytest.raises(SystemExit):
        parse_rules('{"pdd": {"hours": [8, 23]}}')
