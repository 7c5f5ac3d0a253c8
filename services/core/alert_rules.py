"""Alert rules: thresholds, inputs and verdicts (shared/METRICS.md, "Alerts" and "Staffing").

Pure apart from `load_rules` (reads the rules file) and `StaffingDefaults.from_env`; no clock. Time
and episodes are `alerts.AlertEngine`'s business; here a rule is judged on one reading.

* `Thresholds`: the one home of every alert threshold.
* `signals_from_view(view, thresholds, defaults)` reduces one view of `QueueMerger.views()` to the
  figures the rules judge (`Signals`); `signals_for_views` does a whole tick.
* `judge(rule, signals, thresholds)`: fire (at which level), hold (hysteresis band), clear, or gap.

The alert engine (`alerts.py`), the wallboard colours and the Prometheus annotations all read the
thresholds from here: `thresholds_for(queue)` gives a queue's `Thresholds`, `Thresholds.to_json()`
and `AlertRules.to_json()` give them as plain JSON.

Thresholds are configuration, per queue: the file named by ALERT_RULES_FILE (TOML by its `.toml`
suffix, JSON otherwise) holds a `default` section and per-queue overrides under `queues`; a queue
override changes only the settings it names. Every setting is validated and an error names the file,
the path of the bad setting and what is wrong. Without the variable, the built-in defaults apply.
See deploy/alerts.example.toml.

Durations are seconds here; the engine works in epoch milliseconds.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from . import erlang
from .config import (
    STAFFING_MAX_OCCUPANCY,
    STAFFING_SL_SECONDS,
    STAFFING_SL_TARGET,
    SlThresholds,
    sl_thresholds,
)
from .merge import ALL
from .platform_rules import platform_rules
from .staffing import StaffingDefaults, staffing_inputs

__all__ = [
    "DEFAULT_REPLY_LIMIT_S",
    "ENV_RULES_FILE",
    "PLATFORM_REPLY_LIMITS_S",
    "RULES",
    "VIEW_RULES",
    "AlertRules",
    "AlertRulesError",
    "Judgement",
    "Level",
    "OldestWait",
    "PeakLoad",
    "PlatformBudget",
    "Rule",
    "ScopeKey",
    "Severity",
    "Signals",
    "SlaBreach",
    "StaffingDefaults",
    "StaffingGap",
    "Thresholds",
    "alert_group",
    "check_measured",
    "judge",
    "judged",
    "load_rules",
    "paging_scopes",
    "parse_rules",
    "reply_limit_s",
    "rules_from_env",
    "signals_for_views",
    "signals_from_view",
    "thresholds_for",
]

ENV_RULES_FILE: Final = "ALERT_RULES_FILE"

Rule = Literal["peak_load", "oldest_wait", "sla_breach", "staffing_gap", "platform_budget"]
Severity = Literal["warning", "critical"]
ScopeKey = tuple[str, str, str, str]  # (queue, tenant, shop_id, platform), '*' = all: merge.view_keys
RULES: Final[tuple[Rule, ...]] = ("peak_load", "oldest_wait", "sla_breach", "staffing_gap", "platform_budget")
# The rules judged on a queue view (platform_budget is judged on a shop's standing).
VIEW_RULES: Final[tuple[Rule, ...]] = ("peak_load", "oldest_wait", "sla_breach", "staffing_gap")

# Platform reply-time rules (METRICS.md, DESIGN.md): the wait after which a platform counts a reply
# as late. JD counts first replies within 30 s; Pinduoduo, Taobao and Tmall count human replies within
# 3 minutes. Qianniu's 100 s "slow reply" is a flag, not a breach: it is the oldest_wait warning level.
PLATFORM_REPLY_LIMITS_S: Final[Mapping[str, float]] = MappingProxyType(
    {platform: rule.limit_s for platform, rule in platform_rules().items()}
)
DEFAULT_REPLY_LIMIT_S: Final = 180.0


def reply_limit_s(platform: str, platforms_in_scope: Collection[str] | None = None) -> float:
    """The strictest platform reply limit in a scope. For an all-platform scope ('*') it is the
    strictest of `platforms_in_scope` when known, else the strictest of the whole table."""
    if platform != ALL:
        return PLATFORM_REPLY_LIMITS_S.get(platform, DEFAULT_REPLY_LIMIT_S)
    named = [p for p in platforms_in_scope or () if p != ALL]
    if named:
        return min(reply_limit_s(p) for p in named)
    return min(DEFAULT_REPLY_LIMIT_S, *PLATFORM_REPLY_LIMITS_S.values())


class AlertRulesError(ValueError):
    """A threshold or rules file that cannot be used; the message says where and why."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise AlertRulesError(what)


