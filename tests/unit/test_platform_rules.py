"""The platforms' reply-time rules as windows (shared/METRICS.md, the platform-rule paragraph).

JD counts the buyer's first wait (first reply within 30 s) for sessions started 09:00-23:00 China
time; Pinduoduo/Taobao/Tmall count every wait for a human reply (within 180 s) started 08:00-23:00.
Each counted wait is met at the reply within the limit, missed at start + limit when no reply had
come by then (answered late, closed later, or still waiting now), or missed at the close when closed
unanswered before the limit; a `bot_resolved` close counts none. The numbers are hand-computed.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.core.buckets import FRT, REPLY, UNANSWERED_CLOSED, WAIT_CLOSED
from services.core.platform_rules import DEFAULT_RULES, PlatformRule, parse_rules
from services.core.scope import Scope
from services.scorer.inprocess import InProcessScorer

CHINA = timezone(timedelta(hours=8))


def at(hh: int, mm: int, ss: float = 0) -> int:
    return int(datetime(2026, 11, 11, hh, mm, tzinfo=CHINA).timestamp() * 1000 + ss * 1000)


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


def ev(cid: str, platform: str, name: str, ts: int, etype: str, **extra: Any) -> dict[str, Any]:
    return {"tenant": "t", "shop_id": f"s-{platform}", "platform": platform, "conversation_id": cid,
            "event_id": f"{cid}-{name}", "type": etype, "ts": ts, **extra}


def waiting(cid: str, platform: str, wrote: int) -> list[dict[str, Any]]:
    """A buyer who opened and wrote at `wrote`, with no reply (yet)."""
    return [ev(cid, platform, "o", wrote, "conversation.opened", queue="q"),
            ev(cid, platform, "c", wrote, "message", sender="customer")]


def reply(cid: str, platform: str, ts: int, name: str = "r") -> dict[str, Any]:
    return ev(cid, platform, name, ts, "message", sender="agent", agent_id="a")


def close(cid: str, platform: str, ts: int, reason: str) -> dict[str, Any]:
    return ev(cid, platform, "x", ts, "conversation.closed", reason=reason)


def rule_figures(events: list[dict[str, Any]], platform: str, now: int | None = None,
                 window: str = "1h") -> dict[str, Any]:
    """The rule's figures of one window at `now` (default: the last event's time)."""
    s = InProcessScorer(event_clock=False)
    s.feed(events)
    views = s.tick(now if now is not None else max(int(e["ts"]) for e in events))
    return dict(views[Scope("*", "*", platform, "q")]["windows"][window]["platform_rule"])


def counted(n: int, met: int) -> dict[str, Any]:
    return {"counted": n, "met": met, "met_rate": met / n if n else None}


def test_jd_counts_first_replies_within_30s() -> None:
    events = chat("j1", "jd", at(10, 0), [20, 200]) + chat("j2", "jd", at(10, 1), [45])
    assert rule_figures(events, "jd") == counted(2, 1)  # j1's slow second reply is not JD's rule


def test_jd_leaves_out_sessions_started_2300_to_0900() -> None:
    # JD's own 30 s rate counts sessions started 09:00-23:00 China time (before: counted all day).
    late = chat("j1", "jd", at(23, 30), [45])
    early = chat("j2", "jd", at(8, 59, 59), [5])
    inside = chat("j3", "jd", at(22, 59, 59), [45])
    assert rule_figures(late, "jd") == counted(0, 0)
    assert rule_figures(early, "jd", now=at(9, 30)) == counted(0, 0)
    assert rule_figures(inside, "jd") == counted(1, 0)


def test_pdd_counts_each_buyer_once_within_180s_in_counted_hours() -> None:
    # METRICS.md: the denominator is the buyers who needed a human reply; a buyer counts by the first wait.
    inside = chat("p1", "pdd", at(22, 50), [100, 200])  # first answered after 100 s: met (the second wait: not again)
    late = chat("p3", "pdd", at(22, 40), [200])  # first answered after 200 s: a miss
    outside = chat("p2", "pdd", at(23, 5), [10])  # a buyer writing at 23:05 is not counted
    assert rule_figures(inside + late + outside, "pdd") == counted(2, 1)


def test_every_wait_is_a_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_RULES", '{"pdd": {"first_reply_only": false}}')  # each wait a count
    inside = chat("p1", "pdd", at(22, 50), [100, 200])
    assert rule_figures(inside, "pdd") == counted(2, 1)


def test_platform_without_a_rule_counts_nothing() -> None:
    events = [*waiting("w1", "web", at(12, 0)), close("w1", "web", at(12, 5), "abandoned")]
    assert rule_figures(chat("w2", "web", at(12, 0), [10]) + events, "web") == counted(0, 0)


def test_an_abandoned_buyer_is_a_miss() -> None:
    jd = [*waiting("j1", "jd", at(10, 0)), close("j1", "jd", at(10, 0, 20), "abandoned")]
    assert rule_figures(jd, "jd") == counted(1, 0)  # gave up after 20 s, before the limit: a miss all the same
    pdd = [*waiting("p1", "pdd", at(10, 0)), close("p1", "pdd", at(10, 5), "timeout")]
    assert rule_figures(pdd, "pdd") == counted(1, 0)


def test_closed_unanswered_is_a_miss_and_bot_resolved_is_not_counted() -> None:
    by_agent = [*waiting("j1", "jd", at(10, 0)), close("j1", "jd", at(10, 0, 10), "resolved")]
    assert rule_figures(by_agent, "jd") == counted(1, 0)
    by_bot = [*waiting("j2", "jd", at(10, 0)), close("j2", "jd", at(10, 0, 10), "bot_resolved")]
    assert rule_figures(by_bot, "jd") == counted(0, 0)
    # Taobao: the buyer wrote again after an answer and the chat was closed without a reply: the buyer was
    # answered within the limit once, and counts once.
    again = [*chat("t1", "taobao", at(10, 0), [10]), ev("t1", "taobao", "c9", at(10, 1), "message", sender="customer"),
             close("t1", "taobao", at(10, 2), "resolved")]
    assert rule_figures(again, "taobao") == counted(1, 1)


def test_a_buyer_still_waiting_is_a_miss_from_the_moment_the_limit_passes() -> None:
    events = waiting("j1", "jd", at(10, 0))
    assert rule_figures(events, "jd", now=at(10, 0, 29)) == counted(0, 0)  # 29 s: no outcome yet
    assert rule_figures(events, "jd", now=at(10, 0, 30)) == counted(0, 0)  # a reply now would still be in time
    assert rule_figures(events, "jd", now=at(10, 0, 30.001)) == counted(1, 0)  # the limit passed at 30 s
    assert rule_figures(events, "jd", now=at(10, 0, 40)) == counted(1, 0)  # still waiting at 40 s: a miss
    # The miss belongs to 10:00:30: at 10:01:36 it has left the 1m window (and its bucket), not the 5m one.
    assert rule_figures(events, "jd", now=at(10, 1, 36), window="1m") == counted(0, 0)
    assert rule_figures(events, "jd", now=at(10, 1, 36), window="5m") == counted(1, 0)


def test_a_buyer_waiting_again_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [*chat("t1", "taobao", at(10, 0), [10]), ev("t1", "taobao", "c9", at(10, 1), "message", sender="customer")]
    assert rule_figures(events, "taobao", now=at(10, 3, 59)) == counted(1, 1)
    assert rule_figures(events, "taobao", now=at(10, 4, 1)) == counted(1, 1)  # one buyer, answered in time once
    monkeypatch.setenv("PLATFORM_RULES", '{"taobao": {"first_reply_only": false}}')  # every wait: counted again
    assert rule_figures(events, "taobao", now=at(10, 4, 1)) == counted(2, 1)
    monkeypatch.delenv("PLATFORM_RULES")
    # JD counts only the first wait: the same buyer waiting again is not JD's rule.
    jd = [*chat("j1", "jd", at(10, 0), [10]), ev("j1", "jd", "c9", at(10, 1), "message", sender="customer")]
    assert rule_figures(jd, "jd", now=at(10, 30)) == counted(1, 1)


def test_a_late_reply_is_a_miss_where_the_limit_passed() -> None:
    events = [*waiting("j1", "jd", at(10, 0)), reply("j1", "jd", at(10, 1, 10))]
    assert rule_figures(events, "jd", now=at(10, 2), window="5m") == counted(1, 0)
    # The reply at 10:01:10 is in the 1m window at 10:02; the miss, at 10:00:30, is not.
    assert rule_figures(events, "jd", now=at(10, 2), window="1m") == counted(0, 0)


def test_a_reply_within_the_limit_delivered_after_the_miss_was_shown_flips_it_to_met() -> None:
    s = InProcessScorer(event_clock=False)
    s.feed(waiting("j1", "jd", at(10, 0)))
    before = s.tick(at(10, 1))[Scope("*", "*", "jd", "q")]["windows"]["5m"]["platform_rule"]
    assert before == counted(1, 0)  # no reply known at 10:01: a miss since 10:00:30
    s.feed([reply("j1", "jd", at(10, 0, 20))])  # the webhook retried: it had answered at 20 s
    after = s.tick(at(10, 1, 1))[Scope("*", "*", "jd", "q")]["windows"]["5m"]["platform_rule"]
    assert after == counted(1, 1)


def test_order_of_delivery_never_changes_the_rule() -> None:
    floor = [
        *waiting("j1", "jd", at(10, 0)), reply("j1", "jd", at(10, 0, 20)),
        *waiting("j2", "jd", at(10, 0, 5)), reply("j2", "jd", at(10, 1)),
        *waiting("j3", "jd", at(10, 0, 7)), close("j3", "jd", at(10, 0, 50), "abandoned"),
        *waiting("j4", "jd", at(10, 1)),
        *waiting("j5", "jd", at(10, 1, 2)), close("j5", "jd", at(10, 1, 3), "bot_resolved"),
    ]
    now = at(10, 2)
    want = counted(4, 1)  # j1 met; j2 late, j3 abandoned after the limit, j4 still waiting: misses
    assert rule_figures(floor, "jd", now=now, window="5m") == want
    for order in itertools.islice(itertools.permutations(range(len(floor))), 0, 5000, 97):
        assert rule_figures([floor[i] for i in order], "jd", now=now, window="5m") == want


def test_counted_hours_are_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    late = chat("j1", "jd", at(23, 30), [45])
    assert rule_figures(late, "jd") == counted(0, 0)
    monkeypatch.setenv("PLATFORM_RULES", '{"jd": {"hours": [0, 24]}}')  # JD's rule counted all day
    assert rule_figures(late, "jd") == counted(1, 0)
    monkeypatch.setenv("PLATFORM_RULES", '{"pdd": {"limit_s": 60, "hours": [22, 6]}}')  # across midnight
    assert rule_figures(chat("p1", "pdd", at(23, 30), [90]), "pdd") == counted(1, 0)
    assert rule_figures(chat("p2", "pdd", at(12, 0), [90]), "pdd") == counted(0, 0)


def test_rules_are_configuration() -> None:
    rules = parse_rules('{"douyin": {"limit_s": 60, "hours": [9, 21]}, "jd": null, "pdd": {"limit_s": 120}}')
    assert rules["douyin"] == PlatformRule(60, hours=(9, 21)) and "jd" not in rules
    assert rules["pdd"] == PlatformRule(120, first_reply_only=True, hours=(8, 23))  # changes only what it names
    assert rules["pdd"].counts(at(8, 0)) and not rules["pdd"].counts(at(7, 59))
    assert DEFAULT_RULES["jd"] == PlatformRule(30, first_reply_only=True, hours=(9, 23))
    for bad in ('{"douyin": {"hours": [8, 23]}}', '{"pdd": {"limit_s": 0}}', '{"pdd": {"hours": [8, 25]}}',
                '{"pdd": 3}', "[]"):
        with pytest.raises(SystemExit):
            parse_rules(bad)


def test_outcome_of_each_wait() -> None:
    jd, pdd = DEFAULT_RULES["jd"], DEFAULT_RULES["pdd"]
    t = at(10, 0, 40)
    assert jd.outcome(FRT, t, 30_000) == (t, True)
    assert jd.outcome(FRT, t, 30_001) == (t, False)  # missed the moment the limit passed (1 ms after it)
    assert jd.outcome(REPLY, t, 1) is None and jd.outcome(WAIT_CLOSED, t, 1) is None
    assert jd.outcome(UNANSWERED_CLOSED, t, 5_000) == (t, False)
    assert jd.outcome(UNANSWERED_CLOSED, t, 40_000) == (t - 10_000 + 1, False)
    assert pdd.outcome(FRT, t, 180_000) == (t, True) and pdd.outcome(REPLY, t, 1) is None
    every = PlatformRule(180, first_reply_only=False, hours=(8, 23))  # counting every wait, by configuration
    assert every.outcome(REPLY, t, 180_000) == (t, True) and every.outcome(FRT, t, 1) is None
    assert every.outcome(WAIT_CLOSED, t, 200_000) == (t - 20_000 + 1, False)
