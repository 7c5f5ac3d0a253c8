"""The queue view's shape (issue 14): what stage 2 publishes, the API serves and the alerts read.

TypedDicts, so a view stays the plain dict it travels as (the wire format is the JSON of these dicts)
while mypy checks every reader's keys. Producers: `buckets.window_figures` and `buckets.with_span`
(`WindowFigures`), `dist.Dist.summary` (`DistSummary`), `agents.AgentTimeline.window`
(`AgentWindowFigures`, added to an agent's windows), `merge.live_figures` (`LiveFigures`),
`merge.QueueMerger.views` (`QueueView`) and `alert_judging.judged` (`Judged`, added by the scorer).
None = no data, never 0 for unknown. `tests/unit/test_figures.py` holds these to what is produced.

No `from __future__ import annotations` here: Python 3.11 reads `NotRequired` (the `__optional_keys__`
the test checks) only from evaluated annotations.
"""

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict


class DistSummary(TypedDict):
    """A duration distribution's summary (`dist.Dist.summary`): seconds; null with no samples."""

    count: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None
    max_s: float | None


class ReplySummary(DistSummary):
    slow: int | None  # replies slower than SLOW_REPLY_S; null with no reply


class CsatFigures(TypedDict):
    mean: float | None
    satisfied_share: float | None
    participation: float | None
    count: int


class PlatformRuleFigures(TypedDict):
    """The waits the platform's reply-time rule counts, and those answered within its limit."""

    counted: int
    met: int
    met_rate: float | None


class MessageCounts(TypedDict):
    customer: int
    agent: int


class AgentWindowFigures(TypedDict):
    """An agent's own figures over a window (`agents.AgentTimeline.window`)."""

    status_seconds: dict[str, float]  # status -> seconds in it
    max_concurrent: int | None


class WindowFigures(TypedDict):
    """One rolling window's figures (`buckets.window_figures`); an agent's windows add its
    `AgentWindowFigures`."""

    arrivals: int
    arrivals_per_min: float  # arrivals over the span covered (`span_s`), never the nominal width
    span_s: float
    frt: DistSummary
    reply: ReplySummary
    sl: dict[str, float | None]  # threshold X (seconds, as a string) -> answered within X / left unanswered
    left_unanswered: int
    abandoned: int
    abandon_rate: float | None
    patience_s: float | None
    closed: int
    aht_s: float | None
    transfer_rate: float | None
    self_service_rate: float | None
    resolution_rate: float | None
    csat: CsatFigures
    conversion_rate: float | None
    replied_convs: int
    platform_rule: PlatformRuleFigures
    answer_question_ratio: float | None
    messages: MessageCounts
    # An agent's own view only (`AgentWindowFigures`).
    status_seconds: NotRequired[dict[str, float]]
    max_concurrent: NotRequired[int | None]


class LiveFigures(TypedDict):
    """The view's figures now (`merge.live_figures`): counts are numbers (0 when nothing is open); the
    waits are null when nobody waits, the agent figures when no agent data reached the view."""

    unanswered: int
    unassigned: int
    assigned: int
    awaiting_reply: int
    oldest_wait_s: float | None
    wait_p50_s: float | None
    wait_p90_s: float | None
    open: int
    agents_online: int | None
    agents_available: int | None
    agents_away: int | None
    agents_serving: int | None
    slots_capacity: int | None
    slots_active: int | None
    slot_utilization: float | None
    concurrency: float | None


class ViewScope(TypedDict):
    """Where the view's figures come from; "*" (`scope.ALL`) in a part: all of them (a roll-up)."""

    tenant: str
    shop_id: str
    platform: str


class AgentFigures(TypedDict):
    """An agent's own state (`agents.AgentState.summary` without its history), on its view."""

    status: str | None
    capacity: int
    queues: list[str]
    active_chats: int


Level = Literal["critical", "warning", "ok"]


class Judged(TypedDict):
    """The alert rules' reading of a view, published with it by the scorer (`alert_judging.judged`)."""

    signals: dict[str, Any]  # alert_signals.Signals.to_json()
    levels: dict[str, Level | None]  # per rule
    values: dict[str, float | None]  # per rule


class QueueView(TypedDict):
    """One published view: a queue (or an agent's pseudo-queue `@agent:<id>`) in one scope."""

    queue: str
    scope: ViewScope
    as_of: str  # ISO 8601, UTC, milliseconds
    live: LiveFigures
    windows: dict[str, WindowFigures]  # window name (config.WINDOWS) -> its figures
    agent: NotRequired[AgentFigures]  # an agent's own view only
    judged: NotRequired[Judged]  # added by the scorer to the queue views it publishes


# --- reading a view that may have come over JSON ---------------------------------------------------------

ViewLike = QueueView | Mapping[str, Any]
"""A view built in-process, or one read back from JSON by a reader that checks each value it reads. A
reader's `.get("key")` on it is still checked against the TypedDicts (a typo is a mypy error)."""


def live_of(view: ViewLike) -> LiveFigures | Mapping[str, Any]:
    """The view's live figures, or none (empty) if it has no such section."""
    live = view.get("live")
    return live if isinstance(live, Mapping) else {}


def windows_of(view: ViewLike) -> dict[str, WindowFigures] | Mapping[str, Any]:
    """The view's windows by name, or none (empty) if it has no such section."""
    windows = view.get("windows")
    return windows if isinstance(windows, Mapping) else {}


def window_of(windows: dict[str, WindowFigures] | Mapping[str, Any], name: str) -> WindowFigures | Mapping[str, Any]:
    """One window's figures, or none (empty) if the view has no such window."""
    window = windows.get(name)
    return window if isinstance(window, Mapping) else {}
