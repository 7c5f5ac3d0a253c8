"""AgentTimeline's window queries equal a direct walk over the status history."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.core.agents import STATUSES, AgentTimeline


def walk(history: list[tuple[int, str | None, int]], now: int, width: int) -> dict[str, Any]:
    """The obvious definition: each entry lasts until the next one (the last until now)."""
    lo = now - width
    ms = dict.fromkeys(STATUSES, 0)
    most: int | None = None
    for i, (ts, status, active) in enumerate(history):
        end = history[i + 1][0] if i + 1 < len(history) else now
        if (end <= lo and i + 1 < len(history)) or ts > now:
            continue  # over before the window began, or not yet begun
        overlap = min(end, now) - max(ts, lo)
        if status in ms and overlap > 0:
            ms[status] += overlap
        most = active if most is None else max(most, active)
    return {"status_seconds": {s: v / 1000 for s, v in ms.items()}, "max_concurrent": most}


entries = st.tuples(st.integers(0, 10_000), st.sampled_from([*STATUSES, None]), st.integers(0, 5))


@given(st.lists(entries, max_size=30), st.integers(-1_000, 12_000), st.integers(1, 12_000))
def test_window_equals_the_walk(raw: list[tuple[int, str | None, int]], now: int, width: int) -> None:
    history = sorted(raw, key=lambda e: e[0])
    assert AgentTimeline(history).window(now, width) == walk(history, now, width)


def test_a_hand_worked_hour() -> None:
    history = [(0, "online", 1), (60_000, "away", 0), (90_000, "online", 2), (200_000, "offline", 0)]
    got = AgentTimeline(history).window(150_000, 100_000)  # (50 s, 150 s]
    assert got == {"status_seconds": {"online": 70.0, "busy": 0.0, "away": 30.0, "offline": 0.0},
                   "max_concurrent": 2}
