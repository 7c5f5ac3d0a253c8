"""The scorer's Prometheus metrics: pipeline counters, and the queue figures of its views.

Queue figures are exported by the worker that owns the queue in stage 2, so no figure is
exported twice. Labels: queue, tenant, shop, platform, where '*' means "all" (a roll-up):
`shop="*"` rows are queue totals; sum over `shop!="*"` rows to aggregate yourself.
A figure that is null (no data) is absent, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.core.figures import LiveFigures, QueueView, WindowFigures
from services.core.privacy import shown_agent_id
from services.core.scope import AGENT_PREFIX, Scope, is_agent_scope

LABELS: Final = ["queue", "tenant", "shop", "platform"]

Value = float | None  # a figure; None = no data (no series)

# (metric name, help, getter from the view's "live" figures)
LIVE_GAUGES: Final[tuple[tuple[str, str, Callable[[LiveFigures], Value]], ...]] = (
    ("floorwatch_queue_unanswered", "Open conversations with a customer message and no human reply yet",
     lambda v: v["unanswered"]),
    ("floorwatch_queue_unassigned", "Unanswered conversations no agent is assigned to", lambda v: v["unassigned"]),
    ("floorwatch_queue_awaiting_reply", "Open conversations whose buyer waits for a reply",
     lambda v: v["awaiting_reply"]),
    ("floorwatch_queue_oldest_wait_seconds", "Longest current wait among awaiting_reply", lambda v: v["oldest_wait_s"]),
    ("floorwatch_queue_wait_p50_seconds", "Median current wait among awaiting_reply", lambda v: v["wait_p50_s"]),
    ("floorwatch_queue_wait_p90_seconds", "90th percentile current wait among awaiting_reply",
     lambda v: v["wait_p90_s"]),
    ("floorwatch_queue_open_conversations", "Conversations opened and not closed", lambda v: v["open"]),
    ("floorwatch_queue_agents_online", "Agents whose last status is not offline", lambda v: v["agents_online"]),
    ("floorwatch_queue_agents_available", "Online agents with a free chat slot", lambda v: v["agents_available"]),
    ("floorwatch_queue_agents_away", "Agents whose status is away", lambda v: v["agents_away"]),
    ("floorwatch_queue_slots_capacity", "Chat slots of online or busy agents", lambda v: v["slots_capacity"]),
    ("floorwatch_queue_slots_active", "Active chats of online or busy agents", lambda v: v["slots_active"]),
    ("floorwatch_queue_slot_utilization_ratio", "slots_active / slots_capacity", lambda v: v["slot_utilization"]),
)


DistStat = Literal["count", "mean_s", "p50_s", "p90_s", "max_s"]  # figures.DistSummary's keys
ReplyStat = Literal["count", "mean_s", "p50_s", "p90_s", "max_s", "slow"]  # figures.ReplySummary's


def _frt(stat: DistStat) -> Callable[[WindowFigures], Value]:
    return lambda w: w["frt"][stat]


def _reply(stat: ReplyStat) -> Callable[[WindowFigures], Value]:
    return lambda w: w["reply"][stat]


def _service_levels(w: WindowFigures) -> Iterable[tuple[str, Value]]:
    # One series per threshold X the queue measures (configuration per queue: SL_THRESHOLDS_S).
    return w["sl"].items()


# (metric name, help, extra label name or None, {label value: getter from a window's figures}, or a
# function giving (label value, value) pairs when the label values depend on the view)
Getters = dict[str, Callable[[WindowFigures], Value]] | Callable[[WindowFigures], Iterable[tuple[str, Value]]]
WINDOW_GAUGES: Final[tuple[tuple[str, str, str | None, Getters], ...]] = (
    ("floorwatch_queue_arrivals", "Conversations opened in the window", None, {"": lambda w: w["arrivals"]}),
    # Rates divide by the span the window actually covers (METRICS.md), never by its nominal width.
    ("floorwatch_queue_arrivals_per_minute", "Conversations opened per minute: arrivals / the window's span", None,
     {"": lambda w: w["arrivals_per_min"]}),
    ("floorwatch_queue_window_span_seconds", "Event time the window covers: W to W + W/60 (its edge on a W/60 grid)",
     None, {"": lambda w: w["span_s"]}),
    ("floorwatch_queue_frt_seconds", "First response time in the window", "stat",
     {"mean": _frt("mean_s"), "p50": _frt("p50_s"), "p90": _frt("p90_s"), "max": _frt("max_s")}),
    ("floorwatch_queue_frt_samples", "First responses in the window", None, {"": _frt("count")}),
    ("floorwatch_queue_reply_seconds", "Reply time in the window", "stat",
     {"mean": _reply("mean_s"), "p50": _reply("p50_s"), "p90": _reply("p90_s"), "max": _reply("max_s")}),
    ("floorwatch_queue_reply_samples", "Human replies that cleared a wait in the window", None, {"": _reply("count")}),
    ("floorwatch_queue_slow_replies", "Replies slower than 100 s in the window", None, {"": _reply("slow")}),
    ("floorwatch_queue_service_level_ratio", "Answered within the threshold / left unanswered", "threshold_s",
     _service_levels),
    ("floorwatch_queue_left_unanswered", "Conversations that left the unanswered state (answered or abandoned)",
     None, {"": lambda w: w["left_unanswered"]}),
    ("floorwatch_queue_abandoned", "Abandoned conversations in the window", None, {"": lambda w: w["abandoned"]}),
    ("floorwatch_queue_abandon_rate_ratio", "Abandoned / left unanswered", None, {"": lambda w: w["abandon_rate"]}),
    ("floorwatch_queue_aht_seconds", "Mean handle time of closed, agent-handled conversations", None,
     {"": lambda w: w["aht_s"]}),
    ("floorwatch_queue_transfer_rate_ratio", "Transfers out / opened", None, {"": lambda w: w["transfer_rate"]}),
    ("floorwatch_queue_self_service_rate_ratio", "Closed bot_resolved / closed", None,
     {"": lambda w: w["self_service_rate"]}),
    ("floorwatch_queue_resolution_rate_ratio", "Closed resolved or bot_resolved / closed", None,
     {"": lambda w: w["resolution_rate"]}),
    ("floorwatch_queue_csat_mean_score", "Mean CSAT score (1-5)", None, {"": lambda w: w["csat"]["mean"]}),
    ("floorwatch_queue_csat_satisfied_ratio", "Share of CSAT scores >= 4", None,
     {"": lambda w: w["csat"]["satisfied_share"]}),
    ("floorwatch_queue_conversion_rate_ratio", "Conversations with an order / conversations with a human reply", None,
     {"": lambda w: w["conversion_rate"]}),
    ("floorwatch_queue_platform_rule_met_ratio",
     "Waits answered within the platform's reply-time rule / waits it counts, misses included: answered late, "
     "closed unanswered, still waiting past the limit (JD first reply 30 s; PDD/Taobao/Tmall every reply 180 s)",
     None, {"": lambda w: w["platform_rule"]["met_rate"]}),
    ("floorwatch_queue_platform_rule_counted",
     "Waits for a human reply the platform's reply-time rule counts in the window (by the time of their outcome)",
     None, {"": lambda w: w["platform_rule"]["counted"]}),
    ("floorwatch_queue_answer_question_ratio", "Agent messages / customer messages", None,
     {"": lambda w: w["answer_question_ratio"]}),
)


class ViewsCollector(Collector):
    """Exports the latest views this worker computed (a callable returns them at scrape time).

    The worker serves `render()`: the same series written straight as text, several times faster
    than building metric families (a large floor has hundreds of thousands of agent series).
    `collect()` gives the same series through prometheus_client, for registries and tests.
    """

    def __init__(self, views: Callable[[], Iterable[QueueView]]) -> None:
        self._views = views

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in VIEW_FAMILIES}
        for family, base, extra, value in view_samples(list(self._views())):
            families[family].add_metric([*base, *extra], value)
        yield from families.values()

    def render(self, names: frozenset[str] | None = None) -> bytes:
        """The series as text; with `names` (a scrape's `name[]`), only those families."""
        lines: dict[str, list[str]] = {
            name: [] for name, _doc, _labels in VIEW_FAMILIES if names is None or name in names
        }
        # A large floor's scrape is ~150k series of a few thousand views: each view's labels are written once
        # (a view's samples come together, with one `base`), and each family's few further labels once a call.
        tails: dict[tuple[str, tuple[str, ...]], str] = {}
        last_base: tuple[str, ...] = ()
        prefix = ""
        for family, base, extra, value in view_samples(list(self._views()), names):
            if base is not last_base:
                last_base = base
                prefix = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(_LABEL_NAMES[family], base, strict=False))
            tail = tails.get((family, extra))
            if tail is None:
                tail = tails[(family, extra)] = "".join(
                    f',{n}="{_escape(v)}"' for n, v in zip(_LABEL_NAMES[family][len(base):], extra, strict=True))
            lines[family].append(f"{family}{{{prefix}{tail}}} {_number(value)}\n")
        out: list[str] = []
        for name, doc, _labels in VIEW_FAMILIES:
            if name not in lines:
                continue
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
            out.extend(lines[name])
        return "".join(out).encode()


