"""The scorecard and the platform standing read from the day records (shared/SCORECARD.md, API.md).

Pure: the API (GET /v1/scorecard, /v1/standing) and stage 2 (the `platform_budget` alert) call the same
functions on the same records, so a page and an alert cannot disagree. A day record is stage 2's sum of
one key of the day state (services.core.days): (tenant, shop, platform, who) and a period start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Literal

from .buckets import GMV_PREFIX, gmv_amount
from .days import AGENT_FIELDS, day_start, hour_start, local_hour, month_start, previous_day_start
from .figures import WindowFigures
from .platform_rules import PlatformRule
from .scope import AGENT_PREFIX, Scope, is_agent_scope
from .scorecard import (
    KPIS,
    AgentSums,
    Flag,
    PlatformScore,
    ScorecardConfig,
    flags_for,
    grade_of,
    misses_left,
    overall_score,
    projected_day_total,
    required_rest_mean,
    score_platform,
)
from .wire import SHOP_PREFIX

Period = Literal["1h", "today", "month"]
PERIODS: Final = ("1h", "today", "month")
DayRecords = Mapping[tuple[Scope, int], Mapping[str, int]]  # (scope, period start) -> sums
# The platform standing's rate target (SCORECARD.md: JD's 热情掌柜 line, PDD / Taobao 3-minute rate) and JD's
# average-response line.
RATE_TARGET: Final = Fraction(4, 5)
JD_MEAN_TARGET_S: Final = 40.0
MEAN_RULE: Final = "avg_response_s"
_HOUR_MS: Final = 3_600_000


def agent_sums(sums: Mapping[str, int]) -> AgentSums:
    """An agent-day record's sums (GMV from "gmv:<currency>" in 1/GMV_SCALE units)."""
    gmv = {k[len(GMV_PREFIX):]: gmv_amount(int(n)) for k, n in sums.items() if k.startswith(GMV_PREFIX)}
    return AgentSums(**{f: int(sums.get(f, 0)) for f in AGENT_FIELDS}, gmv=gmv)


def _times(mean_s: Any, n: int) -> int:
    return 0 if not n or mean_s is None else round(float(mean_s) * 1000 * n)


def _share(rate: Any, n: int) -> int:
    return 0 if not n or rate is None else round(float(rate) * n)


def window_sums(w: WindowFigures | Mapping[str, Any]) -> AgentSums:
    """An agent's rolling window (its view's "1h") as sums: counts are the view's, and each total is its
    mean or rate times its count (exact up to the float's rounding, then rounded to a whole ms or case).
    The windows carry no GMV: 1h shows none."""
    frt, reply, csat = w.get("frt") or {}, w.get("reply") or {}, w.get("csat") or {}
    rule = w.get("platform_rule") or {}
    closed, replied = int(w.get("closed") or 0), int(w.get("replied_convs") or 0)
    frt_n, reply_n, csat_n = int(frt.get("count") or 0), int(reply.get("count") or 0), int(csat.get("count") or 0)
    resolved = w.get("resolution_rate")
    bot = w.get("self_service_rate")
    human_resolved = None if resolved is None else float(resolved) - float(bot or 0)  # `resolved`, not the bot's
    return AgentSums(
        frt_ms=_times(frt.get("mean_s"), frt_n), frt_n=frt_n,
        reply_ms=_times(reply.get("mean_s"), reply_n), reply_n=reply_n,
        rule_counted=int(rule.get("counted") or 0), rule_met=int(rule.get("met") or 0),
        csat_n=csat_n, csat_satisfied=_share(csat.get("satisfied_share"), csat_n),
        closed=closed, closed_resolved=_share(human_resolved, closed),
        chats_handled=replied, converted=_share(w.get("conversion_rate"), replied),
    )


@dataclass(frozen=True, slots=True)
class AgentFilter:
    tenant: str | None = None
    shop_id: str | None = None
    platform: str | None = None
    agent_ids: frozenset[str] | None = None  # raw ids (the queue filter picks them); None: every agent

    def keeps(self, scope: Scope) -> bool:
        return (
            is_agent_scope(scope.queue)
            and self.tenant in (None, scope.tenant) and self.shop_id in (None, scope.shop_id)
            and self.platform in (None, scope.platform)
            and (self.agent_ids is None or scope.queue[len(AGENT_PREFIX):] in self.agent_ids)
        )


PerAgent = dict[str, dict[str, AgentSums]]  # agent id -> platform -> sums


