"""Exact slots (issue 10, defect 4): concurrency is Σ capacity ÷ agents exactly, view → staffing → alerts.

METRICS.md: "3 agents with capacities 2, 3, 3 are 8 slots and need 3 agents, not 4". The float mean
2.6666666666666665 is below 8/3, so reading it made 7 slots of those agents and asked for a fourth;
`staffing_gap` fired with exactly enough staff. Views here are built by the real QueueMerger, so the
staffing inputs are read from what the scorer publishes (the integers `slots_capacity` and
`agents_serving`, and the float `concurrency` beside them).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core import erlang
from services.core.agents import AgentLive
from services.core.alert_config import Thresholds
from services.core.alert_judging import judge
from services.core.alert_signals import signals_from_view
from services.core.alerts import AlertEngine
from services.core.buckets import ARRIVAL, Bucket, Fact
from services.core.figures import QueueView
from services.core.merge import QueueMerger
from services.core.scope import Scope, queue_total

QUEUE = "presales"
SCOPE = Scope("acme", "acme-tb", "taobao", QUEUE)
NOW = 7_200_000  # on every window's grid: the 15m window spans exactly 900 s
AHT_S = 300
GAP = Thresholds().staffing_gap  # 80% within 30 s, occupancy ≤ 85%


def floor_view(capacities: list[int], arrivals_15m: int) -> QueueView:
    """The queue view of a floor whose on-duty agents have `capacities`, with `arrivals_15m` chats
    opened a second ago and one chat closed after AHT_S of handling (the measured 1h AHT)."""
    merger = QueueMerger(1000)
    n = len(capacities)
    merger.put_agents("a", 0, SCOPE, AgentLive(online=n, available=n, serving=n, slots_capacity=sum(capacities),
                                               known=n))
    ts = NOW - 1000
    bucket = Bucket()
    for _ in range(arrivals_15m):
        bucket.apply(Fact(ARRIVAL, ts, QUEUE), 1)
    bucket.apply(Fact("closed_resolved", ts, QUEUE, AHT_S * 1000), 1)
    merger.put_bucket("c", 0, SCOPE, ts - ts % 1000, bucket)
    return merger.views(NOW)[queue_total(QUEUE)]


def slots_needed(arrivals_15m: int) -> int:
    """The smallest slot count meeting the staffing_gap targets at λ = arrivals per 15 min × 4 per hour."""
    return erlang.required_agents(4 * arrivals_15m, AHT_S, 1, GAP.sl_target, GAP.sl_seconds, GAP.max_occupancy).slots


def most_arrivals_carried_by(slots: int) -> int:
    """The most arrivals in 15 minutes that `slots` chat slots carry within the targets."""
    lo, hi = 0, 1
    while slots_needed(hi) <= slots:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # slots_needed(lo) ≤ slots < slots_needed(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if slots_needed(mid) <= slots else (lo, mid)
    return lo


def test_capacities_2_3_3_are_8_slots_need_3_agents_and_no_gap() -> None:
    arrivals = most_arrivals_carried_by(8)
    assert slots_needed(arrivals) == 8  # the load needs every one of the 8 slots
    view = floor_view([2, 3, 3], arrivals)
    assert (view["live"]["slots_capacity"], view["live"]["agents_serving"]) == (8, 3)
    s = signals_from_view(view)
    assert s.required_agents == 3 and s.agents_staffing == 3 and s.staffing_gap == 0
    assert judge("staffing_gap", s, Thresholds()).kind == "clear"
    engine = AlertEngine()
    changes = [a for t in range(0, 300_000, 10_000) for a in engine.evaluate({queue_total(QUEUE): s}, NOW + t)]
    assert [a for a in changes if a.rule == "staffing_gap"] == []


def test_overload_only_at_rho_of_one_with_a_fractional_mean() -> None:
    # 8 slots of capacities 2, 3, 3 carry a load of 7.5 Erlangs at ρ = 15/16: not an overload (the float
    # mean made them 7 whole slots, and 7.5 ≥ 7 was reported as one).
    c = Fraction(8, 3)
    now = erlang.projected(3, c, 90, 300, 30)  # A = 90/h × 300 s = 7.5
    assert not now.overload and now.utilization == 7.5 / 8
    assert now.service_level == erlang.service_level(8, 7.5, 300, 30)
    full = erlang.projected(3, c, 96, 300, 30)  # A = 8: ρ = 1
    assert full.overload and full.utilization == 1.0
    # A configured fractional mean (3 × 2.5 = 7.5 slots, 7 whole ones) with A = 7.2: overload is
    # reported exactly when the utilization it states reaches 1 (it was 0.96 beside "overload").
    half = erlang.projected(3, 2.5, 86.4, 300, 30)
    assert half.overload and half.utilization is not None and half.utilization >= 1


@pytest.fixture
async def api_233() -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    arrivals = most_arrivals_carried_by(8)
    store = ViewStore("unused:9092", "unused")
    store.views[queue_total(QUEUE)] = floor_view([2, 3, 3], arrivals)
    store.caught_up.set()
    app = create_app(ApiSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c, arrivals


async def test_api_staffing_for_capacities_2_3_3(api_233: tuple[httpx.AsyncClient, int]) -> None:
    client, arrivals = api_233
    body = (await client.get("/v1/staffing", params={
        "queue": QUEUE, "sl_target": GAP.sl_target, "sl_seconds": GAP.sl_seconds, "max_occupancy": GAP.max_occupancy,
    })).json()
    load = 4 * arrivals * AHT_S / 3600
    assert body["required_agents"] == 3
    assert body["inputs"]["concurrency_exact"] == "8/3" and body["inputs"]["slots_on_duty"] == 8
    # Projected on the 8 real slots of the 3 agents on duty, and utilization on the same 8.
    assert body["projected_sl"] == pytest.approx(erlang.service_level(8, load, AHT_S, GAP.sl_seconds), abs=1e-12)
    assert body["utilization"] == pytest.approx(load / 8, abs=1e-12)
    assert body["overload"] is False


async def test_erlang_calculator_takes_an_exact_fraction(api_233: tuple[httpx.AsyncClient, int]) -> None:
    client, arrivals = api_233
    params: dict[str, Any] = {"arrivals_per_hour": 4 * arrivals, "aht_s": AHT_S, "sl_target": GAP.sl_target,
                              "sl_seconds": GAP.sl_seconds, "max_occupancy": GAP.max_occupancy}
    body = (await client.get("/v1/staffing/erlang", params={**params, "concurrency": "8/3"})).json()
    assert body["slots"] == 8 and body["required_agents"] == 3
    assert (await client.get("/v1/staffing/erlang", params={**params, "concurrency": "5/2"})).json()[
        "required_agents"] == 4  # ⌈8 / 2.5⌉
    assert (await client.get("/v1/staffing/erlang", params={**params, "concurrency": "x"})).status_code == 422
    assert (await client.get("/v1/staffing/erlang", params={**params, "concurrency": "3/0"})).status_code == 422


def _terminates(q: Fraction) -> bool:
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


@given(capacities=st.lists(st.integers(min_value=1, max_value=6), min_size=2, max_size=9), fill=st.integers(0, 3))
@example(capacities=[2, 3, 3], fill=0)
@settings(max_examples=120, deadline=None)
def test_a_floor_with_enough_slots_has_no_gap(capacities: list[int], fill: int) -> None:
    """Mixed capacities with a non-terminating mean: at the most load their slots carry (and a little
    less), the agents on duty are enough, and required_agents is ⌈slots needed ÷ (Σ capacity ÷ agents)⌉."""
    n, total = len(capacities), sum(capacities)
    assume(not _terminates(Fraction(total, n)))
    arrivals = max(0, most_arrivals_carried_by(total) - fill)
    needed = slots_needed(arrivals)
    s = signals_from_view(floor_view(capacities, arrivals))
    expected = 0 if arrivals == 0 else math.ceil(Fraction(needed * n, total))
    assert s.required_agents == expected
    assert s.required_agents is not None and s.required_agents <= n
    assert s.staffing_gap is not None and s.staffing_gap <= 0
    assert judge("staffing_gap", s, Thresholds()).kind == "clear"
