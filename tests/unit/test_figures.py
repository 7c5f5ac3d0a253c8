"""The view's types (services/core/figures.py) say what the producers make: a view built by `QueueMerger`
has every key its TypedDicts require, no key they do not declare, and values of the declared types, at
every level: a queue view with every figure measured, one with none, an agent's view, and a queue view
with the scorer's `judged`. So the types cannot drift from the producer (nor the producer from them)."""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints, is_typeddict

from services.api.agents import agent_view
from services.api.stream import StreamHub
from services.core import buckets as bk
from services.core.agents import AgentLive, AgentState
from services.core.alert_config import Thresholds
from services.core.alert_judging import judged
from services.core.alert_signals import signals_from_view
from services.core.config import WINDOWS
from services.core.figures import (
    AgentFigures,
    DistSummary,
    Judged,
    LiveFigures,
    QueueView,
    ReplySummary,
    WindowFigures,
)
from services.core.merge import QueueMerger
from services.core.partials import Live
from services.core.scope import Scope, agent_scope, is_agent_scope, queue_total
from services.core.scorecard_report import window_sums
from services.core.staffing import staffing_inputs
from services.core.waits import LiveSums
from services.scorer.metrics import ViewsCollector

NOW = 1_800_000_000_000
BUCKET_MS = 1000
SHOP = Scope("acme", "acme-jd", "jd", "presales")
AGENT = Scope("acme", "acme-jd", "jd", agent_scope("a1"))