def _add(out: PerAgent, agent: str, platform: str, sums: AgentSums) -> None:
    per = out.setdefault(agent, {})
    if platform in per:
        per[platform].add(sums)
    else:
        per[platform] = sums


def collect(records: DayRecords, lo: int, hi: int, keep: AgentFilter) -> PerAgent:
    """Per agent and platform, the sums of the days starting in [lo, hi) (shops of a platform added up)."""
    out: PerAgent = {}
    for (scope, start), sums in records.items():
        if lo <= start < hi and keep.keeps(scope):
            _add(out, scope.queue[len(AGENT_PREFIX):], scope.platform, agent_sums(sums))
    return out


def _overall(per_platform: Mapping[str, AgentSums], config: ScorecardConfig
             ) -> tuple[list[PlatformScore], float | None]:
    scores = [score_platform(p, sums, config) for p, sums in sorted(per_platform.items())]
    return scores, overall_score(scores)


def agent_flags(records: DayRecords, now: int, tz: str, keep: AgentFilter, config: ScorecardConfig,
                agents: Iterable[str]) -> dict[str, list[Flag]]:
    """SCORECARD.md's flags, from the month's days whatever the period shown: stars by month score (with
    enough chats), coaching by today's grade, a warning by the month's D days."""
    today, month = day_start(now, tz), month_start(now, tz)
    by_day: dict[int, PerAgent] = {}
    for (scope, start), sums in records.items():
        if month <= start <= today and keep.keeps(scope):
            _add(by_day.setdefault(start, {}), scope.queue[len(AGENT_PREFIX):], scope.platform, agent_sums(sums))
    month_sums: PerAgent = {}
    day_grades: dict[str, list[str | None]] = {}
    today_grades: dict[str, str | None] = {}
    for start, per_agent in sorted(by_day.items()):
        for agent, per_platform in per_agent.items():
            for platform, day_sums in per_platform.items():
                copy = AgentSums()
                copy.add(day_sums)
                _add(month_sums, agent, platform, copy)
            grade = grade_of(_overall(per_platform, config)[1], config.grades)
            day_grades.setdefault(agent, []).append(grade)
            if start == today:
                today_grades[agent] = grade
    month_scores = {a: _overall(per, config)[1] for a, per in month_sums.items()}
    month_chats = {a: sum(s.chats_handled for s in per.values()) for a, per in month_sums.items()}
    return flags_for(sorted(set(agents) | set(month_sums)), month_scores, month_chats, today_grades, day_grades,
                     config)


def _kpis(score: PlatformScore) -> dict[str, dict[str, float | None]]:
    return {k: {"value": r.value, "points": r.points, "target": r.target, "floor": r.floor, "weight": r.weight}
            for k in KPIS for r in (score.kpis[k],)}


def scorecard_report(
    records: DayRecords, period: Period, now: int, tz: str, config: ScorecardConfig, keep: AgentFilter,
    *, windows_1h: Mapping[Scope, WindowFigures | Mapping[str, Any]] | None = None,
    shown: Callable[[str], str] = lambda a: a,
) -> dict[str, Any]:
    """{"agents": [per agent and platform], "overall": [per agent]} for `period` at `now`.

    `windows_1h`: for the 1h period, the agent scope -> its view's "1h" window (the rolling hour
    lives in the views, not in the day state). `shown`: how an agent id is shown (privacy)."""
    if period == "1h":
        per_agent: PerAgent = {}
        for scope, window in (windows_1h or {}).items():
            if keep.keeps(scope):
                _add(per_agent, scope.queue[len(AGENT_PREFIX):], scope.platform, window_sums(window))
    else:
        today = day_start(now, tz)
        lo = today if period == "today" else month_start(now, tz)
        per_agent = collect(records, lo, today + 1, keep)
    flags = agent_flags(records, now, tz, keep, config, per_agent)
    rows: list[dict[str, Any]] = []
    overall: list[dict[str, Any]] = []
    for agent in sorted(per_agent):
        scores, total = _overall(per_agent[agent], config)
        for s in scores:
            rows.append({
                "agent_id": shown(agent), "platform": s.platform, "chats_handled": s.chats_handled,
                "gmv": {c: str(a) for c, a in sorted(s.gmv.items())}, "kpis": _kpis(s),
                "score": s.score, "grade": s.grade, "flags": flags.get(agent, []),
            })
        overall.append({"agent_id": shown(agent), "score": total, "grade": grade_of(total, config.grades),
                        "flags": flags.get(agent, [])})
    return {"agents": rows, "overall": overall}


