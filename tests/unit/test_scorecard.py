"""The scorecard math of shared/SCORECARD.md against cases worked out by hand."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.scorecard import (
    AgentSums,
    KpiRule,
    default_config,
    flags_for,
    grade_of,
    misses_left,
    overall_score,
    points,
    projected_day_total,
    required_rest_mean,
    score_platform,
    summed,
)
from services.core.scorecard_config import ScorecardConfigError, parse_config

CONFIG = default_config()

# Agent a-1 on JD today: first replies after 10 s and 20 s; replies after 30, 60, 90 s; 3 buyers
# counted by JD's 30 s rule, 2 met; ratings 5 and 3; 4 closes, 3 resolved; 5 chats, 1 with an order.
JD_DAY = AgentSums(
    frt_ms=30_000, frt_n=2, reply_ms=180_000, reply_n=3, rule_counted=3, rule_met=2, csat_n=2,
    csat_satisfied=1, closed=4, closed_resolved=3, chats_handled=5, converted=1, gmv={"CNY": Decimal("199.00")},
)
# The same agent on Taobao: first replies after 30 s and 50 s (mean 40 s), nothing else timed or
# rated; 2 closes, both resolved; 6 chats, 3 with an order.
TAOBAO_DAY = AgentSums(frt_ms=80_000, frt_n=2, closed=2, closed_resolved=2, chats_handled=6, converted=3,
                       gmv={"CNY": Decimal("88.50"), "USD": Decimal("10")})


def test_points_are_linear_between_floor_and_target() -> None:
    lower = KpiRule(target=15, floor=60, weight=1)
    assert points(10, lower, "lower") == 100 and points(15, lower, "lower") == 100
    assert points(60, lower, "lower") == 0 and points(90, lower, "lower") == 0
    assert points(37.5, lower, "lower") == pytest.approx(50)
    higher = KpiRule(target=0.8, floor=0.5, weight=1)
    assert points(0.65, higher, "higher") == pytest.approx(50)
    assert points(0.9, higher, "higher") == 100 and points(0.4, higher, "higher") == 0


def test_jd_agent_by_hand() -> None:
    s = score_platform("jd", JD_DAY, CONFIG)
    k = s.kpis
    assert k["frt_mean_s"].value == 15 and k["frt_mean_s"].points == 100  # at target
    assert k["reply_mean_s"].value == 60 and k["reply_mean_s"].points == pytest.approx(100 * 60 / 90)  # 66.67
    assert k["rule_met_rate"].points == pytest.approx(100 * (2 / 3 - 0.5) / 0.3)  # 55.56
    assert k["csat_satisfied_share"].value == 0.5 and k["csat_satisfied_share"].points == 0  # under the floor
    assert k["resolution_rate"].points == pytest.approx(50)  # 0.75 halfway from 0.60 to 0.90
    assert k["conversion_rate"].points == pytest.approx(100 / 3)  # 0.2: a third of the way from 0.10 to 0.40
    # JD weights 15/20/30/20/10/5: (1500 + 1333.33 + 1666.67 + 0 + 500 + 166.67) / 100
    assert s.score == pytest.approx(51.6667, abs=1e-4)
    assert s.grade == "D"
    assert s.chats_handled == 5 and s.gmv == {"CNY": Decimal("199.00")}


def test_taobao_agent_weights_renormalised_over_kpis_with_data() -> None:
    s = score_platform("taobao", TAOBAO_DAY, CONFIG)
    assert s.kpis["reply_mean_s"].value is None and s.kpis["reply_mean_s"].points is None
    # With data: frt (15) at 40 s -> 44.44 points, resolution (10) 100, conversion (30) 100: 55 of 100 weight.
    assert s.score == pytest.approx((15 * 100 * 20 / 45 + 10 * 100 + 30 * 100) / 55)  # 84.85
    assert s.grade == "B"


def test_tmall_scores_with_taobao_weights() -> None:
    assert score_platform("tmall", TAOBAO_DAY, CONFIG).score == score_platform("taobao", TAOBAO_DAY, CONFIG).score


def test_overall_is_weighted_by_chats_per_platform() -> None:
    jd, tb = score_platform("jd", JD_DAY, CONFIG), score_platform("taobao", TAOBAO_DAY, CONFIG)
    assert jd.score is not None and tb.score is not None
    overall = overall_score([jd, tb])
    assert overall == pytest.approx((jd.score * 5 + tb.score * 6) / 11)  # 69.77
    assert grade_of(overall, CONFIG.grades) == "C"


def test_not_enough_data_is_null_never_zero() -> None:
    few = AgentSums(frt_ms=5_000, frt_n=1, chats_handled=4, converted=0, closed=1, closed_resolved=0)
    s = score_platform("jd", few, CONFIG)
    assert s.score is None and s.grade is None  # 4 chats < SCORECARD_MIN_CHATS (5)
    # Only resolution (10) and conversion (30) have data on Taobao: 40 < 50 of the weight.
    light = AgentSums(closed=5, closed_resolved=5, chats_handled=9, converted=9)
    assert score_platform("taobao", light, CONFIG).score is None
    assert overall_score([score_platform("taobao", light, CONFIG)]) is None


def test_sums_add_across_days() -> None:
    month = summed([JD_DAY, JD_DAY, AgentSums(gmv={"USD": Decimal("1.5")})])
    assert month.frt_n == 4 and month.chats_handled == 10
    assert month.gmv == {"CNY": Decimal("398.00"), "USD": Decimal("1.5")}
    assert score_platform("jd", month, CONFIG).score == score_platform("jd", JD_DAY, CONFIG).score


def test_flags() -> None:
    agents = ["a1", "a2", "a3", "a4", "a5"]
    month_scores = {"a1": 95.0, "a2": 91.0, "a3": 99.0, "a4": 93.0, "a5": None}
    month_chats = {"a1": 120, "a2": 60, "a3": 49, "a4": 50, "a5": 200}
    today = {"a1": "A", "a2": "D", "a3": None, "a4": "B", "a5": None}
    days: dict[str, list[str | None]] = {"a2": ["D", "C", "D", None, "D"], "a4": ["D", "D", "B"]}
    flags = flags_for(agents, month_scores, month_chats, today, days, CONFIG)
    # a3 has the best score but 49 chats; the stars are a1, a4, a2 (a5 has no score).
    assert flags["a1"] == ["service_star"] and flags["a4"] == ["service_star"]
    assert flags["a2"] == ["service_star", "coach", "warning"]  # three D days this month, D today
    assert flags["a3"] == [] and flags["a5"] == []


def test_misses_left_is_the_rate_budget() -> None:
    target = Fraction(8, 10)
    # 100 buyers projected today, 20 may be missed; 5 missed so far.
    assert misses_left(counted=40, met=35, projected_counted=100, target=target) == 15
    # 22 misses already: the day is lost by 2.
    assert misses_left(counted=60, met=38, projected_counted=100, target=target) == -2
    # Exactly at the line: 20 of 100 missed keeps 80%.
    assert misses_left(counted=100, met=80, projected_counted=100, target=target) == 0
    # A projection below what was already counted counts what was.
    assert misses_left(counted=50, met=50, projected_counted=10, target=target) == 10


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 2000), st.integers(1, 99))
def test_misses_left_keeps_the_rate_exactly(counted: int, met_raw: int, projected: int, pct: int) -> None:
    met = min(met_raw, counted)
    target = Fraction(pct, 100)
    left = misses_left(counted, met, projected, target)
    total = max(projected, counted)
    if total == 0:  # no buyer today: nothing to miss
        assert left == 0
        return
    if left >= 0:  # missing `left` more and answering the rest keeps the rate; one more breaks it
        assert Fraction(total - (counted - met) - left, total) >= target
        assert Fraction(total - (counted - met) - left - 1, total) < target


def test_required_rest_mean() -> None:
    # JD average under 40 s: 10 replies averaging 50 s so far, 30 projected: the other 20 must average 35 s.
    assert required_rest_mean(40, 500, 10, 30) == pytest.approx(35)
    assert required_rest_mean(40, 500, 10, 10) is None


def test_projection_from_history_and_from_last_hour() -> None:
    day = [0] * 8 + [10] * 15 + [0]  # 10 an hour 08:00-23:00
    # At 20:30: half of hour 20, hours 21 and 22 remain: 25 more.
    assert projected_day_total(100, 20, 0.5, [day, day], last_hour=99) == 125
    other = [0] * 8 + [20] * 15 + [0]
    assert projected_day_total(100, 20, 0.5, [day, other], last_hour=99) == 100 + round((25 + 50) / 2)
    # No history: the last hour's rate over the 3.5 hours left.
    assert projected_day_total(100, 20, 0.5, [], last_hour=12) == 142


def test_config_overrides_and_refuses_mistakes_whole() -> None:
    cfg = parse_config(
        "min_chats = 3\n"
        "[grades]\nA = 95\nB = 80\nC = 50\n"
        "[kpis.frt_mean_s]\ntarget = 20\n"
        "[platforms.jd.kpis.rule_met_rate]\nweight = 40\n"
    )
    assert cfg.min_chats == 3 and cfg.grades == (("A", 95.0), ("B", 80.0), ("C", 50.0))
    assert cfg.rules_for("jd")["frt_mean_s"].target == 20 and cfg.rules_for("pdd")["frt_mean_s"].target == 20
    assert cfg.rules_for("jd")["rule_met_rate"].weight == 40 and cfg.rules_for("pdd")["rule_met_rate"].weight == 30
    json_cfg = parse_config('{"platforms": {"douyin": {"kpis": {"conversion_rate": {"target": 0.3}}}}}')
    assert json_cfg.rules_for("douyin")["conversion_rate"].target == 0.3
    assert json_cfg.rules_for("web")["conversion_rate"].target == 0.4

    bad = "[grades]\nA = 90\n\n[kpis.frt_mean_s]\ntarget = 15\nflor = 60\n"
    with pytest.raises(ScorecardConfigError, match=r"line 6 .*flor.*unknown setting"):
        parse_config(bad)
    with pytest.raises(ScorecardConfigError, match=r"line 2 .*must be a number"):
        parse_config('[kpis.reply_mean_s]\ntarget = "fast"\n')
    with pytest.raises(ScorecardConfigError, match=r"line 3 .*target and floor must differ"):
        parse_config("[kpis.csat_satisfied_share]\ntarget = 0.5\nfloor = 0.5\n")
    with pytest.raises(ScorecardConfigError, match=r"best first"):
        parse_config("[grades]\nA = 60\nB = 75\n")
    with pytest.raises(ScorecardConfigError, match=r"not TOML.*line 1"):
        parse_config("[grades\n")
    with pytest.raises(ScorecardConfigError, match=r"line 2: not JSON"):
        parse_config('{"min_chats": 5,\n ]')
