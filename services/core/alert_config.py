"""Alert rules' configuration: the rules, every threshold, and the rules file (shared/METRICS.md, "Alerts").

Pure apart from `load_rules` (reads the rules file); no clock. `Thresholds` is the one home of every
alert threshold: the alert engine (`alerts.py`), the scorer's judged views (`alert_judging.judged`),
the wallboard's legend (`/v1/thresholds`) and the Prometheus annotations all read them from here;
`thresholds_for(queue)` gives a queue's `Thresholds`, `Thresholds.to_json()` and `AlertRules.to_json()`
give them as plain JSON. What the rules judge is `alert_signals`; how they judge, `alert_judging`.

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
from typing import Any, Final, Literal

from .config import (
    STAFFING_MAX_OCCUPANCY,
    STAFFING_SL_SECONDS,
    STAFFING_SL_TARGET,
    SlThresholds,
    sl_thresholds,
)
from .platform_rules import platform_rules
from .scope import ALL

ENV_RULES_FILE: Final = "ALERT_RULES_FILE"

Rule = Literal["peak_load", "oldest_wait", "sla_breach", "staffing_gap", "platform_budget"]
Severity = Literal["warning", "critical"]
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
