"""Queueing math for staffing a chat queue (shared/METRICS.md, "Staffing, per queue, now").

Plain typed functions and frozen dataclasses; no I/O, no clocks, no globals that change.

Model and units
---------------
* Servers are chat *slots*: agents × concurrency c. The offered load is A = λ·AHT Erlangs, where
  AHT is the per-chat handle time measured at the concurrency the agents run (so the slot model
  already contains the slowdown of handling several chats at once).
* Arrivals are given per hour (as the API takes them), AHT, thresholds and patience in seconds.
* A fractional concurrency (a mean `capacity`, e.g. 2.5) is allowed. Then ``agents × c`` need not
  be a whole number, and the Erlang formulas only see whole slots: ⌊agents × c⌋ (half a slot
  serves nobody). With an integer c this changes nothing. A mean of integer capacities is best
  passed as the exact `fractions.Fraction` Σ capacity ÷ agents (8/3): the float 2.6666666666666665
  is a different number, and 3 agents × it is 7 whole slots, not 8. Every rate and concurrency
  parameter takes a `Fraction` as well as a float.
* Erlang B by the stable recursion B(0) = 1, B(n) = A·B(n−1) / (n + A·B(n−1)): no factorials,
  no overflow, and every step O(1), so scanning upward for the smallest staffing is O(N).
* Erlang C: C = N·B / (N − A·(1 − B)); SL(T) = 1 − C·exp(−(N − A)·T / AHT);
  ASA = C·AHT / (N − A) (mean wait over *all* arrivals, the call-centre convention).
* No traffic (A = 0): nobody waits, so C = 0, SL = 1, ASA = 0, whatever the number of servers.
  With traffic and A ≥ N the queue is unstable: C = 1, SL = 0 and ASA has no value (None).
* Ceilings of ratios (agents from slots, rostered headcount, the occupancy bound, backlog agents)
  are taken on exact fractions. A float input is read as the decimal it prints as
  (``repr``), i.e. what a person typed into the query string: 0.3 is 3/10, not the binary double
  just below it. So 21 agents at 30% shrinkage roster exactly 30 people, never 31.

Erlang A (M/M/N+M) for impatient buyers
---------------------------------------
Arrivals λ, service rate μ = 1/AHT, exponential patience with rate θ = 1/(mean patience).
With x = Nμ/θ and y = λ/θ the birth–death chain above N sums to

    J = Σ_j π(N+j)/π(N) = Σ_j y^j / ((x+1)(x+2)…(x+j)) = 1F1(1; x+1; y) = x·e^y·y^(−x)·γ(x, y),

and below N to 1/E_B − 1 (E_B = Erlang B with N servers and load λ/μ). The offered wait V of a
buyer who has to queue has, over the PASTA mixture of queue lengths, the (unnormalised) density
Nμ·exp(−Nμ·u + y·(1 − e^(−θu))), which integrates in closed form with the lower incomplete gamma
function. Hence, with π(N) = 1 / (1/E_B − 1 + J):

* P(wait)          = J·π(N)
* P(answered ≤ T)  = (1/E_B − 1)·π(N) + π(N)·x·e^y·y^(−x−1)·[γ(x+1, y) − γ(x+1, y·e^(−θT))]
  (abandoned buyers are misses, as in METRICS.md)
* P(abandon)       = P(wait) − π(N)·x·e^y·y^(−x−1)·γ(x+1, y)
* mean wait        = P(abandon) / θ  (Little: abandonment rate θ·E[Q] = λ·P(abandon)); it
  averages over every arrival, answered or abandoned, like the Erlang C ASA.

Every factor is evaluated in log space: the series of 1F1 when y is below or near x, otherwise the
continued fraction of the upper incomplete gamma function (Lentz), so nothing overflows for 10,000+
servers. The work is O(N) for E_B plus O(√max(x, y)) for the gamma functions.

Estimating the patience rate θ from what the floor observes
-----------------------------------------------------------
Exponential patience makes every waiting buyer an exposure: an abandoned buyer is an event after
its wait, an answered buyer is censored at its wait. The maximum-likelihood estimate is therefore

    θ̂ = abandoned buyers ÷ total waiting seconds of all buyers who left the queue (answered + abandoned)

(`estimate_patience_rate`), equivalently θ̂ = abandon_rate ÷ mean wait of every buyer, which is the
Little's-law identity above read backwards. Two shortcuts are common and both are biased: "mean
patience ≈ mean wait of abandoned buyers" only sees the impatient ones and underestimates patience
badly on a quiet floor; "abandon_rate ≈ P(abandon)" is right, but solving it for θ needs a root
search over `erlang_a`, which the estimator above makes unnecessary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final, TypeAlias

__all__ = [
    "MAX_SERVERS",
    "BacklogDrain",
    "ErlangAResult",
    "Number",
    "Projection",
    "StaffingAnswer",
    "agents_for_slots",
    "asa_s",
    "backlog_drain",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "estimate_patience_rate",
    "occupancy",
    "projected",
    "required_agents",
    "rostered_headcount",
    "service_level",
]

# A float (read as the decimal it prints as) or an exact fraction (e.g. Σ capacity ÷ agents).
Number: TypeAlias = float | Fraction

# Guard rails against requests that would only burn CPU: a million chat slots is far beyond any
# customer-service floor, and the O(N) recursion stays around a tenth of a second there.
MAX_SERVERS: Final = 1_000_000
MAX_CONCURRENCY: Final = 1_000
# Upper bound on x = Nμ/θ and y = λ/θ in Erlang A (patience absurdly long against handle time);
# the incomplete gamma evaluation costs O(√x) near the critical load.
_MAX_GAMMA_SHAPE: Final = 1e10
_SECONDS_PER_HOUR: Final = 3600
_EPS: Final = 1e-17
_TINY: Final = 1e-300


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class StaffingAnswer:
    """What `required_agents` recommends.

    `slots` is the smallest slot count meeting the targets; the agents needed to provide it are
    `required_agents` = ⌈slots / c⌉, and they provide `staffed_slots` = ⌊required_agents × c⌋ ≥ slots.
    `service_level`, `occupancy`, `p_wait` and `asa_s` describe the floor staffed with
    `required_agents` (so they equal `projected(required_agents, …)`).
    """

    required_agents: int
    required_rostered: int
    slots: int
    staffed_slots: int
    service_level: float
    occupancy: float
    p_wait: float
    asa_s: float
    load_erlangs: float


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """M/M/N+M figures. `asa_s` is the mean wait of all arrivals (answered or abandoned)."""

    p_wait: float
    p_abandon: float
    service_level: float
    asa_s: float


@dataclass(frozen=True, slots=True)
class Projection:
    """The queue with the agents available now.

    `utilization` ρ = A ÷ slots, the whole slots ⌊agents × c⌋ (with c = Σ capacity ÷ agents exactly,
    the agents' real Σ capacity); None when there are arrivals and no slots at all.
    `overload` when ρ ≥ 1, and only then (or no slots with arrivals): then Erlang C has no answer,
    `asa_s` is None, `service_level`/`p_wait` come from Erlang A when a patience is given (else
    0.0 / 1.0), and `queue_growth_per_min` = (λ − capacity rate) per minute with capacity rate =
    slots / AHT (0.0 when not overloaded).
    `erlang_a_abandon` is the Erlang A abandonment estimate whenever a patience is given.
    """

    service_level: float
    utilization: float | None
    overload: bool
    p_wait: float
    asa_s: float | None
    queue_growth_per_min: float
    erlang_a_abandon: float | None


@dataclass(frozen=True, slots=True)
class BacklogDrain:
    """`agents` needed to clear the backlog within the drain time while arrivals continue;
    `minutes_at_current` to clear it with the agents available now (None: it never drains)."""

    agents: int
    minutes_at_current: float | None


# ---------------------------------------------------------------------------------------------
# Validation and exact arithmetic


def _real(name: str, value: Number) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _non_negative(name: str, value: Number) -> float:
    v = _real(name, value)
    if v < 0:
        raise ValueError(f"{name} must be ≥ 0, got {value!r}")
    return v


def _positive(name: str, value: Number) -> float:
    v = _real(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be ≥ 0, got {value!r}")
    if value > MAX_SERVERS:
        raise ValueError(f"{name} must be ≤ {MAX_SERVERS:,}, got {value!r}")
    return value


def _concurrency(value: Number) -> float:
    c = _real("concurrency", value)
    if c < 1:
        raise ValueError(f"concurrency must be ≥ 1 chat per agent, got {value!r}")
    if c > MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be ≤ {MAX_CONCURRENCY}, got {value!r}")
    return c


def _load(value: float) -> float:
    a = _non_negative("load", value)
    if a > MAX_SERVERS:
        raise ValueError(f"load must be ≤ {MAX_SERVERS:,} Erlangs, got {value!r}")
    return a


def _exact(value: Number) -> Fraction:
    """The decimal a number prints as, exactly (0.3 → 3/10); a Fraction as it is. Callers validated
    finiteness."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(Decimal(repr(value)))


def _ceil(q: Fraction) -> int:
    return -((-q.numerator) // q.denominator)


def _floor(q: Fraction) -> int:
    return q.numerator // q.denominator


def _exact_load(arrivals_per_hour: Number, aht_s: Number) -> Fraction:
    load = _exact(arrivals_per_hour) * _exact(aht_s) / _SECONDS_PER_HOUR
    if load > MAX_SERVERS:
        # Not float(load): a load past 1.8e308 (1e300 chats × 1e300 s) would overflow in the message itself.
        raise ValueError(f"offered load λ·AHT is beyond the supported {MAX_SERVERS:,} Erlangs")
    return load


def agents_for_slots(slots: int, concurrency: Number) -> int:
    """Agents needed to run `slots` chat slots: ⌈slots / c⌉, exactly."""
    n = _count("slots", slots)
    return _ceil(Fraction(n) / _exact(_concurrency(concurrency)))


def rostered_headcount(agents: int, shrinkage: Number) -> int:
    """Headcount to schedule so that `agents` are on the floor: ⌈agents / (1 − shrinkage)⌉, exactly."""
    n = _count("agents", agents)
    s = _real("shrinkage", shrinkage)
    if not 0 <= s < 1:
        raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage!r}")
    return _ceil(Fraction(n) / (1 - _exact(shrinkage)))


# ---------------------------------------------------------------------------------------------
# Erlang B / C


def _erlang_b(servers: int, load: float) -> float:
    b = 1.0
    for n in range(1, servers + 1):
        ab = load * b
        b = ab / (n + ab)
        if b == 0.0:  # underflow: stays 0 for every larger n
            break
    return b


def _c_from_b(servers: int, load: float, b: float) -> float:
    if load == 0:
        return 0.0
    if load >= servers:
        return 1.0
    return min(1.0, servers * b / (servers - load * (1.0 - b)))


def _sl_from_c(servers: int, load: float, c: float, aht_s: float, threshold_s: float) -> float:
    if load == 0:
        return 1.0
    if load >= servers:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(servers - load) * threshold_s / aht_s))


