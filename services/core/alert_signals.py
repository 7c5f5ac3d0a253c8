"""What the alert rules judge (`Signals`), read from one queue view (shared/METRICS.md, "Alerts" and
"Staffing"), and which scopes page (one condition, one page).

`signals_from_view(view, thresholds, defaults)` reduces one view of `QueueMerger.views()` to the
figures the rules judge; `signals_for_views` does a whole tick. Pure; no clock.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from . import erlang
from .alert_config import AlertRules, Thresholds, reply_limit_s
from .figures import ViewLike, live_of, window_of, windows_of
from .scope import ALL, Scope, queue_total
from .staffing import StaffingDefaults, staffing_inputs


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
        # Every field is a scalar: asdict's result, without its recursive copy (once per view per step).
        return {name: getattr(self, name) for name in _SIGNAL_FIELDS}


_SIGNAL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Signals))


def _num(v: object) -> float | None:
    """A figure read from a view: a finite number, else None (a view read from JSON may hold anything)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _int(v: object) -> int | None:
    n = _num(v)
    return None if n is None else int(n)


def signals_from_view(
    view: ViewLike,
    thresholds: Thresholds | None = None,
    defaults: StaffingDefaults | None = None,
    *,
    platforms: Collection[str] | None = None,
) -> Signals:
    """The rules' inputs from one queue view. `platforms`: the platforms an all-platform ('*') view
    covers, for its strictest reply rule (else the strictest of the whole platform table)."""
    th = thresholds if thresholds is not None else Thresholds()
    live, w5 = live_of(view), window_of(windows_of(view), "5m")
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

    oldest = _num(live.get("oldest_wait_s"))
    scope = view.get("scope")
    platform = scope.get("platform", ALL) if isinstance(scope, Mapping) else ALL
    limit = reply_limit_s(platform if isinstance(platform, str) else ALL, platforms)
    return Signals(
        rho=rho,
        overload=overload,
        load_erlangs=load,
        slots=slots,
        arrivals_per_min_15m=apm15,
        aht_s=aht,
        aht_source=aht_source,
        arrivals_5m=_int(w5.get("arrivals")),
        rate_5m_per_min=rate5,
        rate_1h_per_min=rate1h,
        surge_ratio=ratio,
        waiting=_int(live.get("awaiting_reply")),
        unanswered=_int(live.get("unanswered")),
        oldest_wait_s=oldest,
        sl_threshold_s=th.sla_breach.threshold_s,
        sl_5m=_num(sl.get(str(th.sla_breach.threshold_s)) if isinstance(sl := w5.get("sl"), Mapping) else None),
        sl_5m_left=_int(w5.get("left_unanswered")),
        required_agents=required,
        agents_staffing=staffing,
        concurrency=float(conc),
        staffing_gap=None if required is None or staffing is None else required - staffing,
        reply_limit_s=limit,
        time_to_breach_s=None if oldest is None else max(0.0, limit - oldest),
    )


def signals_for_views(
    views: Mapping[Scope, ViewLike],
    rules: AlertRules | None = None,
    defaults: StaffingDefaults | None = None,
    only: Collection[Scope] | None = None,
) -> dict[Scope, Signals]:
    """`signals_from_view` for every view of one `QueueMerger.views()` tick (or for those in `only`),
    each with its queue's thresholds; an all-platform view's reply limit comes from the platforms seen
    under it among all `views`."""
    r = rules if rules is not None else AlertRules()
    seen: dict[tuple[str, str], set[str]] = {}
    for key in views:
        if key.platform != ALL:
            seen.setdefault((key.queue, ALL), set()).add(key.platform)
            seen.setdefault((key.queue, key.tenant), set()).add(key.platform)
    return {
        key: signals_from_view(view, r.thresholds_for(key.queue), defaults, platforms=seen.get((key.queue, key.tenant)))
        for key, view in views.items()
        if only is None or key in only
    }


def paging_scopes(scopes: Collection[Scope]) -> set[Scope]:
    """The scopes whose alerts page, out of a tick's queue totals and shops (METRICS.md, Alerts:
    one condition pages once). A shop always pages. A queue total (`queue_total`) pages only when it
    rolls up two shops or more: over a single shop it is the same conversations, and the shop's
    alert (which names the shop and its platform's reply rule) is the one page. Where it rolls up
    several, its members are grouped under it (`alert_group`)."""
    shops: dict[str, int] = {}
    for key in scopes:
        if key.shop_id != ALL:
            shops[key.queue] = shops.get(key.queue, 0) + 1
    return {
        key for key in scopes
        if key.shop_id != ALL or key != queue_total(key.queue) or shops.get(key.queue, 0) >= 2
    }


def alert_group(rule: str, scope: Scope) -> str:
    """The roll-up an alert is grouped under: its rule on its queue across shops (what Alertmanager
    groups one notification by: alertname, rule, queue)."""
    return f"{rule}:{scope.queue}:{ALL}:{ALL}:{ALL}"
