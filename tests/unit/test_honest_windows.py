"""Honest windows (issue 10, defect 6; METRICS.md "Rolling windows").

A window is (now − W, now]; its lower edge may be rounded to the bucket grid only if a bucket is at
most W/60 (1 s for 1m, 5 s for 5m, 15 s for 15m, 60 s for 1h). Every window of every view states the
span it covers (`span_s`) and its per-minute rate divides by that span. Before, "1m" took every 5 s
bucket overlapping it (up to 65 s), "15m" every minute (up to 16 min), and rates divided by W.

The scorer runs as configured by default (the bucket size of `ScorerSettings`), fed events.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.config import WINDOWS
from services.core.figures import QueueView
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer
from services.scorer.settings import ScorerSettings

T = 1_800_000_000_000  # on every grid
BASE = {"tenant": "acme", "shop_id": "acme-tb", "platform": "taobao"}
TOP = queue_total("presales")


def scorer() -> InProcessScorer:
    return InProcessScorer(event_clock=False, bucket_ms=ScorerSettings().bucket_ms)


def opened(n: int, ts: int) -> dict[str, Any]:
    return {**BASE, "event_id": f"o{n}", "type": "conversation.opened", "ts": ts, "conversation_id": f"c{n}",
            "queue": "presales"}


def views_at(now: int, arrivals: list[int]) -> dict[Scope, QueueView]:
    s = scorer()
    s.feed([opened(i, ts) for i, ts in enumerate(arrivals)])
    return s.tick(now)


def test_the_1m_window_is_no_longer_than_61_s() -> None:
    now = T + 3_600_000 + 4_500  # mid-bucket for any bucket of 5 s or more
    w = views_at(now, [now - 63_000, now - 61_500, now - 59_000])[TOP]["windows"]["1m"]
    # (now − 60 s, now] with the edge on a 1 s grid: it starts at now − 60.5 s and covers 60.5 s.
    assert w["arrivals"] == 1
    assert w["span_s"] == 60.5
    assert w["arrivals_per_min"] == pytest.approx(60 / 60.5, rel=1e-12)


def test_the_15m_window_is_no_longer_than_15_min_15_s_and_its_rate_divides_by_its_span() -> None:
    now = T + 7_200_000 + 50_000
    arrivals = [now - 900_000 - 40_000, now - 900_000 - 5_000, now - 600_000, now - 1_000]
    w = views_at(now, arrivals)[TOP]["windows"]["15m"]
    # Edge now − 900 s = T + 6,350 s rounded down to 15 s: T + 6,345 s, a span of 905 s. The window is
    # (edge, now]: the arrival exactly at the edge (now − 905 s) is outside, as (now − W, now] says.
    assert w["span_s"] == 905.0
    assert w["arrivals"] == 2
    assert w["arrivals_per_min"] == pytest.approx(2 * 60 / 905, rel=1e-12)


def test_every_window_of_every_view_states_its_span_and_an_agent_view_uses_the_same_one() -> None:
    now = T + 3_600_000 + 12_345
    s = scorer()
    s.feed([
        {**BASE, "event_id": "s1", "type": "agent.status", "ts": T, "agent_id": "a1", "status": "online",
         "capacity": 3, "queues": ["presales"]},
        {**BASE, "event_id": "s2", "type": "agent.status", "ts": now - 200_000, "agent_id": "a1", "status": "away",
         "capacity": 3, "queues": ["presales"]},
        opened(1, now - 30_000),
    ])
    views = s.tick(now)
    assert views
    for key, view in views.items():
        for name, width in WINDOWS.items():
            w = view["windows"][name]
            assert width / 1000 <= w["span_s"] < width / 1000 * (1 + 1 / 60), (key, name, w["span_s"])
            assert w["arrivals_per_min"] == pytest.approx(w["arrivals"] * 60 / w["span_s"], rel=1e-12)
    agent = views[Scope("acme", "acme-tb", "taobao", "@agent:a1")]["windows"]
    for name in WINDOWS:
        # One definition per view: time per status is taken over the span the window's figures cover.
        assert sum(agent[name]["status_seconds"].values()) == agent[name]["span_s"], name


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3_700_000), max_size=12),
    now_offset=st.integers(min_value=0, max_value=119_999),
)
@settings(max_examples=60, deadline=None)
def test_a_window_counts_what_happened_in_it_and_nothing_older_than_its_grid(
    offsets: list[int], now_offset: int
) -> None:
    now = T + 7_200_000 + now_offset
    arrivals = [now - off for off in offsets]
    view = views_at(now, arrivals)[TOP] if arrivals else None
    for name, width in WINDOWS.items():
        grid = width // 60
        lo = now - width
        edge = lo - lo % grid
        expected = sum(1 for ts in arrivals if edge < ts <= now)  # (edge, now]: the edge itself is out
        if view is None:
            continue
        w = view["windows"][name]
        assert w["arrivals"] == expected, name
        assert w["span_s"] == (now - edge) / 1000, name
        # Everything in (now − W, now] counts; nothing before now − W − W/60 does.
        assert sum(1 for ts in arrivals if lo < ts <= now) <= w["arrivals"] <= sum(
            1 for ts in arrivals if lo - grid < ts <= now)