def _asa_from_c(servers: int, load: float, c: float, aht_s: float) -> float | None:
    if load == 0:
        return 0.0
    if load >= servers:
        return None
    return c * aht_s / (servers - load)


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/M/N/N with `servers` N and offered `load` A Erlangs."""
    return _erlang_b(_count("servers", servers), _load(load))


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in M/M/N: 1.0 when load ≥ servers (unstable), 0.0 at no load."""
    n, a = _count("servers", servers), _load(load)
    return _c_from_b(n, a, _erlang_b(n, a))


def service_level(servers: int, load: float, aht_s: float, threshold_s: float) -> float:
    """Share answered within `threshold_s`: 1 − C·exp(−(N − A)·T / AHT); 0.0 when load ≥ servers."""
    n, a = _count("servers", servers), _load(load)
    aht = _positive("aht_s", aht_s)
    t = _non_negative("threshold_s", threshold_s)
    return _sl_from_c(n, a, _c_from_b(n, a, _erlang_b(n, a)), aht, t)


def asa_s(servers: int, load: float, aht_s: float) -> float | None:
    """Average speed of answer C·AHT / (N − A) in seconds; None when load ≥ servers (no steady state)."""
    n, a = _count("servers", servers), _load(load)
    aht = _positive("aht_s", aht_s)
    return _asa_from_c(n, a, _c_from_b(n, a, _erlang_b(n, a)), aht)


