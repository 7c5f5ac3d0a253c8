"""Staffing math (services/core/erlang.py) against hand figures, exact formulas and brute force."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.core.erlang import (
    BacklogDrain,
    agents_for_slots,
    asa_s,
    backlog_drain,
    erlang_a,
    erlang_b,
    erlang_c,
    estimate_patience_rate,
    occupancy,
    projected,
    required_agents,
    rostered_headcount,
    service_level,
)

# ---------------------------------------------------------------------------------------------
# Brute-force references


def factorial_erlang_b(servers: int, load: Fraction) -> Fraction:
    """B = (A^N / N!) / Σ_k A^k / k!, exactly."""
    terms = [load**k / math.factorial(k) for k in range(servers + 1)]
    return terms[-1] / sum(terms)


def brute_force_erlang_a(
    servers: int, lam: float, mu: float, theta: float, threshold: float
) -> tuple[float, float, float, float]:
    """M/M/N+M by the birth–death chain (truncated once states carry < 1e-18 of the mass) and,
    for the service level, by uniformising the tagged buyer's queue position.

    Returns (p_wait, p_abandon, service level = P(answered within threshold), mean wait).
    """
    weights = [1.0]
    for k in range(1, servers + 1):
        weights.append(weights[-1] * lam / (k * mu))
    k = servers
    while True:
        k += 1
        death = servers * mu + (k - servers) * theta
        weights.append(weights[-1] * lam / death)
        if death > lam and weights[-1] < 1e-18 * sum(weights):
            break
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[servers:])
    queue = sum((k - servers) * pi[k] for k in range(servers, len(pi)))
    p_abandon = theta * queue / lam

    # A buyer finding j others queued reaches a server after the j ahead leave (rate Nμ + iθ with i
    # ahead) and a server frees (rate Nμ), unless its own patience (rate θ) runs out first.
    j_max = len(pi) - servers - 1
    rate = servers * mu + (j_max + 1) * theta
    mean = rate * threshold
    steps = int(mean + 12 * math.sqrt(mean) + 40)
    served = [0.0] * (j_max + 1)  # P(served within k uniformised steps | j ahead)
    within = [0.0] * (j_max + 1)
    log_poisson = -mean
    for step in range(steps + 1):
        weight = math.exp(log_poisson)
        within = [w + weight * s for w, s in zip(within, served, strict=True)]
        nxt = []
        for i in range(j_max + 1):
            down = (servers * mu + i * theta) / rate
            stay = 1.0 - down - theta / rate
            nxt.append(down * (1.0 if i == 0 else served[i - 1]) + stay * served[i])
        served = nxt
        if mean > 0:
            log_poisson += math.log(mean) - math.log(step + 1)
        else:
            log_poisson = -math.inf
    sl = sum(pi[:servers]) + sum(pi[servers + j] * within[j] for j in range(j_max + 1))
    return p_wait, p_abandon, sl, queue / lam


# ---------------------------------------------------------------------------------------------
# The published reference (shared/METRICS.md)


def test_metrics_reference_14_now_20_rostered() -> None:
    # By hand: λ = 100 chats / 30 min = 200/h; A = λ·AHT = 200 × 180 / 3600 = 10 Erlangs, c = 1.
    #   N = 13: B = 0.084339, C = 13·B / (13 − 10·(1 − B)) = 0.285270,
    #           SL = 1 − 0.285270·e^(−3·20/180) = 1 − 0.285270 × 0.716531 = 0.795595 < 0.80  → fails
    #           (occupancy 10/13 = 0.769 would pass the 0.85 cap; SL is the binding target).
    #   N = 14: B = 0.056819, C = 0.174132, SL = 1 − 0.174132·e^(−4/9) = 0.888350 ≥ 0.80,
    #           occupancy 10/14 = 0.714 ≤ 0.85, ASA = 0.174132 × 180 / 4 = 7.836 s  → 14 agents.
    #   Rostered: ⌈14 / (1 − 0.30)⌉ = ⌈20⌉ = 20 (exactly 20, must not become 21).
    # The reference in METRICS.md agrees with the math.
    answer = required_agents(200, 180, 1, 0.8, 20, max_occupancy=0.85, shrinkage=0.3)
    assert answer.required_agents == 14
    assert answer.required_rostered == 20
    assert answer.slots == answer.staffed_slots == 14
    assert answer.load_erlangs == 10.0
    assert answer.service_level == pytest.approx(0.888350, abs=1e-6)
    assert answer.occupancy == pytest.approx(10 / 14)
    assert answer.p_wait == pytest.approx(0.174132, abs=1e-6)
    assert answer.asa_s == pytest.approx(7.835937, abs=1e-6)
    assert erlang_b(13, 10) == pytest.approx(0.084339, abs=1e-6)
    assert erlang_c(13, 10) == pytest.approx(0.285270, abs=1e-6)
    assert service_level(13, 10, 180, 20) == pytest.approx(0.795595, abs=1e-6)
    assert service_level(13, 10, 180, 20) < 0.8 <= service_level(14, 10, 180, 20)


def test_reference_with_two_chats_per_agent_halves_agents() -> None:
    answer = required_agents(200, 180, 2, 0.8, 20, max_occupancy=0.85, shrinkage=0.3)
    assert (answer.slots, answer.required_agents, answer.required_rostered) == (14, 7, 10)


# ---------------------------------------------------------------------------------------------
# Known values


def test_known_erlang_b_and_c_values() -> None:
    assert erlang_b(10, 5) == pytest.approx(0.018385, abs=1e-6)
    assert erlang_c(10, 5) == pytest.approx(0.036105, abs=1e-6)
    # Exact: N = 3, A = 2 → B = (8/6) / (1 + 2 + 2 + 8/6) = 4/19, C = 4/9.
    assert erlang_b(3, 2) == pytest.approx(4 / 19, rel=1e-14)
    assert erlang_c(3, 2) == pytest.approx(4 / 9, rel=1e-14)
    assert erlang_b(1, 1) == pytest.approx(0.5)
    assert erlang_b(0, 3.7) == 1.0


def test_erlang_b_table_entries() -> None:
    # Erlang B tables at 1% blocking: 20 trunks carry 12.03 Erlangs, 100 trunks 84.06 Erlangs.
    assert erlang_b(20, 12.03) == pytest.approx(0.01, rel=2e-3)
    assert erlang_b(100, 84.06) == pytest.approx(0.01, rel=5e-3)


def test_textbook_call_centre_example() -> None:
    # The classic 80/20 worked example: 360 calls per hour, AHT 240 s → A = 24 Erlangs.
    # Direct formula with exact fractions for N = 24..30, then the smallest N with SL ≥ 80% in 20 s.
    load = Fraction(24)
    for n in range(25, 31):
        b = factorial_erlang_b(n, load)
        c = n * b / (n - load * (1 - b))
        assert erlang_c(n, 24) == pytest.approx(float(c), rel=1e-12)
        expected_sl = 1 - float(c) * math.exp(-(n - 24) * 20 / 240)
        assert service_level(n, 24, 240, 20) == pytest.approx(expected_sl, rel=1e-12)
    answer = required_agents(360, 240, 1, 0.8, 20)
    assert service_level(answer.slots - 1, 24, 240, 20) < 0.8 <= answer.service_level
    assert answer.required_agents == 29
    assert answer.asa_s == pytest.approx(asa_s(29, 24, 240))


def test_degenerate_loads() -> None:
    assert erlang_c(5, 0) == 0.0
    assert erlang_c(0, 0) == 0.0
    assert service_level(0, 0, 180, 20) == 1.0
    assert asa_s(3, 0, 180) == 0.0
    assert erlang_c(5, 5) == 1.0
    assert erlang_c(5, 7.5) == 1.0
    assert service_level(5, 7.5, 180, 20) == 0.0
    assert asa_s(5, 5, 180) is None
    assert occupancy(14, 10) == pytest.approx(10 / 14)
    assert occupancy(0, 0) == 0.0


def test_zero_arrivals_need_zero_agents() -> None:
    answer = required_agents(0, 180, 3, 0.95, 10, max_occupancy=0.8, shrinkage=0.4)
    assert answer.required_agents == 0
    assert answer.required_rostered == 0
    assert answer.service_level == 1.0
    assert answer.p_wait == 0.0
    assert answer.occupancy == 0.0


# ---------------------------------------------------------------------------------------------
# Exact ceilings


def test_float_traps_in_ceilings() -> None:
    # Naive float arithmetic gets each of these wrong by one.
    assert math.ceil(21 / (1 - 0.3)) == 31  # 30.000000000000004 in binary floating point
    assert rostered_headcount(21, 0.3) == 30
    assert math.ceil(17 / (1 - 0.32)) == 26
    assert rostered_headcount(17, 0.32) == 25
    assert math.ceil(9 / (1 - 0.55)) == 21
    assert rostered_headcount(9, 0.55) == 20
    # The occupancy bound ⌈A / cap⌉: 0.9 / 0.03 = 30.000000000000004 in floats; exactly 30 slots.
    assert math.ceil(0.9 / 0.03) == 31
    assert required_agents(90, 36, 1, 0.01, 3600, max_occupancy=0.03).slots == 30
    assert agents_for_slots(9, 3.0) == 3
    assert agents_for_slots(10, 2.5) == 4
    assert agents_for_slots(11, 2.5) == 5
    assert rostered_headcount(0, 0.5) == 0


@given(
    agents=st.integers(min_value=0, max_value=5_000),
    percent=st.integers(min_value=0, max_value=99),
    multiple=st.integers(min_value=1, max_value=50),
)
def test_rostered_ceiling_is_exact_at_boundaries(agents: int, percent: int, multiple: int) -> None:
    shrinkage = percent / 100
    on_floor = (100 - percent) // math.gcd(100, 100 - percent) * multiple
    expected = on_floor * 100 // (100 - percent)  # an exact integer by construction
    assert rostered_headcount(on_floor, shrinkage) == expected
    exact = Fraction(agents) / (1 - Fraction(percent, 100))
    assert rostered_headcount(agents, shrinkage) == math.ceil(exact)


@given(
    percent=st.integers(min_value=5, max_value=99),
    k=st.integers(min_value=1, max_value=60),
    concurrency=st.integers(min_value=1, max_value=4),
)
@settings(max_examples=60, deadline=None)
def test_occupancy_cap_boundary_is_exact(percent: int, k: int, concurrency: int) -> None:
    # A = n·p/100 Erlangs exactly (AHT 36 s, n·p arrivals/h) and cap p/100: the cap needs exactly n slots.
    n = k * concurrency
    cap = percent / 100
    assume(n * percent < 100 * n)  # n > A
    answer = required_agents(n * percent, 36, concurrency, 0.01, 3600, max_occupancy=cap)
    assert answer.slots == n
    assert answer.required_agents == k
    assert answer.occupancy <= cap
    assert Fraction(n * percent, 100) / answer.staffed_slots == Fraction(percent, 100)


@given(
    arrivals=st.integers(min_value=0, max_value=600),
    backlog=st.integers(min_value=0, max_value=300),
    minutes=st.integers(min_value=1, max_value=30),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_backlog_agents_ceiling_is_exact(arrivals: int, backlog: int, minutes: int, concurrency: int) -> None:
    # AHT 60 s: (λ/min + B/D)·1 min / c, computed with fractions.
    need = (Fraction(arrivals, 60) + Fraction(backlog, minutes)) / concurrency
    drain = backlog_drain(backlog, minutes, arrivals, 60, concurrency, 0)
    assert drain.agents == math.ceil(need)


# ---------------------------------------------------------------------------------------------
# Properties


@given(
    servers=st.integers(min_value=0, max_value=40),
    load=st.floats(min_value=0, max_value=60, allow_nan=False),
)
def test_erlang_b_matches_the_factorial_formula(servers: int, load: float) -> None:
    exact = factorial_erlang_b(servers, Fraction(load))
    assert erlang_b(servers, load) == pytest.approx(float(exact), rel=1e-12, abs=1e-300)


@given(
    load=st.floats(min_value=0.01, max_value=200),
    aht=st.floats(min_value=10, max_value=1200),
    threshold=st.floats(min_value=0, max_value=300),
)
def test_service_level_is_non_decreasing_in_servers(load: float, aht: float, threshold: float) -> None:
    levels = [service_level(n, load, aht, threshold) for n in range(math.floor(load) + 40)]
    assert all(0.0 <= sl <= 1.0 for sl in levels)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(levels))


@given(
    arrivals=st.floats(min_value=0.5, max_value=5_000),
    aht=st.floats(min_value=20, max_value=1_800),
    concurrency=st.sampled_from([1, 1.5, 2, 2.5, 3, 4]),
    target=st.floats(min_value=0.05, max_value=0.99),
    threshold=st.floats(min_value=0, max_value=120),
    cap=st.floats(min_value=0.5, max_value=1.0),
    shrinkage=st.floats(min_value=0, max_value=0.6),
)
@settings(max_examples=150, deadline=None)
def test_required_agents_is_minimal(
    arrivals: float,
    aht: float,
    concurrency: float,
    target: float,
    threshold: float,
    cap: float,
    shrinkage: float,
) -> None:
    answer = required_agents(arrivals, aht, concurrency, target, threshold, cap, shrinkage)
    load = answer.load_erlangs
    n = answer.slots
    assert answer.service_level >= target
    assert service_level(n, load, aht, threshold) >= target
    assert load / n <= cap + 1e-12
    # One slot fewer misses the service level or breaks the occupancy cap.
    assert n == 1 or service_level(n - 1, load, aht, threshold) < target or load / (n - 1) > cap
    # Agents: the fewest whose slots cover n; one agent fewer cannot.
    agents = answer.required_agents
    c = Fraction(str(concurrency))
    assert agents * c >= n > (agents - 1) * c
    assert answer.staffed_slots == math.floor(agents * c)
    assert answer.required_rostered == math.ceil(Fraction(agents) / (1 - Fraction(str(shrinkage))))
    # The figures describe the floor staffed with that many agents.
    now = projected(agents, concurrency, arrivals, aht, threshold)
    assert not now.overload
    assert now.service_level == pytest.approx(answer.service_level, abs=1e-12)
    assert now.p_wait == pytest.approx(answer.p_wait, abs=1e-12)


@given(
    servers=st.integers(min_value=0, max_value=10_000),
    load=st.floats(min_value=0, max_value=12_000),
    aht=st.floats(min_value=1, max_value=3_600),
)
@settings(max_examples=60, deadline=None)
def test_results_are_finite_up_to_ten_thousand_servers(servers: int, load: float, aht: float) -> None:
    b, c = erlang_b(servers, load), erlang_c(servers, load)
    sl, asa = service_level(servers, load, aht, 20), asa_s(servers, load, aht)
    assert 0.0 <= b <= 1.0
    assert 0.0 <= c <= 1.0
    assert b <= c or load == 0
    assert 0.0 <= sl <= 1.0
    assert asa is None or (math.isfinite(asa) and asa >= 0)
    assert (asa is None) == (load >= servers and load > 0)


def test_nine_thousand_erlangs() -> None:
    # 180,000 chats/h × 180 s = 9,000 Erlangs: the search is O(N) and finishes in milliseconds.
    answer = required_agents(180_000, 180, 1, 0.8, 20)
    assert answer.load_erlangs == 9000.0
    assert answer.service_level >= 0.8 > service_level(answer.slots - 1, 9000, 180, 20)
    assert 9000 < answer.required_agents < 9100
    capped = required_agents(180_000, 180, 1, 0.8, 20, max_occupancy=0.85, shrinkage=0.3)
    assert capped.required_agents == math.ceil(Fraction(9000) / Fraction(85, 100)) == 10_589
    assert capped.required_rostered == math.ceil(Fraction(10_589 * 10, 7))
    many = projected(9_020, 1, 180_000, 180, 20, patience_s=300)
    assert not many.overload
    assert many.erlang_a_abandon is not None and 0 <= many.erlang_a_abandon < many.p_wait


# ---------------------------------------------------------------------------------------------
# Erlang A


@given(
    servers=st.integers(min_value=0, max_value=5),
    lam=st.floats(min_value=0.05, max_value=8),
    theta=st.floats(min_value=0.1, max_value=3),
    threshold=st.floats(min_value=0, max_value=2),
)
@settings(max_examples=40, deadline=None)
def test_erlang_a_matches_the_birth_death_chain(servers: int, lam: float, theta: float, threshold: float) -> None:
    mu = 1.0
    result = erlang_a(servers, lam, mu, theta, threshold)
    p_wait, p_abandon, sl, mean_wait = brute_force_erlang_a(servers, lam, mu, theta, threshold)
    assert result.p_wait == pytest.approx(p_wait, abs=1e-10)
    assert result.p_abandon == pytest.approx(p_abandon, abs=1e-10)
    assert result.service_level == pytest.approx(sl, abs=1e-9)
    assert result.asa_s == pytest.approx(mean_wait, rel=1e-8, abs=1e-10)


def log_space_chain(servers: int, lam: float, mu: float, theta: float) -> tuple[float, float]:
    """(p_wait, p_abandon) of M/M/N+M by summing the chain in log space until terms fall below e^-45."""
    logs = [0.0]
    for k in range(1, servers + 1):
        logs.append(logs[-1] + math.log(lam / (k * mu)))
    k = servers
    while True:
        k += 1
        death = servers * mu + (k - servers) * theta
        logs.append(logs[-1] + math.log(lam / death))
        if death > lam and logs[-1] < max(logs) - 45:
            break
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    p_wait = sum(weights[servers:]) / total
    p_abandon = sum((k - servers) * theta * weights[k] for k in range(servers, len(weights))) / total / lam
    return p_wait, p_abandon


@given(
    servers=st.integers(min_value=200, max_value=3_000),
    rho=st.floats(min_value=0.7, max_value=1.6),
    aht=st.floats(min_value=60, max_value=900),
    patience=st.floats(min_value=10, max_value=3_000),
)
@settings(max_examples=15, deadline=None)
def test_erlang_a_matches_the_chain_for_thousands_of_servers(
    servers: int, rho: float, aht: float, patience: float
) -> None:
    lam = rho * servers / aht
    result = erlang_a(servers, lam, 1 / aht, 1 / patience, 20)
    p_wait, p_abandon = log_space_chain(servers, lam, 1 / aht, 1 / patience)
    assert result.p_wait == pytest.approx(p_wait, abs=1e-8)
    assert result.p_abandon == pytest.approx(p_abandon, abs=1e-8)


def test_erlang_a_brute_force_examples() -> None:
    # Heavily overloaded, slow service and long patience: many queue states carry mass.
    for args in [(3, 2.5, 1.0, 0.5, 1.0), (4, 6.0, 1.0, 0.3, 2.0), (2, 1.0, 1.0, 0.05, 1.5), (1, 5.0, 0.5, 0.2, 3.0)]:
        result = erlang_a(*args)
        p_wait, p_abandon, sl, mean_wait = brute_force_erlang_a(*args)
        assert result.p_wait == pytest.approx(p_wait, abs=1e-10)
        assert result.p_abandon == pytest.approx(p_abandon, abs=1e-10)
        assert result.service_level == pytest.approx(sl, abs=1e-9)
        assert result.asa_s == pytest.approx(mean_wait, rel=1e-8)


@given(
    servers=st.integers(min_value=1, max_value=300),
    rho=st.floats(min_value=0.05, max_value=0.95),
    aht=st.floats(min_value=30, max_value=900),
    threshold=st.floats(min_value=0, max_value=120),
)
@settings(max_examples=60, deadline=None)
def test_erlang_a_reduces_to_erlang_c_for_patient_buyers(
    servers: int, rho: float, aht: float, threshold: float
) -> None:
    load = rho * servers
    mu = 1 / aht
    # Patient buyers: Erlang A differs from C by about theta / (s*mu - lambda) (a fixed 1e7 handle times was 2e-6 off
    # near rho = 1 with one server), and erlang_a refuses s*mu/theta over 1e10: patience of 1e9 / s handle times.
    theta = servers * mu * 1e-9
    result = erlang_a(servers, load * mu, mu, theta, threshold)
    assert result.p_wait == pytest.approx(erlang_c(servers, load), abs=1e-6)
    assert result.service_level == pytest.approx(service_level(servers, load, aht, threshold), abs=1e-6)
    asa = asa_s(servers, load, aht)
    assert asa is not None
    assert result.asa_s == pytest.approx(asa, rel=1e-4, abs=1e-6)
    assert result.p_abandon < 1e-5


@given(
    servers=st.integers(min_value=0, max_value=10_000),
    rho=st.floats(min_value=0, max_value=3),
    aht=st.floats(min_value=10, max_value=1_800),
    patience=st.floats(min_value=1, max_value=3_600),
    threshold=st.floats(min_value=0, max_value=600),
)
@settings(max_examples=60, deadline=None)
def test_erlang_a_is_finite_at_any_load(
    servers: int, rho: float, aht: float, patience: float, threshold: float
) -> None:
    lam = rho * max(servers, 1) / aht
    result = erlang_a(servers, lam, 1 / aht, 1 / patience, threshold)
    for value in (result.p_wait, result.p_abandon, result.service_level):
        assert 0.0 <= value <= 1.0
    assert result.p_abandon <= result.p_wait + 1e-12
    assert result.service_level <= 1 - result.p_abandon + 1e-9
    assert math.isfinite(result.asa_s) and result.asa_s >= 0


def test_erlang_a_degenerate_cases() -> None:
    nobody = erlang_a(0, 1.0, 1.0, 0.5, 10)
    assert (nobody.p_wait, nobody.p_abandon, nobody.service_level) == (1.0, 1.0, 0.0)
    assert nobody.asa_s == pytest.approx(2.0)  # everybody waits out their mean patience
    quiet = erlang_a(5, 0.0, 1.0, 0.5, 10)
    assert (quiet.p_wait, quiet.p_abandon, quiet.service_level, quiet.asa_s) == (0.0, 0.0, 1.0, 0.0)


def test_patience_estimate() -> None:
    # 12 abandoned; waits of everybody who left the queue (answered + abandoned) total 3,600 s.
    assert estimate_patience_rate(12, 3600.0) == pytest.approx(1 / 300)
    assert estimate_patience_rate(0, 3600.0) is None
    assert estimate_patience_rate(3, 0.0) is None


def test_patience_estimate_recovers_theta_from_the_model() -> None:
    # In M/M/N+M, P(abandon) / mean wait of all arrivals = θ (Little's law on the queue).
    result = erlang_a(12, 12 / 180, 1 / 180, 1 / 240, 20)
    assert result.p_abandon / result.asa_s == pytest.approx(1 / 240)


# ---------------------------------------------------------------------------------------------
# Projection and backlog


def test_projection_with_reference_staffing() -> None:
    now = projected(13, 1, 200, 180, 20)
    assert not now.overload
    assert now.service_level == pytest.approx(0.795595, abs=1e-6)
    assert now.utilization == pytest.approx(10 / 13)
    assert now.asa_s == pytest.approx(asa_s(13, 10, 180))
    assert now.queue_growth_per_min == 0.0
    assert now.erlang_a_abandon is None


def test_projection_overloaded() -> None:
    # 9 agents for 10 Erlangs: capacity 9 / 180 s = 3 chats/min against 200/h = 3.333/min.
    now = projected(9, 1, 200, 180, 20)
    assert now.overload
    assert now.utilization == pytest.approx(10 / 9)
    assert (now.service_level, now.p_wait, now.asa_s) == (0.0, 1.0, None)
    assert now.queue_growth_per_min == pytest.approx(1 / 3)
    with_patience = projected(9, 1, 200, 180, 20, patience_s=120)
    assert with_patience.overload and with_patience.asa_s is None
    expected = erlang_a(9, 200 / 3600, 1 / 180, 1 / 120, 20)
    assert with_patience.erlang_a_abandon == pytest.approx(expected.p_abandon)
    assert with_patience.service_level == pytest.approx(expected.service_level)
    assert 0 < with_patience.service_level < 1


def test_projection_at_exactly_full_load_is_overload() -> None:
    now = projected(10, 1, 200, 180, 20)
    assert now.overload and now.utilization == 1.0
    assert now.queue_growth_per_min == 0.0
    assert now.asa_s is None


def test_projection_without_agents() -> None:
    now = projected(0, 2, 200, 180, 20, patience_s=60)
    assert now.overload
    assert now.utilization is None
    assert now.service_level == 0.0
    assert now.erlang_a_abandon == 1.0
    assert now.queue_growth_per_min == pytest.approx(200 / 60)
    idle = projected(0, 1, 0, 180, 20)
    assert not idle.overload and idle.service_level == 1.0 and idle.utilization == 0.0


def test_projection_fractional_concurrency_uses_whole_slots() -> None:
    # 4 agents × 2.5 = 10 slots; 5 agents × 2.5 = 12.5 → 12 usable slots.
    assert projected(5, 2.5, 200, 180, 20).service_level == pytest.approx(service_level(12, 10, 180, 20))
    assert projected(4, 2.5, 200, 180, 20).overload


def test_backlog_drain_examples() -> None:
    # λ = 200/h = 10/3 per min, B = 30, D = 10 min → (10/3 + 3)·3 min / 1 = 19 agents.
    # Now with 14 agents: capacity 14 / 3 min = 14/3 per min, spare 4/3 per min → 30 / (4/3) = 22.5 min.
    assert backlog_drain(30, 10, 200, 180, 1, 14) == BacklogDrain(agents=19, minutes_at_current=22.5)
    assert backlog_drain(0, 10, 200, 180, 1, 5) == BacklogDrain(agents=10, minutes_at_current=0.0)
    assert backlog_drain(30, 10, 200, 180, 1, 10).minutes_at_current is None  # capacity = λ
    assert backlog_drain(30, 10, 200, 180, 1, 0).minutes_at_current is None
    assert backlog_drain(0, 10, 0, 180, 3, 0) == BacklogDrain(agents=0, minutes_at_current=0.0)
    assert backlog_drain(30, 10, 200, 180, 2, 14).agents == 10  # ⌈19 / 2⌉


@given(
    backlog=st.integers(min_value=1, max_value=500),
    minutes=st.floats(min_value=0.5, max_value=60),
    arrivals=st.floats(min_value=0, max_value=2_000),
    aht=st.floats(min_value=10, max_value=1_200),
    concurrency=st.sampled_from([1, 2, 2.5, 3]),
)
def test_drain_agents_clear_the_backlog_in_time(
    backlog: int, minutes: float, arrivals: float, aht: float, concurrency: float
) -> None:
    drain = backlog_drain(backlog, minutes, arrivals, aht, concurrency, 0)
    enough = backlog_drain(backlog, minutes, arrivals, aht, concurrency, drain.agents)
    assert enough.minutes_at_current is not None
    assert enough.minutes_at_current <= minutes * (1 + 1e-12)
    if drain.agents > 0:
        fewer = backlog_drain(backlog, minutes, arrivals, aht, concurrency, drain.agents - 1)
        assert fewer.minutes_at_current is None or fewer.minutes_at_current > minutes * (1 - 1e-12)


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"arrivals_per_hour": -1.0}, "arrivals_per_hour"),
        ({"arrivals_per_hour": math.nan}, "finite"),
        ({"arrivals_per_hour": math.inf}, "finite"),
        ({"aht_s": 0.0}, "aht_s"),
        ({"aht_s": -5.0}, "aht_s"),
        ({"concurrency": 0.5}, "concurrency"),
        ({"sl_target": 1.0}, "sl_target"),
        ({"sl_target": 0.0}, "sl_target"),
        ({"sl_seconds": -1.0}, "sl_seconds"),
        ({"max_occupancy": 0.0}, "max_occupancy"),
        ({"max_occupancy": 1.2}, "max_occupancy"),
        ({"shrinkage": 1.0}, "shrinkage"),
        ({"shrinkage": -0.1}, "shrinkage"),
        ({"shrinkage": math.nan}, "shrinkage"),
    ],
)
def test_required_agents_rejects_bad_inputs(kwargs: dict[str, float], reason: str) -> None:
    args: dict[str, float] = {
        "arrivals_per_hour": 200.0,
        "aht_s": 180.0,
        "concurrency": 1.0,
        "sl_target": 0.8,
        "sl_seconds": 20.0,
        "max_occupancy": 0.85,
        "shrinkage": 0.3,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=reason):
        required_agents(**args)  # type: ignore[arg-type]


def test_other_functions_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match="servers"):
        erlang_b(-1, 2.0)
    with pytest.raises(ValueError, match="load"):
        erlang_c(3, -0.5)
    with pytest.raises(ValueError, match="finite"):
        service_level(3, 1.0, math.inf, 20)
    with pytest.raises(ValueError, match="threshold_s"):
        service_level(3, 1.0, 180, -1)
    with pytest.raises(ValueError, match="agents_available"):
        projected(-1, 1, 100, 180, 20)
    with pytest.raises(ValueError, match="patience_s"):
        projected(3, 1, 100, 180, 20, patience_s=0.0)
    with pytest.raises(ValueError, match="drain_minutes"):
        backlog_drain(10, 0, 100, 180, 1, 3)
    with pytest.raises(ValueError, match="backlog"):
        backlog_drain(-1, 10, 100, 180, 1, 3)
    with pytest.raises(ValueError, match="patience_rate_per_s"):
        erlang_a(3, 1.0, 1.0, 0.0, 10)
    with pytest.raises(ValueError, match="occupancy"):
        occupancy(0, 1.0)
    with pytest.raises(ValueError, match="whole number"):
        erlang_b(2.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="supported"):
        required_agents(1e12, 3600, 1, 0.8, 20)