def _durations(section: str, hold_s: float, clear_s: float) -> None:
    _require(0 <= hold_s <= 86_400, f"{section}.hold_s must be between 0 and 86400 s, got {hold_s!r}")
    _require(0 <= clear_s <= 86_400, f"{section}.clear_s must be between 0 and 86400 s, got {clear_s!r}")


@dataclass(frozen=True, slots=True)
class PeakLoad:
    """ρ = A / chat slots. Fires at ρ ≥ rho_warning (warning) / ≥ rho_critical (critical) held for
    hold_s, or on a surge (5m arrivals per minute ≥ surge_ratio × the 1h rate, with at least
    surge_min_arrivals_5m arrivals in 5m: warning, same hold); clears when ρ < clear_rho and no
    surge, for clear_s."""

    rho_warning: float = 0.9
    rho_critical: float = 1.0
    hold_s: float = 30.0
    surge_ratio: float = 2.0
    surge_min_arrivals_5m: int = 5
    clear_rho: float = 0.8
    clear_s: float = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(
            0 < self.clear_rho <= self.rho_warning <= self.rho_critical,
            "peak_load needs 0 < clear_rho ≤ rho_warning ≤ rho_critical, got "
            f"{self.clear_rho!r}, {self.rho_warning!r}, {self.rho_critical!r}",
        )
        _require(self.surge_ratio > 1, f"peak_load.surge_ratio must be > 1, got {self.surge_ratio!r}")
        _require(
            self.surge_min_arrivals_5m >= 1,
            f"peak_load.surge_min_arrivals_5m must be ≥ 1, got {self.surge_min_arrivals_5m!r}",
        )
        _durations("peak_load", self.hold_s, self.clear_s)


@dataclass(frozen=True, slots=True)
class OldestWait:
    """Fires at oldest_wait_s ≥ warning_s (warning) / ≥ critical_s (critical) held for hold_s;
    clears when below warning_s (or nobody waits) for clear_s."""

    warning_s: float = 100.0
    critical_s: float = 180.0
    hold_s: float = 0.0
    clear_s: float = 30.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(
            0 < self.warning_s <= self.critical_s,
            f"oldest_wait needs 0 < warning_s ≤ critical_s, got {self.warning_s!r}, {self.critical_s!r}",
        )
        _durations("oldest_wait", self.hold_s, self.clear_s)


@dataclass(frozen=True, slots=True)
class SlaBreach:
    """Fires (warning) when the 5m service level at threshold_s is below target, judged only with at
    least min_conversations that left the unanswered state in 5m; clears when at/above target (or
    the floor is quiet: too few to judge and nobody unanswered) for clear_s."""

    threshold_s: int = 30
    target: float = 0.8
    min_conversations: int = 5
    hold_s: float = 0.0
    clear_s: float = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        # Which thresholds a queue measures is configuration too (SL_THRESHOLDS_S): `check_measured`.
        _require(self.threshold_s > 0, f"sla_breach.threshold_s must be > 0 s, got {self.threshold_s!r}")
        _require(0 < self.target <= 1, f"sla_breach.target must be in (0, 1], got {self.target!r}")
        _require(
            self.min_conversations >= 1, f"sla_breach.min_conversations must be ≥ 1, got {self.min_conversations!r}"
        )
        _durations("sla_breach", self.hold_s, self.clear_s)