def occupancy(servers: int, load: float) -> float:
    """Offered load per server A / N (above 1 when overloaded); 0.0 with no load."""
    n, a = _count("servers", servers), _load(load)
    if a == 0:
        return 0.0
    if n == 0:
        raise ValueError("occupancy of zero servers with a positive load is undefined")
    return a / n


# ---------------------------------------------------------------------------------------------
# Staffing


def required_agents(
    arrivals_per_hour: Number,
    aht_s: Number,
    concurrency: Number,
    sl_target: Number,
    sl_seconds: Number,
    max_occupancy: Number = 1.0,
    shrinkage: Number = 0.0,
) -> StaffingAnswer:
    """Agents needed now so that `sl_target` of chats are answered within `sl_seconds`, with
    occupancy A / slots ≤ `max_occupancy`; rostered headcount adds `shrinkage`.

    The smallest slot count N is searched upward from max(⌊A⌋ + 1, ⌈A / max_occupancy⌉), carrying
    the Erlang B recursion along, so the whole search is O(N) float steps.
    """
    lam = _non_negative("arrivals_per_hour", arrivals_per_hour)
    aht = _positive("aht_s", aht_s)
    _concurrency(concurrency)
    target = _real("sl_target", sl_target)
    if not 0 < target < 1:
        raise ValueError(f"sl_target must be strictly between 0 and 1, got {sl_target!r}")
    t = _non_negative("sl_seconds", sl_seconds)
    cap = _real("max_occupancy", max_occupancy)
    if not 0 < cap <= 1:
        raise ValueError(f"max_occupancy must be in (0, 1], got {max_occupancy!r}")
    s = _real("shrinkage", shrinkage)
    if not 0 <= s < 1:
        raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage!r}")

    if lam == 0:
        return StaffingAnswer(0, 0, 0, 0, 1.0, 0.0, 0.0, 0.0, 0.0)

    load_q = _exact_load(arrivals_per_hour, aht_s)
    load = float(load_q)
    start = max(1, _floor(load_q) + 1, _ceil(load_q / _exact(max_occupancy)))
    if start > MAX_SERVERS:
        raise ValueError(f"the occupancy cap needs more than {MAX_SERVERS:,} slots")

    n = start
    b = _erlang_b(n, load)
    while _sl_from_c(n, load, _c_from_b(n, load, b), aht, t) < target:
        n += 1
        ab = load * b
        b = ab / (n + ab)
    slots = n

    c_q = _exact(concurrency)
    agents = _ceil(Fraction(slots) / c_q)
    staffed = _floor(agents * c_q)
    for m in range(slots + 1, staffed + 1):  # carry the recursion to the staffed slot count
        ab = load * b
        b = ab / (m + ab)
    p_wait = _c_from_b(staffed, load, b)
    asa = _asa_from_c(staffed, load, p_wait, aht)
    assert asa is not None  # staffed ≥ slots > load
    return StaffingAnswer(
        required_agents=agents,
        required_rostered=_ceil(Fraction(agents) / (1 - _exact(shrinkage))),
        slots=slots,
        staffed_slots=staffed,
        service_level=_sl_from_c(staffed, load, p_wait, aht, t),
        occupancy=float(load_q / staffed),
        p_wait=p_wait,
        asa_s=asa,
        load_erlangs=load,
    )


