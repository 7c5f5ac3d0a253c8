"""The scorer's hand-written exposition of view figures says exactly what prometheus_client would."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.core.figures import QueueView
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import PipelineMetrics, ScorecardCollector, ViewsCollector, _number, exposition
from tests.unit.test_agent_view import T, events


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def floor_views() -> list[QueueView]:
    s = InProcessScorer()
    odd = {"tenant": "ac\"me\\\\", "shop_id": "acme-jd", "platform": "jd"}  # label values that need escaping
    s.feed([*events(), {**odd, "event_id": "o1", "type": "conversation.opened", "ts": T, "conversation_id": "z1",
                        "queue": 'pre"sales'}])
    return list(s.tick(T + 120_000).values())


def test_render_equals_the_client_library() -> None:
    views = floor_views()
    collector = ViewsCollector(lambda: views)
    registry = CollectorRegistry()
    registry.register(collector)
    expected = samples(generate_latest(registry).decode())
    got = samples(collector.render().decode())
    assert len(got) > 100
    assert any(name.startswith("floorwatch_agent_") for name, _ in got)
    assert any(('queue', 'pre"sales') in labels for _, labels in got)
    assert got == expected


def test_every_number_reads_back_as_itself() -> None:
    """The infinities and NaN too (no view has one today; a figure that did must still parse)."""
    for v in (0.0, 3, -2.25, 1 / 3, 1e21, 5e-324, math.inf, -math.inf, math.nan):
        [family] = text_string_to_metric_families(f"# TYPE m gauge\nm {_number(v)}\n")
        got = family.samples[0].value
        assert got == v or (math.isnan(v) and math.isnan(got)), (v, _number(v))


def test_a_scrape_of_some_families_has_exactly_their_series() -> None:
    """`/metrics?name[]=...`: the same series as the whole scrape, of the families asked for only."""
    views = floor_views()
    collector = ViewsCollector(lambda: views)
    whole = samples(collector.render().decode())
    for names in ({"floorwatch_queue_arrivals"}, {"floorwatch_agent_status", "floorwatch_queue_awaiting_reply"}):
        got = samples(collector.render(frozenset(names)).decode())
        assert got and got == {k: v for k, v in whole.items() if k[0] in names}


def test_the_agents_series_and_the_rest_split_a_scrape_in_two() -> None:
    """`/metrics?agents=only` and `?agents=without` (Prometheus's two scorer jobs): together exactly the whole scrape,
    every agent's series in the first and none in the second; `name[]` narrows either."""
    views = floor_views()
    collector = ViewsCollector(lambda: views)
    floor, agents = CollectorRegistry(), CollectorRegistry()
    PipelineMetrics(floor).events.labels("scored").inc(3)
    agents.register(ScorecardCollector(lambda: [(Scope("acme", "acme-jd", "jd", "@agent:a1"), 87.5, 4)]))

    def scrape(names: frozenset[str] | None = None, which: str | None = None) -> dict[Any, float]:
        head, views_part = exposition(floor, agents, collector, names, which)
        return samples((head + views_part()).decode())

    whole, only, without = scrape(), scrape(which="only"), scrape(which="without")
    assert only and without and not only.keys() & without.keys()
    assert {**only, **without} == whole
    assert all(name.startswith("floorwatch_agent_") for name, _ in only)
    assert ("floorwatch_agent_score", (("agent", "a1"), ("platform", "jd"), ("shop", "acme-jd"),
                                       ("tenant", "acme"))) in only
    assert not any(name.startswith("floorwatch_agent_") for name, _ in without)
    assert any(name == "floorwatch_scorer_events_total" for name, _ in without)
    names = frozenset({"floorwatch_agent_status", "floorwatch_queue_awaiting_reply"})
    assert scrape(names, "only") == {k: v for k, v in only.items() if k[0] == "floorwatch_agent_status"}
    assert scrape(names, "without") == {k: v for k, v in without.items() if k[0] == "floorwatch_queue_awaiting_reply"}
    with pytest.raises(ValueError, match="agents='some'"):
        exposition(floor, agents, collector, None, "some")


def test_open_alerts_export_the_value_at_firing_and_the_current_one() -> None:
    from services.core.alert_signals import Signals
    from services.core.alerts import AlertEngine
    from services.scorer.metrics import AlertsCollector

    engine = AlertEngine()
    scope = queue_total("presales")
    engine.evaluate({scope: Signals(oldest_wait_s=120.0, waiting=1)}, T)
    engine.evaluate({scope: Signals(oldest_wait_s=170.0, waiting=1)}, T + 50_000)
    registry = CollectorRegistry()
    registry.register(AlertsCollector(engine.open_alerts))
    got = {name: value for (name, _), value in samples(generate_latest(registry).decode()).items()}
    assert got["floorwatch_alert_value"] == 120.0
    assert got["floorwatch_alert_current_value"] == 170.0


def test_published_records_and_table_writes_are_counters_by_label() -> None:
    """The tallies kept as plain ints render as the `_total` counters they were: records and key + value bytes."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    views = metrics.published.of("views")
    views[0] += 2
    views[1] += 40 + 60  # two views: 40 and 60 bytes of key and value
    metrics.published.of("alerts")  # asked for, nothing published yet: a 0, as an untouched Counter child
    writes = metrics.table_writes.of("conversations")
    writes[0] += 1
    writes[1] += 250  # one conversation record of 250 bytes
    got = samples(generate_latest(registry.restricted_registry(
        ["floorwatch_scorer_records_published_total", "floorwatch_scorer_bytes_published_total",
         "floorwatch_scorer_state_writes_total", "floorwatch_scorer_state_write_bytes_total"])).decode())
    assert got == {("floorwatch_scorer_records_published_total", (("topic", "alerts"),)): 0.0,
                   ("floorwatch_scorer_records_published_total", (("topic", "views"),)): 2.0,
                   ("floorwatch_scorer_bytes_published_total", (("topic", "alerts"),)): 0.0,
                   ("floorwatch_scorer_bytes_published_total", (("topic", "views"),)): 100.0,
                   ("floorwatch_scorer_state_writes_total", (("table", "conversations"),)): 1.0,
                   ("floorwatch_scorer_state_write_bytes_total", (("table", "conversations"),)): 250.0}