def shape_errors(value: object, tp: Any, path: str) -> list[str]:
    """Where `value` differs from the type `tp` (a TypedDict checked key by key, recursively)."""
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a {tp.__name__}"]
        declared = get_type_hints(tp)  # NotRequired[...] stripped; which keys are optional: __optional_keys__
        out = [f"{path}.{k}: missing ({tp.__name__} requires it)" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{path}.{k}: not declared in {tp.__name__}" for k in sorted(value.keys() - declared.keys())]
        for k in sorted(value.keys() & declared.keys()):
            out += shape_errors(value[k], declared[k], f"{path}.{k}")
        return out
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return [] if any(not shape_errors(value, a, path) for a in args) else [f"{path}: {value!r} is not {tp}"]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a dict"]
        key_t, value_t = args
        return [e for k, v in value.items()
                for e in shape_errors(k, key_t, f"{path}[{k!r}]") + shape_errors(v, value_t, f"{path}[{k!r}]")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [e for i, v in enumerate(value) for e in shape_errors(v, args[0], f"{path}[{i}]")]
    if tp is Any:
        return []
    if tp is type(None) or tp is None:
        return [] if value is None else [f"{path}: {value!r} is not None"]
    if tp is float:  # an int is a float too (as for mypy)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a float"]
    if tp in (int, str):
        ok = isinstance(value, tp) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a {tp.__name__}"]
    raise AssertionError(f"{path}: the checker does not know {tp!r}")


def busy_bucket(queue: str, ts: int) -> bk.Bucket:
    """One bucket touching every counter a window reads."""
    b = bk.Bucket()
    for kind, value in [
        (bk.ARRIVAL, 0), (bk.ARRIVAL, 0), (bk.FRT, 8_000), (bk.LEFT, 8_000), (bk.LEFT, -1), (bk.ABANDON_WAIT, 40_000),
        (bk.REPLY, 8_000), (bk.REPLY, 120_000), (bk.CSAT, 5), (bk.CSAT, 2), ("closed_resolved", 56_000),
        ("closed_bot_resolved", -1), (bk.TRANSFER_OUT, 0), (bk.MSG_CUSTOMER, 0), (bk.MSG_AGENT, 0), (bk.LAST_REPLY, 0),
        (bk.CONVERTED, 0),
    ]:
        b.apply(bk.Fact(kind, ts, queue, value), 1)
    b.count_rule(True, 1)
    b.count_rule(False, 1)
    return b


def busy_floor() -> QueueMerger:
    merger = QueueMerger(BUCKET_MS)
    ts = NOW - 10_000
    for scope in (SHOP, AGENT):
        merger.put_bucket("c", 0, scope, ts - ts % BUCKET_MS, busy_bucket(scope.queue, ts))
    live = Live(open=3, unanswered=2, unassigned=1, awaiting_reply=2)
    live.waiting[NOW - 90_000] = 1  # past JD's 30 s first-reply limit: a miss still waiting
    live.waiting[NOW - 5_000] = 1
    live.first_waiting[NOW - 90_000] = 1
    merger.put_live("c", 0, SHOP, LiveSums.of(live))
    merger.put_agents("a", 0, SHOP, AgentLive(online=1, available=0, serving=1, slots_capacity=3, slots_active=2,
                                             known=1))
    agent = AgentState()
    agent.apply_status(NOW - 600_000, "s1", "acme", "acme-jd", "jd", "online", 3, ("presales",))
    agent.set_active("c1", True, NOW - 60_000)
    agent.apply_status(NOW - 30_000, "s2", "acme", "acme-jd", "jd", "busy", 3, ("presales",))
    merger.put_agent_state(AGENT, agent.summary())  # what the agent stage publishes
    return merger


def assert_shape(view: object, tp: Any = QueueView) -> None:
    errors = shape_errors(view, tp, "view")
    assert not errors, "\n".join(errors)


def test_a_measured_queue_view_has_exactly_the_declared_keys() -> None:
    views = busy_floor().views(NOW)
    view = views[Scope("acme", "acme-jd", "jd", "presales")]
    assert_shape(view)
    assert "agent" not in view and "judged" not in view
    assert set(view["windows"]) == set(WINDOWS)
    # Measured: the optional figures are numbers here, so their types were checked too.
    w = view["windows"]["5m"]
    assert w["frt"]["p90_s"] is not None and w["reply"]["slow"] == 1 and w["csat"]["mean"] == 3.5
    assert w["platform_rule"]["counted"] == 3  # two outcomes and one buyer still waiting past the limit
    assert view["live"]["oldest_wait_s"] == 90.0 and view["live"]["concurrency"] == 3.0
    for key in views:  # every roll-up too
        assert_shape(views[key])


def test_an_empty_queue_view_has_exactly_the_declared_keys() -> None:
    merger = QueueMerger(BUCKET_MS)
    merger.put_live("c", 0, SHOP, LiveSums(open=1))  # a view with nothing measured: nulls where no data
    view = merger.views(NOW)[queue_total("presales")]
    assert_shape(view)
    assert view["live"]["agents_online"] is None and view["windows"]["1h"]["frt"]["mean_s"] is None


def test_an_agent_view_has_exactly_the_declared_keys() -> None:
    view = busy_floor().views(NOW)[Scope("acme", "acme-jd", "jd", AGENT.queue)]
    assert_shape(view)
    assert set(view["agent"]) == set(AgentFigures.__required_keys__)
    for w in view["windows"].values():  # an agent's windows carry its status time: the NotRequired keys
        assert {"status_seconds", "max_concurrent"} <= w.keys()
        assert w["max_concurrent"] == 1


def test_a_judged_view_has_exactly_the_declared_keys() -> None:
    view = busy_floor().views(NOW)[queue_total("presales")]
    th = Thresholds()
    published: QueueView = {**view, "judged": judged(signals_from_view(view, th), th)}  # as the scorer does
    assert_shape(published)
    assert_shape(published["judged"], Judged)


def test_the_checker_sees_drift() -> None:
    """The checker is not vacuous: a missing key, an undeclared one and a wrong type are each reported."""
    view = busy_floor().views(NOW)[queue_total("presales")]
    live: dict[str, Any] = dict(view["live"])
    del live["open"]
    live["surprise"] = 1
    live["unanswered"] = None
    assert sorted(shape_errors(live, LiveFigures, "live")) == [
        "live.open: missing (LiveFigures requires it)",
        "live.surprise: not declared in LiveFigures",
        "live.unanswered: None is not a int",
    ]
    frt: dict[str, Any] = {**view["windows"]["5m"]["frt"], "slow": 0}
    assert shape_errors(frt, DistSummary, "frt") == ["frt.slow: not declared in DistSummary"]
    assert shape_errors(frt, ReplySummary, "frt") == []
    window: dict[str, Any] = {k: v for k, v in view["windows"]["5m"].items() if k != "csat"}
    assert shape_errors(window, WindowFigures, "w") == ["w.csat: missing (WindowFigures requires it)"]


class Reading(Mapping[str, Any]):
    """A view that notes every key a reader asks of it that its type does not declare (mypy checks a key
    read with `[]`, not one read with `.get`: the defensive readers of views that came over JSON use `.get`)."""

    def __init__(self, data: Mapping[str, Any], tp: Any, path: str, strays: list[str]) -> None:
        self.data, self.tp, self.path, self.strays = data, tp, path, strays

    def _type_of(self, key: str) -> Any:
        if is_typeddict(self.tp):
            declared = get_type_hints(self.tp)
            if key not in declared:
                self.strays.append(f"{self.path}.{key}")
            return declared.get(key, Any)
        return get_args(self.tp)[1] if get_origin(self.tp) is dict else Any

    def __getitem__(self, key: str) -> Any:
        tp = self._type_of(key)
        value = self.data[key]
        for option in get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,):  # X | None: the X
            if isinstance(value, dict) and (is_typeddict(option) or get_origin(option) is dict):
                return Reading(value, option, f"{self.path}.{key}", self.strays)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def metrics_of(view: QueueView) -> bytes:
    return ViewsCollector(lambda: [view]).render()


def test_the_readers_ask_only_for_declared_keys() -> None:
    """Staffing, alert signals, the scorecard's 1h window, the API's agent view, the stream's signals and the
    scorer's metrics read nothing the types do not declare."""
    views = busy_floor().views(NOW)
    th = Thresholds()
    queue = views[queue_total("presales")]
    judged_view: QueueView = {**queue, "judged": judged(signals_from_view(queue, th), th)}
    strays: list[str] = []
    for key, view in [*views.items(), (queue_total("presales"), judged_view)]:
        reading = Reading(view, QueueView, "view", strays)
        staffing_inputs(reading)
        signals_from_view(reading, th)
        StreamHub.signals(cast(QueueView, reading))
        for w in reading["windows"].values():
            window_sums(w)
        if is_agent_scope(key.queue):
            agent_view(cast(QueueView, reading))
        metrics_of(cast(QueueView, reading))
    assert strays == []
    # Not vacuous: a key no type declares is noted.
    Reading(queue, QueueView, "view", strays).get("livee")
    Reading(queue, QueueView, "view", strays)["live"].get("oldest_wait")
    assert strays == ["view.livee", "view.live.oldest_wait"]