# --- platform standing ------------------------------------------------------------------------------------

ShopHours = Mapping[int, Mapping[str, int]]  # hour start -> the shop-hour sums


@dataclass(frozen=True, slots=True)
class Projection:
    so_far: int
    projected: int


def _project(hours: ShopHours, name: str, now: int, tz: str, rule: PlatformRule | None = None) -> Projection:
    """Today's `name` so far, and by the end of the local day: the rest of the day as the same hours of the
    trailing 7 days had it (their mean, over the days with any data), else at the last hour's rate."""
    today = day_start(now, tz)
    this_hour = hour_start(now, tz)
    so_far = sum(int(s.get(name, 0)) for h, s in hours.items() if today <= h <= this_hour)
    history: list[list[int]] = []
    lo, hi = previous_day_start(today, tz), today
    for _ in range(7):
        day = [0] * 24
        seen = False
        for h, s in hours.items():
            if lo <= h < hi:
                seen = seen or any(s.values())
                day[local_hour(h, tz)] += int(s.get(name, 0))
        if seen:
            history.append(day)
        lo, hi = previous_day_start(lo, tz), lo
    minute_fraction = (now - this_hour) / _HOUR_MS
    current = int(hours.get(this_hour, {}).get(name, 0))
    previous = int(hours.get(this_hour - _HOUR_MS, {}).get(name, 0))
    # The last 60 minutes: the part of the previous hour still in them, and the current hour so far.
    last_hour = round(previous * (1 - minute_fraction) + current)
    counted: list[bool] | None = None
    if rule is not None:  # the hours whose waits the rule counts, by each local hour's start
        counted = [True] * 24
        start = this_hour
        while day_start(start, tz) == today:
            counted[local_hour(start, tz)] = rule.counts(start)
            start += _HOUR_MS
    return Projection(so_far, projected_day_total(so_far, local_hour(this_hour, tz), minute_fraction, history,
                                                  last_hour, counted))


def rule_standing(platform: str, hours: ShopHours, now: int, tz: str, rule: PlatformRule | None,
                  target: Fraction = RATE_TARGET) -> list[dict[str, Any]]:
    """The platform's scored rules today for one shop, with the budget left (API.md's `rules`)."""
    out: list[dict[str, Any]] = []
    today, this_hour = day_start(now, tz), hour_start(now, tz)
    todays = [s for h, s in hours.items() if today <= h <= this_hour]
    if rule is not None:
        counted = sum(int(s.get("rule_counted", 0)) for s in todays)
        met = sum(int(s.get("rule_met", 0)) for s in todays)
        proj = _project(hours, "rule_counted", now, tz, rule)
        out.append({
            "rule": rule.name, "target": float(target), "counted": counted, "met": met,
            "rate": None if counted == 0 else met / counted,
            "misses_left": misses_left(counted, met, proj.projected, target),
            "projected_counted": max(proj.projected, counted),
        })
    if platform == "jd":
        n = sum(int(s.get("reply_n", 0)) for s in todays)
        total_ms = sum(int(s.get("reply_ms", 0)) for s in todays)
        proj = _project(hours, "reply_n", now, tz)
        out.append({
            "rule": MEAN_RULE, "target": JD_MEAN_TARGET_S, "counted": n, "met": None,
            "rate": None if n == 0 else total_ms / n / 1000, "misses_left": None,
            "projected_counted": max(proj.projected, n),
            # The mean the rest of the day's replies must keep for the day's mean to stay under the line.
            "rest_mean_s": required_rest_mean(JD_MEAN_TARGET_S, total_ms / 1000, n, proj.projected),
        })
    return out


def shop_hours(records: DayRecords) -> dict[tuple[str, str, str], dict[int, Mapping[str, int]]]:
    """Per (tenant, shop, platform): hour start -> sums, of the shop-hour records."""
    out: dict[tuple[str, str, str], dict[int, Mapping[str, int]]] = {}
    for (scope, start), sums in records.items():
        if scope.queue.startswith(SHOP_PREFIX):
            out.setdefault((scope.tenant, scope.shop_id, scope.platform), {})[start] = sums
    return out


def budget(rule_row: Mapping[str, Any], target: Fraction = RATE_TARGET) -> tuple[int, int]:
    """(misses left, the day's whole miss budget) of a rate rule's standing row."""
    whole = math.floor(Fraction(int(rule_row["projected_counted"])) * (1 - target))
    return int(rule_row["misses_left"]), whole
