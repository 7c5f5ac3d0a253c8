"""The Grafana boards, checked strictly without a Grafana server (none can run here).

Every board is valid JSON in the Grafana 11/12 shape, panel ids are unique, every panel's datasource
is the provisioned one, every query variable is defined, and every metric name in every expression
is one the services export (read from their own registries) or one the recording rules record.
The same names check runs over the Prometheus rules themselves. Running the queries against real
data is tests/e2e/test_prometheus_panels.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # a dev dependency (via kubernetes-validate): missing is a failure, not a skip
from prometheus_client import CollectorRegistry, generate_latest

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
BOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
EXPECTED_BOARDS = {"floorwatch-wallboard", "floorwatch-agents", "floorwatch-capacity", "floorwatch-pipeline"}
# Queue boards pick a queue scope ('*' = roll-up); the agents board picks agents (no roll-ups: one row per agent).
QUEUE_VARIABLES = {"queue", "tenant", "platform", "shop"}
EXPECTED_VARIABLES = {
    "floorwatch-wallboard": QUEUE_VARIABLES,
    "floorwatch-capacity": QUEUE_VARIABLES,
    "floorwatch-agents": {"tenant", "platform", "shop", "agent", "window"},
    "floorwatch-pipeline": set(),
}
# Series Prometheus makes itself, not the services.
BUILTIN_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
GRAFANA_BUILTIN_VARS = {
    "__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__all",
    "__dashboard", "__from", "__to", "__name", "__org", "__user", "__url_time_range", "__all_variables",
}


# ------------------------------------------------------------------------------------------ exported names


def _type_lines(text: bytes) -> Iterator[tuple[str, str]]:
    for line in text.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            yield name, kind


def _sample_names(text: bytes) -> set[str]:
    """The series names a scrape of this exposition can hold (histograms: _bucket, _sum, _count)."""
    out: set[str] = set()
    for name, kind in _type_lines(text):
        if kind == "histogram":
            out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "summary":
            out |= {name, f"{name}_sum", f"{name}_count"}
        else:
            out.add(name)
    return out


def exported_metric_names() -> set[str]:
    """Every series name the three services export, read from the services' own metric objects."""
    from services.ingest.metrics import IngestMetrics
    from services.scorer.metrics import (
        AlertsCollector,
        PipelineMetrics,
        ScorecardCollector,
        SignalsCollector,
        ViewsCollector,
    )

    names = _sample_names(IngestMetrics().render())
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    registry.register(ViewsCollector(lambda: []))  # queue figures, and the per-agent (floorwatch_agent_*) ones
    registry.register(SignalsCollector(lambda: []))
    registry.register(AlertsCollector(lambda: []))
    registry.register(ScorecardCollector(lambda: []))  # floorwatch_agent_score, ..._chats_handled_today
    names |= _sample_names(generate_latest(registry))

    from fastapi.testclient import TestClient

    from services.api.app import create_app
    from services.api.views import ViewStore

    app = create_app(store=ViewStore("127.0.0.1:1", "unused"))  # a store never started: no Kafka needed
    names |= _sample_names(TestClient(app).get("/metrics").content)
    return names


def recorded_names() -> set[str]:
    out: set[str] = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            out |= {r["record"] for r in group["rules"] if "record" in r}
    return out


@pytest.fixture(scope="module")
def known_names() -> set[str]:
    return exported_metric_names() | recorded_names() | BUILTIN_SERIES


def test_the_exported_names_are_read_from_the_services() -> None:
    names = exported_metric_names()
    # One of each kind from each service: the reader sees counters, gauges, histograms and collectors.
    for expected in (
        "floorwatch_ingest_events_total", "floorwatch_ingest_request_seconds_bucket",
        "floorwatch_ingest_kafka_connected",
        "floorwatch_scorer_events_total", "floorwatch_scorer_event_age_seconds_bucket",
        "floorwatch_scorer_views_published_timestamp_seconds", "floorwatch_queue_oldest_wait_seconds",
        "floorwatch_queue_service_level_ratio", "floorwatch_queue_left_unanswered", "floorwatch_queue_load_ratio",
        "floorwatch_queue_required_agents", "floorwatch_scorer_consumer_lag", "floorwatch_agent_status",
        "floorwatch_agent_status_seconds", "floorwatch_alert_firing", "floorwatch_alert_info",
        "floorwatch_api_requests_total", "floorwatch_api_views", "floorwatch_agent_score",
        "floorwatch_platform_rule_misses_left",
    ):
        assert expected in names, expected


