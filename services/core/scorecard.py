"""The agent scorecard of shared/SCORECARD.md: KPI sums, points, weighted score, grade and flags.

Pure math on mergeable sums: the scorer adds an agent's per-day sums (one `AgentSums` per agent,
platform and local day), the API adds days into a month and reads the score from here. Nothing in
this module knows Kafka, HTTP or the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal

Better = Literal["lower", "higher"]

# The scored KPIs, in the order SCORECARD.md lists them.
KPIS: Final = ("frt_mean_s", "reply_mean_s", "rule_met_rate", "csat_satisfied_share", "resolution_rate",
               "conversion_rate")
KPI_BETTER: Final[dict[str, Better]] = {
    "frt_mean_s": "lower", "reply_mean_s": "lower", "rule_met_rate": "higher",
    "csat_satisfied_share": "higher", "resolution_rate": "higher", "conversion_rate": "higher",
}
DEFAULT_TARGETS: Final[dict[str, tuple[float, float]]] = {  # kpi: (target, floor)
    "frt_mean_s": (15, 60), "reply_mean_s": (30, 120), "rule_met_rate": (0.80, 0.50),
    "csat_satisfied_share": (0.90, 0.60), "resolution_rate": (0.90, 0.60), "conversion_rate": (0.40, 0.10),
}
# Weights per platform family (each sums to 100): what each platform grades most.
DEFAULT_WEIGHTS: Final[dict[str, dict[str, float]]] = {
    "taobao": {"frt_mean_s": 15, "reply_mean_s": 15, "rule_met_rate": 15, "csat_satisfied_share": 15,
               "resolution_rate": 10, "conversion_rate": 30},
    "jd": {"frt_mean_s": 15, "reply_mean_s": 20, "rule_met_rate": 30, "csat_satisfied_share": 20,
           "resolution_rate": 10, "conversion_rate": 5},
    "pdd": {"frt_mean_s": 15, "reply_mean_s": 15, "rule_met_rate": 30, "csat_satisfied_share": 15,
            "resolution_rate": 10, "conversion_rate": 15},
    "other": {"frt_mean_s": 20, "reply_mean_s": 20, "rule_met_rate": 15, "csat_satisfied_share": 20,
              "resolution_rate": 15, "conversion_rate": 10},
}
PLATFORM_FAMILY: Final = {"taobao": "taobao", "tmall": "taobao", "jd": "jd", "pdd": "pdd"}
DEFAULT_GRADES: Final = (("A", 90.0), ("B", 75.0), ("C", 60.0))  # below the last line: "D"
LOWEST_GRADE: Final = "D"
MIN_WEIGHT_WITH_DATA: Final = 50.0  # of 100: below it a score says more about what is missing than the agent


def family(platform: str) -> str:
    """The weight column a platform is scored by (Tmall grades like Taobao; unknown ones as "other")."""
    return PLATFORM_FAMILY.get(platform, "other")


@dataclass(slots=True)
class AgentSums:
    """What one agent did on one platform in one period, as sums that add across days and workers.

    Times in milliseconds (integers keep sums exact); `gmv` per ISO 4217 currency.
    """

    frt_ms: int = 0
    frt_n: int = 0  # the agent's first replies (首响)
    reply_ms: int = 0
    reply_n: int = 0  # the agent's replies that cleared a wait (平响)
    rule_counted: int = 0
    rule_met: int = 0
    csat_n: int = 0
    csat_satisfied: int = 0  # ratings >= 4
    closed: int = 0  # conversations the agent handled that closed
    closed_resolved: int = 0
    chats_handled: int = 0  # conversations the agent replied to (接待量)
    converted: int = 0  # of those, conversations with an order after the agent's reply
    gmv: dict[str, Decimal] = field(default_factory=dict)

    def add(self, other: AgentSums) -> None:
        for f in fields(self):
            if f.name != "gmv":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for currency, amount in other.gmv.items():
            self.gmv[currency] = self.gmv.get(currency, Decimal(0)) + amount

    def kpi_values(self) -> dict[str, float | None]:
        """Each scored KPI's value, None where the period has no sample of it."""
        return {
            "frt_mean_s": _mean(self.frt_ms, self.frt_n, 1000),
            "reply_mean_s": _mean(self.reply_ms, self.reply_n, 1000),
            "rule_met_rate": _mean(self.rule_met, self.rule_counted),
            "csat_satisfied_share": _mean(self.csat_satisfied, self.csat_n),
            "resolution_rate": _mean(self.closed_resolved, self.closed),
            "conversion_rate": _mean(self.converted, self.chats_handled),
        }