def projected(
    agents_available: int,
    concurrency: Number,
    arrivals_per_hour: Number,
    aht_s: Number,
    sl_seconds: Number,
    patience_s: Number | None = None,
) -> Projection:
    """Service with the agents available now; `patience_s` (mean patience) adds Erlang A.

    Never returns inf or NaN and never raises on overload: see `Projection`.
    """
    agents = _count("agents_available", agents_available)
    c = _concurrency(concurrency)
    _non_negative("arrivals_per_hour", arrivals_per_hour)
    aht = _positive("aht_s", aht_s)
    t = _non_negative("sl_seconds", sl_seconds)
    theta = None if patience_s is None else 1.0 / _positive("patience_s", patience_s)

    load_q = _exact_load(arrivals_per_hour, aht_s)
    load = float(load_q)
    capacity_q = agents * _exact(concurrency)  # slots, possibly fractional
    usable = _floor(capacity_q)
    if usable > MAX_SERVERS:
        raise ValueError(f"agents × concurrency must be ≤ {MAX_SERVERS:,} slots, got {agents} × {c}")

    if load_q == 0:
        return Projection(1.0, 0.0, False, 0.0, 0.0, 0.0, None if theta is None else 0.0)

    # ρ on the slots that serve (whole ones), so that overload (no Erlang C answer) is exactly ρ ≥ 1.
    utilization = None if usable == 0 else float(load_q / usable)
    lam_s = float(arrivals_per_hour) / _SECONDS_PER_HOUR
    ea = None if theta is None else erlang_a(usable, lam_s, 1.0 / aht, theta, t)
    abandon = None if ea is None else ea.p_abandon

    if load_q >= usable:
        arrivals_q = _exact(arrivals_per_hour) / _SECONDS_PER_HOUR
        growth = max(Fraction(0), arrivals_q - usable / _exact(aht_s)) * 60
        if ea is None:
            return Projection(0.0, utilization, True, 1.0, None, float(growth), None)
        return Projection(ea.service_level, utilization, True, ea.p_wait, None, float(growth), abandon)

    b = _erlang_b(usable, load)
    p_wait = _c_from_b(usable, load, b)
    return Projection(
        service_level=_sl_from_c(usable, load, p_wait, aht, t),
        utilization=utilization,
        overload=False,
        p_wait=p_wait,
        asa_s=_asa_from_c(usable, load, p_wait, aht),
        queue_growth_per_min=0.0,
        erlang_a_abandon=abandon,
    )


