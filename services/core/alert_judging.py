"""Judging one alert rule on one reading: fire (at which level), hold (the hysteresis band), clear or
gap (`judge`), and the reading the scorer publishes with each view (`judged`). Time and episodes are
`alerts.AlertEngine`'s business.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

from .alert_config import VIEW_RULES, PeakLoad, PlatformBudget, Rule, Severity, Thresholds
from .alert_signals import Signals
from .figures import Judged, Level


class Judgement(NamedTuple):
    """`fire`: at a firing level; `hold`: between the clear and firing levels; `clear`: at the clear
    level; `gap`: no data. `value` and `threshold` are the comparison made; `reason` picks the text."""

    kind: Literal["fire", "hold", "clear", "gap"]
    level: Severity | None = None
    value: float | None = None
    threshold: float | None = None
    reason: str = ""


_GAP: Final = Judgement("gap")


def _judge_peak(s: Signals, p: PeakLoad) -> Judgement:
    surge = (
        s.arrivals_5m is not None
        and s.arrivals_5m >= p.surge_min_arrivals_5m
        and s.surge_ratio is not None
        and s.surge_ratio >= p.surge_ratio
    )
    if s.rho is not None:
        if s.rho >= p.rho_critical:
            return Judgement("fire", "critical", s.rho, p.rho_critical, "rho")
        if s.rho >= p.rho_warning:
            return Judgement("fire", "warning", s.rho, p.rho_warning, "rho")
    elif s.overload:
        return Judgement("fire", "critical", None, p.rho_critical, "overload")
    if surge:
        return Judgement("fire", "warning", s.surge_ratio, p.surge_ratio, "surge")
    if s.rho is not None:
        return Judgement("clear" if s.rho < p.clear_rho else "hold", None, s.rho, p.clear_rho, "rho")
    if s.load_erlangs == 0:
        return Judgement("clear", None, 0.0, p.clear_rho, "idle")
    return _GAP


def judge(rule: Rule, s: Signals, th: Thresholds) -> Judgement:
    """One rule's verdict on one reading (no timers: `AlertEngine` adds those)."""
    if rule == "peak_load":
        return _judge_peak(s, th.peak_load)
    if rule == "oldest_wait":
        o = th.oldest_wait
        if s.oldest_wait_s is None:
            return Judgement("clear", None, 0.0, o.warning_s, "nobody") if s.waiting == 0 else _GAP
        if s.oldest_wait_s >= o.critical_s:
            return Judgement("fire", "critical", s.oldest_wait_s, o.critical_s, "wait")
        if s.oldest_wait_s >= o.warning_s:
            return Judgement("fire", "warning", s.oldest_wait_s, o.warning_s, "wait")
        return Judgement("clear", None, s.oldest_wait_s, o.warning_s, "wait")
    if rule == "sla_breach":
        b = th.sla_breach
        if s.sl_5m_left is None:
            return _GAP
        if s.sl_5m_left >= b.min_conversations and s.sl_5m is not None:
            kind: Literal["fire", "clear"] = "fire" if s.sl_5m < b.target else "clear"
            return Judgement(kind, "warning" if kind == "fire" else None, s.sl_5m, b.target, "sl")
        # Too few to judge: a quiet floor with nobody unanswered misses nothing now.
        return Judgement("clear", None, s.sl_5m, b.target, "quiet") if s.unanswered == 0 else _GAP
    if rule == "platform_budget":
        return _judge_budget(s, th.platform_budget)
    if s.required_agents == 0:  # no load: no gap, whoever is on duty
        on_duty = None if s.agents_staffing is None else float(s.agents_staffing)
        return Judgement("clear", None, 0.0, on_duty, "staffing")
    if s.required_agents is None or s.agents_staffing is None:
        return _GAP
    short = s.required_agents > s.agents_staffing
    return Judgement(
        "fire" if short else "clear", "warning" if short else None,
        float(s.required_agents), float(s.agents_staffing), "staffing",
    )


def judged(s: Signals, th: Thresholds) -> Judged:
    """What the scorer publishes with each view (`judged`): the rules' inputs (`signals`), and per rule
    its level and the value it compared (`judge`, as the alert engine does, without its timers).

    A level is what a wallboard colours a figure by, so the board and the pages cannot disagree; None
    when the rule is off, has no data, or has too few conversations to judge (shown uncoloured). The
    value is a firing alert's `current_value`; None without a reading."""
    levels: dict[str, Level | None] = {}
    values: dict[str, float | None] = {}
    for rule in VIEW_RULES:
        j = judge(rule, s, th) if th.enabled(rule) else _GAP
        values[rule] = None if j.kind == "gap" else j.value
        if j.kind == "fire":
            levels[rule] = j.level
        else:
            levels[rule] = "ok" if j.kind in ("clear", "hold") and j.reason != "quiet" else None
    return {"signals": s.to_json(), "levels": levels, "values": values}


def _judge_budget(s: Signals, b: PlatformBudget) -> Judgement:
    """Gone (critical): no miss left. Low (warning): fewer than warning_share x the day's budget left.
    `value` is the misses left, `threshold` the level compared with."""
    left, total = s.budget_misses_left, s.budget_total
    if left is None or total is None:
        return _GAP
    if left <= 0 and (total > 0 or left < 0):
        return Judgement("fire", "critical", float(left), 0.0, "gone")
    line = b.warning_share * total
    if left < line:
        return Judgement("fire", "warning", float(left), line, "low")
    return Judgement("clear", None, float(left), line, "budget")