# ------------------------------------------------------------------------------------------ PromQL names

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\w)(\s*\()?")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "Inf", "NaN",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords, labels and variables left out)."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("1", text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names: set[str] = set()
    for m in _IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_parser() -> None:
    assert metric_names(
        'sum by (queue) (rate(floorwatch_x_total{queue=~"$queue",a="b{c}"}[$__rate_interval])) '
        '/ on (queue) group_left () (floorwatch:y:sum > 0) or vector(0)'
    ) == {"floorwatch_x_total", "floorwatch:y:sum"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m] offset 1m)))") == {"h_bucket"}
    assert metric_names("time() - max(ts > 0) > 30 and 1e3 < bool 2") == {"ts"}


# ------------------------------------------------------------------------------------------ boards


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def all_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def provisioned_uids() -> set[str]:
    out: set[str] = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["apiVersion"] == 1
        for ds in doc["datasources"]:
            assert ds["type"] == "prometheus" and ds["access"] == "proxy" and ds["url"], ds
            out.add(ds["uid"])
    return out


def test_provisioning_files() -> None:
    assert provisioned_uids() == {"floorwatch-prometheus"}
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "floorwatch.yml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_all_four_boards_exist() -> None:
    assert {load(p)["uid"] for p in BOARDS} == EXPECTED_BOARDS
    assert len({load(p)["title"] for p in BOARDS}) == len(BOARDS)


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_board_structure(path: Path, known_names: set[str]) -> None:
    board = load(path)
    uids = provisioned_uids()
    assert board["uid"] == path.stem and len(board["uid"]) <= 40
    assert 36 <= board["schemaVersion"] <= 41, "Grafana 11/12 schema"
    assert board["title"] and isinstance(board["panels"], list) and board["panels"]
    assert board["time"]["from"].startswith("now-")

    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    for name, v in variables.items():
        assert v["type"] == "query", name
        assert v["datasource"]["uid"] in uids, name
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert m and m.group(2) == name, f"variable {name}: {query}"
        assert metric_names(m.group(1)) <= known_names, query
        assert v.get("current"), f"variable {name} needs a default"
    assert set(variables) == EXPECTED_VARIABLES[board["uid"]], board["uid"]

    ids: list[int] = []
    problems: list[str] = []
    queries = 0
    for panel in all_panels(board):
        ids.append(panel["id"])
        title = f"{board['uid']} / {panel.get('title')!r}"
        gp = panel["gridPos"]
        assert gp["x"] >= 0 and gp["w"] >= 1 and gp["x"] + gp["w"] <= 24 and gp["h"] >= 1, title
        if panel["type"] in ("row", "text"):
            assert not panel.get("targets"), title
            continue
        assert panel["type"] in {"stat", "timeseries", "table", "bargauge", "gauge", "barchart"}, title
        assert panel["datasource"] == {"type": "prometheus", "uid": panel["datasource"]["uid"]}, title
        if panel["datasource"]["uid"] not in uids:
            problems.append(f"{title}: datasource uid {panel['datasource']['uid']!r} is not provisioned")
        targets = panel.get("targets") or []
        assert targets, f"{title}: a query panel without queries"
        ref_ids = [t["refId"] for t in targets]
        assert len(set(ref_ids)) == len(ref_ids), title
        for t in targets:
            queries += 1
            if t.get("datasource", panel["datasource"])["uid"] not in uids:
                problems.append(f"{title}: target {t['refId']} datasource is not provisioned")
            expr = t["expr"]
            assert expr.strip(), title
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"{title}: {expr}"
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in variables and var not in GRAFANA_BUILTIN_VARS:
                    problems.append(f"{title}: ${var} is not a variable of the board")
            unknown = metric_names(expr) - known_names
            if unknown:
                problems.append(f"{title}: not exported or recorded: {sorted(unknown)} in {expr}")
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {path.name}"
    assert queries > 0
    assert not problems, "\n".join(problems)


def test_agents_board_is_the_per_agent_view() -> None:
    """Every per-agent series the scorer exports is on the agents board, and no note explains a gap."""
    board = load(GRAFANA / "dashboards" / "floorwatch-agents.json")
    exprs = " ".join(t["expr"] for p in all_panels(board) for t in p.get("targets") or [])
    used = metric_names(exprs)
    agent_series = {n for n in exported_metric_names() if n.startswith("floorwatch_agent_")}
    assert agent_series and agent_series <= used, sorted(agent_series - used)
    assert not [p for p in all_panels(board) if p["type"] == "text"]
    (agents_table,) = [p for p in all_panels(board) if p["type"] == "table"]
    assert len(agents_table["targets"]) == 9  # status and the eight figures, one column each


def test_prometheus_rules_use_only_exported_names(known_names: set[str]) -> None:
    problems = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - known_names
                if unknown:
                    problems.append(f"{path.name} {rule.get('record') or rule.get('alert')}: {sorted(unknown)}")
    assert not problems, "\n".join(problems)