def backlog_drain(
    backlog: Number,
    drain_minutes: Number,
    arrivals_per_hour: Number,
    aht_s: Number,
    concurrency: Number,
    agents_available: int,
) -> BacklogDrain:
    """Agents to clear `backlog` waiting buyers within `drain_minutes` while arrivals continue,
    ⌈(λ + B/D)·AHT / c⌉ (fluid approximation, exact ceiling), and the minutes to clear it now,
    B ÷ (agents_available·c/AHT − λ): None when that capacity does not exceed λ, 0 with no backlog.
    """
    _non_negative("backlog", backlog)
    _positive("drain_minutes", drain_minutes)
    _non_negative("arrivals_per_hour", arrivals_per_hour)
    _positive("aht_s", aht_s)
    _concurrency(concurrency)
    available = _count("agents_available", agents_available)

    b_q, aht_min = _exact(backlog), _exact(aht_s) / 60
    lam_min = _exact(arrivals_per_hour) / 60
    c_q = _exact(concurrency)
    needed = _ceil((lam_min + b_q / _exact(drain_minutes)) * aht_min / c_q)
    if needed > MAX_SERVERS:
        raise ValueError(f"draining this backlog needs more than {MAX_SERVERS:,} agents")
    if b_q == 0:
        return BacklogDrain(needed, 0.0)
    spare = available * c_q / aht_min - lam_min  # chats per minute beyond arrivals
    return BacklogDrain(needed, None if spare <= 0 else float(b_q / spare))


# ---------------------------------------------------------------------------------------------
# Erlang A


def _log_upper_gamma_q(a: float, z: float) -> float:
    """ln Q(a, z), the regularised upper incomplete gamma function, for z ≥ a + 1 > 1 (Lentz)."""
    b = z + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    limit = 10_000 + int(50 * math.sqrt(a))
    for i in range(1, limit):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS * 4:
            return -z + a * math.log(z) - math.lgamma(a) + math.log(h)
    raise ArithmeticError(f"incomplete gamma continued fraction did not converge (a={a}, z={z})")


def _log_kummer(a: float, z: float) -> float:
    """ln 1F1(1; a+1; z) = ln Σ_n z^n / ((a+1)…(a+n)) for a, z ≥ 0 (= ln(a·e^z·z^(−a)·γ(a, z)))."""
    if z == 0:
        return 0.0
    if z < a + 1.0 + 5.0 * math.sqrt(a + 1.0):
        # Terms stay below e^12.5 here and eventually fall geometrically: plain summation.
        term = total = 1.0
        n = 0
        while term > total * _EPS:
            n += 1
            term *= z / (a + n)
            total += term
        return math.log(total)
    if a == 0:
        return z  # Σ z^n / n! = e^z
    q = math.exp(_log_upper_gamma_q(a, z))
    return math.log(a) + z - a * math.log(z) + math.lgamma(a) + math.log1p(-q)