def _number(value: float) -> str:
    if -math.inf < value < math.inf:  # the common case first (NaN compares false)
        return repr(value)
    if value != value:
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


# (metric name, help, Signals attribute): the alert rules' own readings, on queue totals and shops.
SIGNAL_GAUGES: Final = (
    ("floorwatch_queue_load_ratio", "Offered load / chat slots staffed (rho), 5m arrivals x 1h AHT", "rho"),
    ("floorwatch_queue_offered_load_erlangs", "Arrivals per second x handle time (chats in progress needed)",
     "load_erlangs"),
    ("floorwatch_queue_required_agents", "Agents needed now for the service-level target (Erlang C, slots)",
     "required_agents"),
    ("floorwatch_queue_agents_staffing", "Agents online or busy in the queue", "agents_staffing"),
    ("floorwatch_queue_time_to_breach_seconds", "Seconds until the oldest buyer breaks the platform reply rule",
     "time_to_breach_s"),
    # On the shop's scope (queue "*"): the platform standing's budget (docs/scorecard.md).
    ("floorwatch_platform_rule_misses_left", "Misses left today before the shop's platform rule rate falls under "
     "target (below 0: the day is lost)", "budget_misses_left"),
    ("floorwatch_platform_rule_budget", "The day's whole miss budget of the shop's platform rule (projected)",
     "budget_total"),
)