@dataclass(frozen=True, slots=True)
class StaffingGap:
    """Fires (warning) when Erlang C's required_agents for sl_target within sl_seconds (occupancy ≤
    max_occupancy) exceeds the agents staffing the queue (online or busy); clears when the gap is
    closed for clear_s. Defaults: the API's /v1/staffing defaults (config.STAFFING_*)."""

    sl_target: float = STAFFING_SL_TARGET
    sl_seconds: float = STAFFING_SL_SECONDS
    max_occupancy: float = STAFFING_MAX_OCCUPANCY
    hold_s: float = 0.0
    clear_s: float = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(0 < self.sl_target < 1, f"staffing_gap.sl_target must be in (0, 1), got {self.sl_target!r}")
        _require(
            0 <= self.sl_seconds <= 86_400, f"staffing_gap.sl_seconds must be in [0, 86400], got {self.sl_seconds!r}"
        )
        _require(
            0 < self.max_occupancy <= 1,
            f"staffing_gap.max_occupancy must be in (0, 1], got {self.max_occupancy!r}",
        )
        _durations("staffing_gap", self.hold_s, self.clear_s)


@dataclass(frozen=True, slots=True)
class PlatformBudget:
    """A shop's platform rule budget today (SCORECARD.md, platform standing): fires a warning when fewer than
    warning_share of the day's misses allowed are left, critical when none is left (one more miss and the
    day's rate is under target, or it already is); clears when at or above warning_share again (a new
    local day starts with the whole budget) for clear_s. Judged on the scope (*, tenant, shop, platform)."""

    warning_share: float = 0.2
    hold_s: float = 0.0
    clear_s: float = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(0 < self.warning_share <= 1,
                 f"platform_budget.warning_share must be in (0, 1], got {self.warning_share!r}")
        _durations("platform_budget", self.hold_s, self.clear_s)