def summed(parts: Iterable[AgentSums]) -> AgentSums:
    out = AgentSums()
    for part in parts:
        out.add(part)
    return out


def _mean(total: int, n: int, per: int = 1) -> float | None:
    return None if n <= 0 else total / n / per


@dataclass(frozen=True, slots=True)
class KpiRule:
    target: float
    floor: float
    weight: float


@dataclass(frozen=True)
class ScorecardConfig:
    """Targets, floors and weights per platform family, grade lines and flag rules (SCORECARD_CONFIG)."""

    kpis: Mapping[str, Mapping[str, KpiRule]]  # family -> kpi -> rule
    grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES
    min_chats: int = 5
    stars: int = 3
    star_min_chats: int = 50
    warning_d_days: int = 3

    def rules_for(self, platform: str) -> Mapping[str, KpiRule]:
        """A platform's own rules where configured, else its family's (Tmall scores as Taobao)."""
        return self.kpis.get(platform) or self.kpis[family(platform)]


def default_config() -> ScorecardConfig:
    return ScorecardConfig(kpis={
        fam: {k: KpiRule(*DEFAULT_TARGETS[k], weight=w) for k, w in weights.items()}
        for fam, weights in DEFAULT_WEIGHTS.items()
    })


def points(value: float, rule: KpiRule, better: Better) -> float:
    """100 at or better than the target, 0 at or worse than the floor, linear between."""
    good, bad = (value <= rule.target, value >= rule.floor) if better == "lower" else (
        value >= rule.target, value <= rule.floor)
    if good:
        return 100.0
    if bad:
        return 0.0
    return 100.0 * (value - rule.floor) / (rule.target - rule.floor)


@dataclass(frozen=True, slots=True)
class KpiResult:
    value: float | None
    points: float | None
    target: float
    floor: float
    weight: float


@dataclass(frozen=True, slots=True)
class PlatformScore:
    platform: str
    chats_handled: int
    gmv: dict[str, Decimal]
    kpis: dict[str, KpiResult]
    score: float | None
    grade: str | None


def grade_of(score: float | None, grades: Sequence[tuple[str, float]]) -> str | None:
    if score is None:
        return None
    for name, line in grades:
        if score >= line:
            return name
    return LOWEST_GRADE


def score_platform(platform: str, sums: AgentSums, config: ScorecardConfig) -> PlatformScore:
    """One agent's score on one platform: weights renormalised over the KPIs with data.

    Null ("not enough data", never 0) below `min_chats` chats or when the KPIs with data carry
    less than half the weight.
    """
    rules = config.rules_for(platform)
    values = sums.kpi_values()
    kpis: dict[str, KpiResult] = {}
    weighted = weight_with_data = 0.0
    for kpi in KPIS:
        rule = rules[kpi]
        value = values[kpi]
        pts = None if value is None else points(value, rule, KPI_BETTER[kpi])
        kpis[kpi] = KpiResult(value, pts, rule.target, rule.floor, rule.weight)
        if pts is not None and rule.weight > 0:
            weighted += rule.weight * pts
            weight_with_data += rule.weight
    total_weight = sum(r.weight for r in rules.values())
    enough = (
        sums.chats_handled >= config.min_chats
        and weight_with_data > 0
        and weight_with_data * 100 >= MIN_WEIGHT_WITH_DATA * total_weight
    )
    score = weighted / weight_with_data if enough else None
    return PlatformScore(platform, sums.chats_handled, dict(sums.gmv), kpis, score, grade_of(score, config.grades))