class SignalsCollector(Collector):
    def __init__(self, signals: Callable[[], Iterable[tuple[Scope, Any]]]) -> None:
        self._signals = signals

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = list(self._signals())
        for name, doc, attr in SIGNAL_GAUGES:
            fam = GaugeMetricFamily(name, doc, labels=LABELS)
            for scope, sig in readings:
                value = getattr(sig, attr)
                if value is not None:
                    fam.add_metric([scope.queue, scope.tenant, scope.shop_id, scope.platform], float(value))
            yield fam


ALERT_LABELS: Final = ["alert_id", "rule", "severity", "queue", "tenant", "shop", "platform"]


class AlertsCollector(Collector):
    """Open floor alerts, for Prometheus to hand to Alertmanager with no threshold defined twice."""

    def __init__(self, alerts: Callable[[], Iterable[Any]]) -> None:
        self._alerts = alerts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        alerts = list(self._alerts())
        firing = GaugeMetricFamily("floorwatch_alert_firing", "1 while a floor alert is firing", labels=ALERT_LABELS)
        value = GaugeMetricFamily(
            "floorwatch_alert_value", "The firing alert's value when it fired (or escalated)", labels=ALERT_LABELS
        )
        current = GaugeMetricFamily(
            "floorwatch_alert_current_value", "The firing alert's latest reading (as the engine judged it)",
            labels=ALERT_LABELS,
        )
        threshold = GaugeMetricFamily("floorwatch_alert_threshold", "The firing alert's threshold", labels=ALERT_LABELS)
        breach = GaugeMetricFamily(
            "floorwatch_alert_time_to_breach_seconds", "Seconds until the platform reply rule breaks at this rate",
            labels=ALERT_LABELS,
        )
        info = GaugeMetricFamily(
            "floorwatch_alert_info", "A firing alert's summaries", labels=["alert_id", "summary_zh", "summary_en"]
        )
        for a in alerts:
            labels = [a.id, a.rule, a.severity, a.queue, a.tenant, a.shop_id, a.platform]
            firing.add_metric(labels, 1.0)
            if a.value is not None:
                value.add_metric(labels, float(a.value))
            if a.current_value is not None:
                current.add_metric(labels, float(a.current_value))
            if a.threshold is not None:
                threshold.add_metric(labels, float(a.threshold))
            if a.time_to_breach_s is not None:
                breach.add_metric(labels, float(a.time_to_breach_s))
            info.add_metric([a.id, a.summary_zh, a.summary_en], 1.0)
        yield from (firing, value, current, threshold, breach, info)