def _logaddexp(p: float, q: float) -> float:
    if p == -math.inf:
        return q
    if q == -math.inf:
        return p
    m = max(p, q)
    return m + math.log(math.exp(p - m) + math.exp(q - m))


def erlang_a(
    servers: int,
    arrival_rate_per_s: float,
    service_rate_per_s: float,
    patience_rate_per_s: float,
    threshold_s: float,
) -> ErlangAResult:
    """M/M/N+M (Erlang A): N servers, Poisson arrivals, exponential service and patience.

    `patience_rate_per_s` = 1 / mean patience (see the module docstring for estimating it; use
    Erlang C for infinitely patient buyers). Works at any load, including N = 0 and λ ≥ Nμ.
    `service_level` = P(answered within `threshold_s`): abandoned buyers are misses.
    """
    n = _count("servers", servers)
    lam = _non_negative("arrival_rate_per_s", arrival_rate_per_s)
    mu = _positive("service_rate_per_s", service_rate_per_s)
    theta = _positive("patience_rate_per_s", patience_rate_per_s)
    t = _non_negative("threshold_s", threshold_s)
    if lam == 0:
        return ErlangAResult(0.0, 0.0, 1.0, 0.0)
    x, y = n * mu / theta, lam / theta
    if not (x <= _MAX_GAMMA_SHAPE and y <= _MAX_GAMMA_SHAPE):
        raise ValueError(
            "patience is too long against the handle time and inter-arrival time for Erlang A "
            f"(servers·μ/θ = {x:.3g}, λ/θ = {y:.3g}, limit {_MAX_GAMMA_SHAPE:.0e}); use Erlang C"
        )
    load = lam / mu
    if load > MAX_SERVERS:
        raise ValueError(f"load must be ≤ {MAX_SERVERS:,} Erlangs, got {load:.6g}")

    e_b = _erlang_b(n, load)
    if e_b == 0.0:  # π(N) underflows: nobody waits (to double precision)
        return ErlangAResult(0.0, 0.0, 1.0, 0.0)
    # ln of the unnormalised mass below N, relative to π(N): 1/E_B − 1
    log_free = -math.inf if e_b >= 1.0 else math.log1p(-e_b) - math.log(e_b)
    log_j = _log_kummer(x, y)
    log_total = _logaddexp(log_free, log_j)
    p_wait = math.exp(log_j - log_total)
    p_free = 0.0 if log_free == -math.inf else math.exp(log_free - log_total)

    if x == 0:  # no server: everybody waits and abandons
        return ErlangAResult(p_wait, p_wait, p_free, p_wait / theta)

    # Served after waiting (any wait): x/(x+1)·1F1(1; x+2; y) = x·e^y·y^(−x−1)·γ(x+1, y)
    log_s1 = _log_kummer(x + 1.0, y)
    log_served = math.log(x / (x + 1.0)) + log_s1
    p_served_waiting = math.exp(log_served - log_total)
    p_abandon = min(p_wait, max(0.0, p_wait - p_served_waiting))

    # Served after waiting at most T: subtract the part with γ(x+1, y·e^(−θT)).
    sl_waiting = 0.0
    if t > 0:
        z = y * math.exp(-theta * t)
        log_pref = -(x + 1.0) * theta * t - y * math.expm1(-theta * t)
        ratio = math.exp(min(0.0, log_pref + _log_kummer(x + 1.0, z) - log_s1))
        if ratio < 1.0:
            sl_waiting = math.exp(log_served + math.log1p(-ratio) - log_total)
    service = min(1.0, p_free + sl_waiting)
    return ErlangAResult(p_wait, p_abandon, service, p_abandon / theta)


def estimate_patience_rate(abandoned: int, total_wait_s: float) -> float | None:
    """Maximum-likelihood patience rate θ (per second) under exponential patience:
    abandoned buyers ÷ the summed waits of every buyer who left the queue, answered or abandoned
    (answered waits are censored patience). None when nothing was abandoned (infinite patience:
    use Erlang C) or nobody waited."""
    if isinstance(abandoned, bool) or not isinstance(abandoned, int) or abandoned < 0:
        raise ValueError(f"abandoned must be a whole number ≥ 0, got {abandoned!r}")
    total = _non_negative("total_wait_s", total_wait_s)
    if abandoned == 0 or total == 0:
        return None
    return abandoned / total