_SECTIONS: Final[dict[str, type[Any]]] = {
    "peak_load": PeakLoad,
    "oldest_wait": OldestWait,
    "sla_breach": SlaBreach,
    "staffing_gap": StaffingGap,
    "platform_budget": PlatformBudget,
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every alert threshold of one queue."""

    peak_load: PeakLoad = field(default_factory=PeakLoad)
    oldest_wait: OldestWait = field(default_factory=OldestWait)
    sla_breach: SlaBreach = field(default_factory=SlaBreach)
    staffing_gap: StaffingGap = field(default_factory=StaffingGap)
    platform_budget: PlatformBudget = field(default_factory=PlatformBudget)

    def hold_ms(self, rule: Rule) -> int:
        return round(float(getattr(self, rule).hold_s) * 1000)

    def clear_ms(self, rule: Rule) -> int:
        return round(float(getattr(self, rule).clear_s) * 1000)

    def enabled(self, rule: Rule) -> bool:
        return bool(getattr(self, rule).enabled)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlertRules:
    """The default thresholds and the per-queue ones (each complete, overrides already applied)."""

    default: Thresholds = field(default_factory=Thresholds)
    queues: Mapping[str, Thresholds] = field(default_factory=dict)

    def thresholds_for(self, queue: str) -> Thresholds:
        return self.queues.get(queue, self.default)

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default.to_json(), "queues": {q: t.to_json() for q, t in sorted(self.queues.items())}}


# ---------------------------------------------------------------------------------------------
# Parsing and loading


def _setting(path: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        _require(isinstance(raw, bool), f"{path}: must be true or false, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise AlertRulesError(f"{path}: must be a number, got {raw!r}")
    _require(math.isfinite(raw), f"{path}: must be a finite number, got {raw!r}")
    if isinstance(default, int):
        _require(float(raw).is_integer(), f"{path}: must be a whole number, got {raw!r}")
        return int(raw)
    return float(raw)


def _mapping(path: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise AlertRulesError(f"{path}: must be a table/object, got {type(raw).__name__}")
    return raw


def _known(path: str, raw: Mapping[str, Any], names: Collection[str]) -> None:
    for key in raw:
        if not isinstance(key, str) or (key not in names and not key.startswith("_")):
            raise AlertRulesError(f"{path}.{key}: unknown setting (known: {', '.join(names)})")


def _apply(path: str, base: Thresholds, raw: Any) -> Thresholds:
    """`base` with the settings of `raw` (a mapping of rule section → settings) applied."""
    sections = _mapping(path, raw)
    _known(path, sections, _SECTIONS)
    out = base
    for name, cls in _SECTIONS.items():
        if name not in sections:
            continue
        spath = f"{path}.{name}"
        settings = _mapping(spath, sections[name])
        current = getattr(out, name)
        names = [f.name for f in fields(cls)]
        _known(spath, settings, names)
        values = {k: _setting(f"{spath}.{k}", v, getattr(current, k)) for k, v in settings.items() if k in names}
        try:
            out = replace(out, **{name: replace(current, **values)})
        except AlertRulesError as exc:
            raise AlertRulesError(f"{path}: {exc}") from None
    return out


def parse_rules(data: Mapping[str, Any], source: str = "alert rules") -> AlertRules:
    """Rules from a parsed file: {"default": {rule: {setting: value}}, "queues": {queue: {rule: {…}}}}.
    Keys starting with "_" are comments and ignored. Raises AlertRulesError naming `source`."""
    try:
        top = _mapping("(top level)", data)
        _known("(top level)", top, ("default", "queues"))
        default = _apply("default", Thresholds(), top.get("default", {}))
        queues_raw = _mapping("queues", top.get("queues", {}))
        queues: dict[str, Thresholds] = {}
        for queue, raw in queues_raw.items():
            if queue.startswith("_"):
                continue
            _require(queue != "", "queues: a queue name must not be empty")
            queues[queue] = _apply(f"queues.{queue}", default, raw)
    except AlertRulesError as exc:
        raise AlertRulesError(f"{source}: {exc}") from None
    rules = AlertRules(default=default, queues=MappingProxyType(queues))
    check_measured(rules, source=source)
    return rules


def check_measured(rules: AlertRules, sl: SlThresholds | None = None, source: str = "alert rules") -> None:
    """Every queue's sla_breach judges a service level its views measure (SL_THRESHOLDS_S, per queue)."""
    sl = sl if sl is not None else sl_thresholds()
    for queue in {"default", *rules.queues, *sl.queues}:
        threshold = (rules.default if queue == "default" else rules.thresholds_for(queue)).sla_breach.threshold_s
        measured = sl.default if queue == "default" else sl.for_queue(queue)
        where = "default" if queue == "default" or queue not in rules.queues else f"queues.{queue}"
        _require(
            threshold in measured,
            f"{source}: {where}.sla_breach.threshold_s must be one of the measured thresholds {list(measured)} "
            f"of {'the queues' if queue == 'default' else f'queue {queue!r}'} (SL_THRESHOLDS_S), got {threshold}",
        )


def load_rules(path: str | os.PathLike[str] | None = None) -> AlertRules:
    """Rules from `path`, else from the file named by ALERT_RULES_FILE, else the defaults.
    A named file that is missing or malformed is an error (AlertRulesError), never silently ignored."""
    if path is None:
        path = os.environ.get(ENV_RULES_FILE) or None
        if path is None:
            rules = AlertRules()
            check_measured(rules, source="the built-in alert rules")
            return rules
    p = Path(path)
    source = f"{ENV_RULES_FILE}={p}"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertRulesError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    try:
        data: Any = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
        raise AlertRulesError(f"{source}: not valid {kind}: {exc}") from None
    return parse_rules(data, source)


@lru_cache(maxsize=4)
def _cached(path: str) -> AlertRules:
    return load_rules(path or None)


def rules_from_env() -> AlertRules:
    """The rules of ALERT_RULES_FILE, read once per process (per value of the variable)."""
    return _cached(os.environ.get(ENV_RULES_FILE, ""))


def thresholds_for(queue: str, rules: AlertRules | None = None) -> Thresholds:
    """A queue's thresholds from `rules`, or from ALERT_RULES_FILE (defaults without it)."""
    return (rules if rules is not None else rules_from_env()).thresholds_for(queue)


# ---------------------------------------------------------------------------------------------
# Signals: what the rules judge, from one queue view


@dataclass(frozen=True, slots=True)
class Signals:
    """One scope's figures now. None = no data (never 0 for unknown).

    rho = A / slots with A = λ(5m) · AHT(1h, or the default) and slots = Σ capacity of the agents on
    duty; None with no load and no slots, or when the load or the slots are unknown; `overload` when
    there is load and ρ ≥ 1 (compared exactly) or no slots. The staffing inputs are
    `staffing.staffing_inputs`, the API's reading too: λ(15m), concurrency Σ capacity ÷ agents exactly.
    `oldest_wait_s` is None when nobody waits (`waiting` = 0) or when the live figures are missing.
    `staffing_gap` = required_agents − agents_staffing (agents on duty: online or busy).
    `time_to_breach_s`: seconds until the oldest waiting buyer passes `reply_limit_s`, the strictest
    platform reply rule in scope (0 once passed; None when nobody waits).
    `concurrency` is the exact fraction's nearest float, for display only.
    """

    rho: float | None = None
    overload: bool = False
    load_erlangs: float | None = None
    slots: int | None = None
    arrivals_per_min_15m: float | None = None
    aht_s: float | None = None
    aht_source: str = "default"
    arrivals_5m: int | None = None
    rate_5m_per_min: float | None = None
    rate_1h_per_min: float | None = None
    surge_ratio: float | None = None
    waiting: int | None = None
    unanswered: int | None = None
    oldest_wait_s: float | None = None
    sl_threshold_s: int = 30
    sl_5m: float | None = None
    sl_5m_left: int | None = None
    required_agents: int | None = None
    agents_staffing: int | None = None
    concurrency: float | None = None
    staffing_gap: int | None = None
    reply_limit_s: float = 180.0
    time_to_breach_s: float | None = None
    # A shop's platform rule today (scorecard_report.rule_standing): misses left, and the day's whole budget.
    budget_misses_left: int | None = None
    budget_total: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _num(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, Mapping) else None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _int(d: Any, key: str) -> int | None:
    v = _num(d, key)
    return None if v is None else int(v)


def _section(d: Any, key: str) -> Mapping[str, Any]:
    v = d.get(key) if isinstance(d, Mapping) else None
    return v if isinstance(v, Mapping) else {}


def signals_from_view(
    view: Mapping[str, Any],
    thresholds: Thresholds | None = None,
    defaults: StaffingDefaults | None = None,
    *,
    platforms: Collection[str] | None = None,
) -> Signals:
    """The rules' inputs from one queue view. `platforms`: the platforms an all-platform ('*') view
    covers, for its strictest reply rule (else the strictest of the whole platform table)."""
    th = thresholds if thresholds is not None else Thresholds()
    live, windows = _section(view, "live"), _section(view, "windows")
    w5 = _section(windows, "5m")
    # The same reading of the view as the API's /v1/staffing (one function: they cannot disagree).
    inputs = staffing_inputs(view, defaults)
    aht, aht_source = inputs.aht_s, inputs.aht_source
    apm15 = None if inputs.arrivals_per_hour is None else float(inputs.arrivals_per_hour / 60)
    rate5 = None if inputs.arrivals_per_hour_5m is None else float(inputs.arrivals_per_hour_5m / 60)
    rate1h = None if inputs.arrivals_per_hour_1h is None else float(inputs.arrivals_per_hour_1h / 60)
    # Peak load is judged on the last 5 minutes of arrivals: a 15-minute mean (the staffing input)
    # would hear of a peak only after the platforms' reply-time rules had broken.
    load_q = inputs.load_erlangs_5m
    load = None if load_q is None else float(load_q)
    slots = inputs.slots
    rho: float | None = None
    overload = False
    if load_q is not None and slots is not None:
        if slots == 0:
            overload = load_q > 0  # buyers arrive and nobody staffs the queue, whatever the handle time
        elif aht_source != "default":
            # With no measured handle time yet (a floor just opened), no load figure rather than an
            # alarm built on a default. ρ is compared exactly: overload at ρ ≥ 1 and only then.
            rho_q = load_q / slots
            rho = float(rho_q)
            overload = rho_q >= 1

    ratio = rate5 / rate1h if rate5 is not None and rate1h is not None and rate1h > 0 else None

    conc = inputs.concurrency  # exact: Σ capacity ÷ agents on duty (8/3, never 2.6666666666666665)
    required: int | None = None
    if inputs.arrivals_per_hour is not None:
        sg = th.staffing_gap
        try:
            required = erlang.required_agents(
                inputs.arrivals_per_hour, aht, conc, sg.sl_target, sg.sl_seconds, sg.max_occupancy
            ).required_agents
        except ValueError:  # beyond the Erlang guard rails (a million slots): no answer, not a guess
            required = None
    staffing = inputs.agents_serving

    oldest = _num(live, "oldest_wait_s")
    scope = _section(view, "scope")
    platform = scope.get("platform", ALL)
    limit = reply_limit_s(platform if isinstance(platform, str) else ALL, platforms)
    return Signals(
        rho=rho,
        overload=overload,
        load_erlangs=load,
        slots=slots,
        arrivals_per_min_15m=apm15,
        aht_s=aht,
        aht_source=aht_source,
        arrivals_5m=_int(w5, "arrivals"),
        rate_5m_per_min=rate5,
        rate_1h_per_min=rate1h,
        surge_ratio=ratio,
        waiting=_int(live, "awaiting_reply"),
        unanswered=_int(live, "unanswered"),
        oldest_wait_s=oldest,
        sl_threshold_s=th.sla_breach.threshold_s,
        sl_5m=_num(_section(w5, "sl"), str(th.sla_breach.threshold_s)),
        sl_5m_left=_int(w5, "left_unanswered"),
        required_agents=required,
        agents_staffing=staffing,
        concurrency=float(conc),
        staffing_gap=None if required is None or staffing is None else required - staffing,
        reply_limit_s=limit,
        time_to_breach_s=None if oldest is None else max(0.0, limit - oldest),
    )


def signals_for_views(
    views: Mapping[ScopeKey, Mapping[str, Any]],
    rules: AlertRules | None = None,
    defaults: StaffingDefaults | None = None,
    only: Collection[ScopeKey] | None = None,
) -> dict[ScopeKey, Signals]:
    """`signals_from_view` for every view of one `QueueMerger.views()` tick (or for those in `only`),
    each with its queue's thresholds; an all-platform view's reply limit comes from the platforms seen
    under it among all `views`."""
    r = rules if rules is not None else AlertRules()
    seen: dict[tuple[str, str], set[str]] = {}
    for queue, tenant, _shop, platform in views:
        if platform != ALL:
            seen.setdefault((queue, ALL), set()).add(platform)
            seen.setdefault((queue, tenant), set()).add(platform)
    return {
        key: signals_from_view(view, r.thresholds_for(key[0]), defaults, platforms=seen.get((key[0], key[1])))
        for key, view in views.items()
        if only is None or key in only
    }


def paging_scopes(scopes: Collection[ScopeKey]) -> set[ScopeKey]:
    """The scopes whose alerts page, out of a tick's queue totals and shops (METRICS.md, Alerts:
    one condition pages once). A shop always pages. A queue total (q, *, *, *) pages only when it
    rolls up two shops or more: over a single shop it is the same conversations, and the shop's
    alert (which names the shop and its platform's reply rule) is the one page. Where it rolls up
    several, its members are grouped under it (`alert_group`)."""
    shops: dict[str, int] = {}
    for queue, _tenant, shop, _platform in scopes:
        if shop != ALL:
            shops[queue] = shops.get(queue, 0) + 1
    return {
        key for key in scopes
        if key[2] != ALL or key[1:] != (ALL, ALL, ALL) or shops.get(key[0], 0) >= 2
    }


def alert_group(rule: str, scope: ScopeKey) -> str:
    """The roll-up an alert is grouped under: its rule on its queue across shops (what Alertmanager
    groups one notification by: alertname, rule, queue)."""
    return f"{rule}:{scope[0]}:{ALL}:{ALL}:{ALL}"


# ---------------------------------------------------------------------------------------------
# Judging one rule on one reading


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


Level = Literal["critical", "warning", "ok"]


def judged(s: Signals, th: Thresholds) -> dict[str, Any]:
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