AGENT_LABELS: Final = ["agent", "tenant", "shop", "platform"]
# (metric name, help, getter from an agent view's window)
AGENT_WINDOW_GAUGES: Final[tuple[tuple[str, str, Callable[[WindowFigures], Value]], ...]] = (
    ("floorwatch_agent_chats_handled", "Conversations closed while assigned to the agent", lambda w: w["closed"]),
    ("floorwatch_agent_frt_mean_seconds", "The agent's mean first response time", _frt("mean_s")),
    ("floorwatch_agent_reply_mean_seconds", "The agent's mean reply time", _reply("mean_s")),
    ("floorwatch_agent_messages_sent", "Messages the agent sent", lambda w: w["messages"]["agent"]),
    ("floorwatch_agent_answer_question_ratio", "The agent's messages / its buyers' messages",
     lambda w: w["answer_question_ratio"]),
    ("floorwatch_agent_max_concurrent_chats", "Most chats the agent held at once", lambda w: w.get("max_concurrent")),
)


# The agent families read from the agent's own state and its status time (the rest: the tables above).
AGENT_ACTIVE_CHATS: Final = "floorwatch_agent_active_chats"
AGENT_CAPACITY: Final = "floorwatch_agent_capacity"
AGENT_STATUS: Final = "floorwatch_agent_status"
AGENT_STATUS_SECONDS: Final = "floorwatch_agent_status_seconds"

# Every family a view exports: (name, help, label names), in exposition order.
VIEW_FAMILIES: Final[list[tuple[str, str, list[str]]]] = [
    (AGENT_ACTIVE_CHATS, "Chats the agent holds now", AGENT_LABELS),
    (AGENT_CAPACITY, "The agent's chat slots", AGENT_LABELS),
    (AGENT_STATUS, "1 for the agent's current status", [*AGENT_LABELS, "status"]),
    (AGENT_STATUS_SECONDS, "Seconds in each status within the window", [*AGENT_LABELS, "window", "status"]),
    *((n, d, [*AGENT_LABELS, "window"]) for n, d, _ in AGENT_WINDOW_GAUGES),
    *((n, d, LABELS) for n, d, _ in LIVE_GAUGES),
    *((n, d, [*LABELS, "window", *([extra] if extra else [])]) for n, d, extra, _ in WINDOW_GAUGES),
]
_LABEL_NAMES: Final = {name: labels for name, _doc, labels in VIEW_FAMILIES}
AGENT_FAMILIES: Final = frozenset(name for name, _doc, labels in VIEW_FAMILIES if labels[:1] == AGENT_LABELS[:1])
FLOOR_FAMILIES: Final = frozenset(_LABEL_NAMES) - AGENT_FAMILIES  # the views' families that are not agents'

Sample = tuple[str, tuple[str, ...], tuple[str, ...], float]  # (family name, view labels, more labels, value)


def view_samples(views: list[QueueView], names: frozenset[str] | None = None) -> Iterator[Sample]:
    """Every series of `views` (of the families in `names`, when given); a null figure is no series."""
    agents = names is None or not names.isdisjoint(AGENT_FAMILIES)
    for v in views:
        s = v["scope"]
        if is_agent_scope(v["queue"]):
            if agents:
                agent = shown_agent_id(v["queue"][len(AGENT_PREFIX):])  # never a login address as a label
                some = _agent_samples(v, (agent, s["tenant"], s["shop_id"], s["platform"]))
                yield from some if names is None else (x for x in some if x[0] in names)
            continue
        base = (v["queue"], s["tenant"], s["shop_id"], s["platform"])
        live = v["live"]
        for name, _doc, get in LIVE_GAUGES:
            if names is not None and name not in names:
                continue
            value = get(live)
            if value is not None:
                yield name, base, (), float(value)
        for name, _doc, extra, getters in WINDOW_GAUGES:
            if names is not None and name not in names:
                continue
            for window, figures in v["windows"].items():
                pairs = getters(figures) if callable(getters) else ((lb, get(figures)) for lb, get in getters.items())
                for label, value in pairs:
                    if value is not None:
                        yield name, base, (window, label) if extra else (window,), float(value)


def _agent_samples(v: QueueView, base: tuple[str, ...]) -> Iterator[Sample]:
    agent = v.get("agent", {})
    if (active := agent.get("active_chats")) is not None:
        yield AGENT_ACTIVE_CHATS, base, (), float(active)
    if (capacity := agent.get("capacity")) is not None:
        yield AGENT_CAPACITY, base, (), float(capacity)
    if status := agent.get("status"):
        yield AGENT_STATUS, base, (status,), 1.0
    for window, w in v["windows"].items():
        for st, secs in (w.get("status_seconds") or {}).items():
            yield AGENT_STATUS_SECONDS, base, (window, st), float(secs)
        for name, _doc, get in AGENT_WINDOW_GAUGES:
            if (value := get(w)) is not None:
                yield name, base, (window,), float(value)