def overall_score(scores: Iterable[PlatformScore]) -> float | None:
    """An agent's overall score: the platform scores weighted by chats handled on each."""
    scored = [(s.score, s.chats_handled) for s in scores if s.score is not None and s.chats_handled > 0]
    chats = sum(n for _, n in scored)
    return None if chats == 0 else sum(score * n for score, n in scored) / chats


Flag = Literal["service_star", "coach", "warning"]


def flags_for(
    agents: Sequence[str],
    month_scores: Mapping[str, float | None],
    month_chats: Mapping[str, int],
    today_grades: Mapping[str, str | None],
    month_day_grades: Mapping[str, Sequence[str | None]],
    config: ScorecardConfig,
) -> dict[str, list[Flag]]:
    """奖惩 advice (never an action): stars for the best month scores with enough chats, coaching
    for a D today, a warning for a month with `warning_d_days` D days."""
    out: dict[str, list[Flag]] = {a: [] for a in agents}
    eligible = [(score, a) for a in agents
                if (score := month_scores.get(a)) is not None and month_chats.get(a, 0) >= config.star_min_chats]
    # Best first; ties broken by agent id so the stars never depend on input order.
    for _, agent in sorted(eligible, key=lambda sa: (-sa[0], sa[1]))[: config.stars]:
        out[agent].append("service_star")
    for agent in agents:
        if today_grades.get(agent) == LOWEST_GRADE:
            out[agent].append("coach")
        if sum(1 for g in month_day_grades.get(agent, ()) if g == LOWEST_GRADE) >= config.warning_d_days:
            out[agent].append("warning")
    return out


# --- platform standing: a shop's rule budget for today ------------------------------------------

def misses_left(counted: int, met: int, projected_counted: int, target: Fraction) -> int:
    """How many more misses today keep the rate at `target`, if every other buyer of the day
    (`projected_counted` in all, today's counted included) is answered in time. Below zero: the
    day is lost already. Exact: the rate holds while misses <= projected x (1 - target)."""
    total = max(projected_counted, counted)
    allowed = Fraction(total) * (1 - target)
    return math.floor(allowed) - (counted - met)


def required_rest_mean(mean_target_s: float, total_s: float, n: int, projected_n: int) -> float | None:
    """The mean the rest of the day's replies must keep for the day's mean to stay under target;
    None when no reply is projected for the rest of the day."""
    rest = projected_n - n
    if rest <= 0:
        return None
    return (mean_target_s * projected_n - total_s) / rest


def projected_day_total(
    counted_so_far: int, hour_now: int, minute_fraction: float,
    history: Sequence[Sequence[int]], last_hour: int, counted_hours: Sequence[bool] | None = None,
) -> int:
    """Today's counted buyers by the end of the local day: those so far, plus the rest of the day as
    the trailing days' same hours had it (their mean), or else at the last hour's rate.

    `history` holds one 24-slot list of counted buyers per earlier day (up to 7); the current hour
    counts for the part of it still to come. `counted_hours`: 24 flags, the local hours the rule counts
    (JD 09-23): the last hour's rate is not projected into hours it does not count (default: all).
    """
    remaining_hours = [(h, 1.0 - minute_fraction if h == hour_now else 1.0) for h in range(hour_now, 24)
                       if counted_hours is None or counted_hours[h]]
    if history:
        rest = sum(sum(day[h] * share for h, share in remaining_hours) for day in history) / len(history)
    else:
        rest = last_hour * sum(share for _, share in remaining_hours)
    return counted_so_far + round(rest)
