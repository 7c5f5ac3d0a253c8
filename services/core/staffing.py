"""The staffing inputs of one queue view (shared/METRICS.md, "Staffing, per queue, now").

One reading for everyone who staffs from a view: the API's /v1/staffing and the alert rules'
`staffing_gap` and `peak_load` both call `staffing_inputs`, so they cannot disagree on what the
floor is. Pure: no I/O, no clock.

Concurrency is carried as the exact fraction Σ capacity ÷ agents of the agents on duty (the view's
integer `slots_capacity` and `agents_serving`), never as the float mean: 8/3 read as
2.6666666666666665 makes 3 agents with capacities 2, 3, 3 into 7 slots and asks for a fourth agent.
Arrival rates are exact fractions too: a window's `arrivals` (an integer) over the span it actually
covers (`span_s`, whole milliseconds), so a boundary of the Erlang search is never crossed by a
rounding of λ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

from .config import STAFFING_DEFAULT_AHT_S, STAFFING_DEFAULT_CONCURRENCY, StaffingSettings
from .figures import ViewLike, WindowFigures, live_of, window_of, windows_of

__all__ = ["StaffingDefaults", "StaffingInputs", "exact", "rate_per_hour", "staffing_inputs"]

_MS_PER_HOUR: Final = 3_600_000


def exact(value: float | Fraction) -> Fraction:
    """A number as the exact fraction it stands for: a float as the decimal it prints as (2.5 → 5/2,
    0.3 → 3/10), what a person typed or a JSON document carried."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(Decimal(repr(value)))


@dataclass(frozen=True, slots=True)
class StaffingDefaults:
    """Inputs used when the view has no measurement: AHT when no chat closed in the 1h window and
    concurrency when no agent serves the queue. `from_env`: as configured for the API's staffing
    (`config.StaffingSettings`); the constructor's defaults are the unconfigured ones."""

    aht_s: float = STAFFING_DEFAULT_AHT_S
    concurrency: float = STAFFING_DEFAULT_CONCURRENCY

    def __post_init__(self) -> None:
        if not (math.isfinite(self.aht_s) and self.aht_s > 0):
            raise ValueError(f"default AHT must be > 0 s, got {self.aht_s!r}")
        if not 1 <= self.concurrency <= 1000:
            raise ValueError(f"default concurrency must be in [1, 1000], got {self.concurrency!r}")

    @classmethod
    def from_env(cls) -> StaffingDefaults:
        configured = StaffingSettings()
        return cls(aht_s=configured.aht_s, concurrency=configured.concurrency)


@dataclass(frozen=True, slots=True)
class StaffingInputs:
    """What a queue view says about staffing it. None = the view does not say (never 0 for unknown).

    * `arrivals_per_hour`: λ of the 15m window (staffing), `arrivals_per_hour_5m`: of the 5m window
      (peak load's early warning), `arrivals_per_hour_1h`: of the 1h window (the surge baseline); each
      the window's arrivals over the span it covers.
    * `aht_s`: the 1h window's mean handle time, else the default (`aht_source` says which).
    * `agents_serving` (on duty: online or busy) and `slots`: the sum of their capacities, integers.
    * `concurrency`: slots ÷ agents_serving exactly, else the configured default (`concurrency_source`).
    """

    arrivals_per_hour: Fraction | None
    arrivals_per_hour_5m: Fraction | None
    arrivals_per_hour_1h: Fraction | None
    aht_s: float
    aht_source: str
    concurrency: Fraction
    concurrency_source: str
    agents_serving: int | None
    slots: int | None
    agents_available: int | None
    backlog: int | None
    patience_s: float | None

    @property
    def load_erlangs(self) -> Fraction | None:
        """A = λ(15m)·AHT."""
        return None if self.arrivals_per_hour is None else self.arrivals_per_hour * exact(self.aht_s) / 3600

    @property
    def load_erlangs_5m(self) -> Fraction | None:
        """A = λ(5m)·AHT: what peak load judges."""
        return None if self.arrivals_per_hour_5m is None else self.arrivals_per_hour_5m * exact(self.aht_s) / 3600


def _num(v: object) -> float | None:
    """A figure read from a view: a finite number, else None (a view read from JSON may hold anything)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return v


def _count(v: object) -> int | None:
    n = _num(v)
    if n is None or n < 0 or not float(n).is_integer():
        return None
    return int(n)


def rate_per_hour(window: WindowFigures | Mapping[str, Any]) -> Fraction | None:
    """A window's arrivals per hour: its `arrivals` over the `span_s` it covers, exactly.

    A view without `span_s` (written before windows stated their span) falls back to its
    `arrivals_per_min`, read as the decimal it prints as."""
    arrivals = _count(window.get("arrivals"))
    span_s = _num(window.get("span_s"))
    if arrivals is not None and span_s is not None and span_s > 0:
        span_ms = round(span_s * 1000)  # spans are whole milliseconds of event time
        if span_ms > 0:
            return Fraction(arrivals * _MS_PER_HOUR, span_ms)
    per_min = _num(window.get("arrivals_per_min"))
    return None if per_min is None or per_min < 0 else exact(per_min) * 60


def staffing_inputs(view: ViewLike, defaults: StaffingDefaults | None = None) -> StaffingInputs:
    """The staffing inputs of one queue view (`QueueMerger.views()`, or the API's copy of it; each
    figure is checked as read)."""
    dft = defaults if defaults is not None else StaffingDefaults()
    live, windows = live_of(view), windows_of(view)
    w1h = window_of(windows, "1h")
    measured = _num(w1h.get("aht_s"))
    aht, aht_source = (float(measured), "measured_1h") if measured is not None and measured > 0 else (
        dft.aht_s, "default")
    serving, slots = _count(live.get("agents_serving")), _count(live.get("slots_capacity"))
    if serving and slots and slots >= serving:  # every agent has at least one slot
        conc, conc_source = Fraction(slots, serving), "mean_agent_capacity"
    else:
        conc, conc_source = exact(dft.concurrency), "default"
    patience = _num(w1h.get("patience_s"))
    return StaffingInputs(
        arrivals_per_hour=rate_per_hour(window_of(windows, "15m")) if "15m" in windows else None,
        arrivals_per_hour_5m=rate_per_hour(window_of(windows, "5m")) if "5m" in windows else None,
        arrivals_per_hour_1h=rate_per_hour(w1h) if "1h" in windows else None,
        aht_s=aht,
        aht_source=aht_source,
        concurrency=conc,
        concurrency_source=conc_source,
        agents_serving=serving,
        slots=slots,
        agents_available=_count(live.get("agents_available")),
        backlog=_count(live.get("awaiting_reply")),
        patience_s=None if patience is None or patience <= 0 else float(patience),
    )