class RecordTally(Collector):
    """Records and their key and value bytes by one label (`_total` counters), kept as plain ints and rendered at
    scrape: table writes (~3 per event) and published records are counted on the event path, where a Counter's
    inc takes a lock each time. Read at scrape, which runs in the event loop that counts."""

    def __init__(self, registry: CollectorRegistry, label: str, records: tuple[str, str], size: tuple[str, str]
                 ) -> None:
        self.label, self._records, self._size = label, records, size  # (family name without _total, help)
        self.by: dict[str, list[int]] = {}  # label value: [records, bytes]
        registry.register(self)

    def of(self, value: str) -> list[int]:
        """The [records, bytes] tally of `value`, to add to (created at 0)."""
        tally = self.by.get(value)
        if tally is None:
            tally = self.by[value] = [0, 0]
        return tally

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (CounterMetricFamily(*self._records, labels=[self.label]),
                CounterMetricFamily(*self._size, labels=[self.label]))

    def describe(self) -> Iterator[CounterMetricFamily]:  # the names, so that a scrape's `name[]` finds them
        yield from self._families()

    def collect(self) -> Iterator[CounterMetricFamily]:
        records, size = self._families()
        for value, (n, nbytes) in sorted(self.by.items()):
            records.add_metric([value], n)
            size.add_metric([value], nbytes)
        yield records
        yield size


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "floorwatch_scorer_events_total", "Chat events by outcome", ["result"], registry=registry
        )
        self.late_events = Counter(
            "floorwatch_scorer_late_events_total",
            "Events older than the watermark minus the grace period (still applied where the state allows)",
            registry=registry,
        )
        self.dead_letters = Counter(
            "floorwatch_scorer_dead_letters_total", "Records sent to the dead-letter topic", ["reason"],
            registry=registry,
        )
        self.event_age = Histogram(
            "floorwatch_scorer_event_age_seconds", "Wall clock minus event time when the scorer applied an event",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600), registry=registry,
        )
        self.tick_seconds = Histogram(
            "floorwatch_scorer_tick_seconds", "Time to publish one tick of partials or views", ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=registry,
        )
        self.gc_seconds = Counter(
            "floorwatch_scorer_gc_seconds_total", "Time the event loop stood still in Python's cyclic collector",
            ["generation"], registry=registry,
        )
        # With events_total and records_consumed_total: the records and bytes each event costs (make bench).
        self.published = RecordTally(
            registry, "topic", ("floorwatch_scorer_records_published", "Records published to internal topics"),
            ("floorwatch_scorer_bytes_published", "Key and value bytes published to internal topics"))
        # Table writes (Faust's changelog records): at floor x61 more records per event than all of the above.
        self.table_writes = RecordTally(
            registry, "table", ("floorwatch_scorer_state_writes", "Table records written to their changelog topics"),
            ("floorwatch_scorer_state_write_bytes", "Key and value bytes of the table records written"))
        self.consumed = Counter(
            "floorwatch_scorer_records_consumed_total", "Records consumed, by topic", ["topic"], registry=registry,
        )
        self.partials_handed = Counter(
            "floorwatch_scorer_partials_in_total",
            "Partials stage 2 merged (each of a bundle): taken as stage 1 in this worker sent them, or decoded",
            ["how"],
            registry=registry,
        )
        self.views_published_at = Gauge(
            "floorwatch_scorer_views_published_timestamp_seconds", "When this worker last published queue views",
            registry=registry,
        )
        self.rebuilds = Counter(
            "floorwatch_scorer_state_rebuilds_total", "In-memory aggregates rebuilt from tables after a rebalance",
            ["stage"], registry=registry,
        )
        # Every outcome exists from the start, so increase() sees the first one; its child is kept (one per event).
        self.outcome = {r: self.events.labels(r)
                        for r in ("applied", "duplicate", "forwarded", "too_old", "dead_letter")}
        self.dead_letters.labels("invalid_event")
        self.partials_narrowed = Gauge(
            "floorwatch_scorer_partials_narrowed",
            "Partials narrower than the bucket stage 2 held for their time: after a rebuild of stage 1, which then "
            "sends all it holds (the wide one is dropped; services/core/bucket_widths.py)", registry=registry,
        )
        self.partials_swept = Counter(
            "floorwatch_scorer_partials_swept_total",
            "Partials stage 2 held and dropped at the end of a source's whole re-send after a rebuild, as that "
            "source no longer holds them (a change of them lost in a crash; services.core.wire, SLOT_RESEND_*)",
            registry=registry,
        )
        self.conversations_cached = Gauge(
            "floorwatch_scorer_conversations_cached", "Conversation states held in memory", registry=registry
        )
        self.consumer_lag = Gauge(
            "floorwatch_scorer_consumer_lag", "Records in the partition not yet scored (high watermark - next offset)",
            ["topic", "partition"], registry=registry,
        )
        # The internal topics' lag apart from the events' (whose sum the ScorerConsumerLagGrowing rule reads): a
        # backlog of partials delays every view the worker merges while the events show no lag at all.
        self.stage_lag = Gauge(
            "floorwatch_scorer_stage_lag",
            "Records of the scorer's own topics not yet consumed (high watermark - next offset): stage=queues the "
            "partials bundles stage 2 merges, stage=agents the agent changes", ["stage", "partition"],
            registry=registry,
        )
        self.evicted = Counter(
            "floorwatch_scorer_conversations_evicted_total", "Closed conversations removed after retention",
            registry=registry,
        )
        self.agents_evicted = Counter(
            "floorwatch_scorer_agents_evicted_total",
            "Agents removed after AGENT_RETENTION_S idle, offline and holding no chat", registry=registry,
        )


SCORE_LABELS: Final = ["agent", "tenant", "shop", "platform"]


# `/metrics?agents=`: a scrape of the agents' own series only ("only": their views' families and the scorecard's),
# or of everything else ("without"). A large floor's scrape is ~94 % agents' series, whose views are rebuilt every
# AGENT_VIEW_REFRESH_S: Prometheus scrapes them as a job of their own, less often (deploy/prometheus).
AGENT_SERIES_CHOICES: Final = ("only", "without")


def exposition(floor: CollectorRegistry, agents: CollectorRegistry, views: ViewsCollector,
               names: frozenset[str] | None = None, agent_series: str | None = None
               ) -> tuple[bytes, Callable[[], bytes]]:
    """One scrape: the registries' part (`floor`: the pipeline's and the floor's series; `agents`: the agents'
    scorecard), rendered now, in the caller's thread (the event loop: the stages' state is read as it stands), and
    the views' part as a call to make in a thread (views are replaced whole, never changed in place). `names`
    (`?name[]=`) keeps those families only; `agent_series` is `?agents=` (AGENT_SERIES_CHOICES) or None (all)."""
    if agent_series is not None and agent_series not in AGENT_SERIES_CHOICES:
        raise ValueError(f"agents={agent_series!r}: one of {', '.join(AGENT_SERIES_CHOICES)}, or none for all")
    parts = [r for r, is_agents in ((floor, False), (agents, True))
             if agent_series is None or (agent_series == "only") == is_agents]
    head = b"".join(generate_latest(r if names is None else r.restricted_registry(names)) for r in parts)
    view_names = names
    if agent_series is not None:
        chosen = AGENT_FAMILIES if agent_series == "only" else FLOOR_FAMILIES
        view_names = chosen if names is None else chosen & names
    return head, lambda: views.render(view_names)


class ScorecardCollector(Collector):
    """Today's scorecard per agent and platform (shop): `floorwatch_agent_score` (absent when null: not enough
    data) and `floorwatch_agent_chats_handled_today`. Labels bounded by agents x their shops; the agent id as
    shown (never an address). `scores` yields (the agent's scope, score, chats)."""

    def __init__(self, scores: Callable[[], Iterable[tuple[Scope, float | None, int]]]) -> None:
        self._scores = scores

    def collect(self) -> Iterator[GaugeMetricFamily]:
        score = GaugeMetricFamily("floorwatch_agent_score", "The agent's scorecard score today (0-100) on the "
                                  "platform, weights renormalised over KPIs with data", labels=SCORE_LABELS)
        chats = GaugeMetricFamily("floorwatch_agent_chats_handled_today", "Conversations the agent replied to today",
                                  labels=SCORE_LABELS)
        for scope, value, n in self._scores():
            labels = [shown_agent_id(scope.queue[len(AGENT_PREFIX):]), scope.tenant, scope.shop_id, scope.platform]
            chats.add_metric(labels, float(n))
            if value is not None:
                score.add_metric(labels, float(value))
        yield score
        yield chats
