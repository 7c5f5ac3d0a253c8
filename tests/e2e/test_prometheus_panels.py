"""End to end: every Grafana panel's query, run against the real Prometheus of a live stack.

No Grafana server can run here, so the boards are proven the way Grafana would use them: the stack
runs with simulated floor traffic (10 minutes of history posted at once, then live traffic for about
a minute), plus the odd things a floor has (a buyer waiting past the alert level, a rejected event,
a webhook with a bad signature, a record nobody can parse, duplicates past ingest, a late event).
Then each board's variables are resolved through their own label_values queries, and every panel
target is sent to /api/v1/query with Grafana's variables substituted: it must be valid and return
data, in the queue-totals scope and in a single shop's scope (the agents board: every agent, one shop's
agents, one agent). Results go to test-artifacts/panel_queries.json.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.core.config import Topics
from services.core.events import parse_event
from services.simulator.model import FloorModel, SimConfig

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
BOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
ARTIFACT = REPO / "test-artifacts" / "panel_queries.json"
HISTORY_S = 600  # simulated floor history posted at once (windows and AHT have data)
LIVE_S = 70  # then live traffic: several scrapes and rule evaluations for rates and recordings
# Grafana's own variables, as a 5-second-scrape datasource over a short range would set them.
BUILTINS = {
    "__rate_interval": "30s", "__interval": "15s", "__interval_ms": "15000",
    "__range": "5m", "__range_s": "300", "__range_ms": "300000",
}
# The single-shop scope: a simulator shop (services.simulator.model.DEFAULT_SHOPS).
SHOP_SCOPE = {"queue": "presales", "tenant": "acme", "platform": "jd", "shop": "acme-jd"}
# Queue boards: the queue totals and one shop. The agents board: every agent, one shop's agents, one
# agent (the simulator's agents are `{shop_id}-a{i:02d}`; a01 serves presales).
QUEUE_SCOPES = {"queue totals": {"queue": "$__all", "tenant": "*", "platform": "*", "shop": "*"},
                "one shop": SHOP_SCOPE}
AGENT_SCOPES = {
    "all agents": {"tenant": "$__all", "platform": "$__all", "shop": "$__all", "agent": "$__all", "window": "1h"},
    "one shop": {"tenant": "acme", "platform": "jd", "shop": "acme-jd", "agent": "$__all", "window": "15m"},
    "one agent": {"tenant": "acme", "platform": "jd", "shop": "acme-jd", "agent": "acme-jd-a01", "window": "1h"},
}


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        raise KeyError(f"no value for ${name} in {expr}")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


async def post(client: httpx.AsyncClient, stack: Any, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    for i in range(0, len(events), 1000):
        r = await client.post(f"{stack.ingest_url}/v1/events", json=events[i : i + 1000], headers=headers)
        assert r.status_code == 202, r.text


async def odd_things(client: httpx.AsyncClient, stack: Any, sample: list[dict[str, Any]]) -> None:
    """What a real floor has besides regular traffic, so every pipeline panel has something to show."""
    now = int(time.time() * 1000)
    tag = uuid.uuid4().hex[:8]
    scope = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}
    # A buyer waiting past the oldest_wait warning level: a floor alert opens.
    conv = f"panels-wait-{tag}"
    await post(client, stack, [
        {**scope, "event_id": f"{conv}-1", "type": "conversation.opened", "ts": now - 150_000,
         "conversation_id": conv, "queue": "presales"},
        {**scope, "event_id": f"{conv}-2", "type": "message", "ts": now - 150_000, "conversation_id": conv,
         "sender": "customer"},
    ])
    # A late event: older than the scorer's watermark minus its grace period.
    late = f"panels-late-{tag}"
    await post(client, stack, [{**scope, "event_id": f"{late}-1", "type": "conversation.opened",
                                "ts": now - 400_000, "conversation_id": late, "queue": "presales"}])
    # A rejected event (422) and a webhook with a bad signature (counted per platform and status).
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    r = await client.post(f"{stack.ingest_url}/v1/events", headers=headers,
                          json=[{**scope, "event_id": f"bad-{tag}", "type": "message", "ts": now}])
    assert r.status_code == 422, r.text
    r = await client.post(f"{stack.ingest_url}/v1/webhooks/chatwoot", content=b'{"event": "message_created"}',
                          headers={"Content-Type": "application/json", "X-Chatwoot-Signature": "sha256=00"})
    assert 400 <= r.status_code < 500, r.text
    # Past ingest, straight into Kafka: a record nobody can parse (dead letter) and duplicates.
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        topic = Topics().events
        await producer.send_and_wait(topic, b"not an event", key=f"garbage-{tag}".encode())
        for obj in sample:
            ev = parse_event(obj)
            await producer.send(topic, key=ev.key.encode(), value=ev.to_json())
        await producer.flush()
    finally:
        await producer.stop()


async def resolve_scope(client: httpx.AsyncClient, prom: str, board: dict[str, Any], wanted: dict[str, str],
                        report: list[dict[str, Any]]) -> dict[str, str]:
    """Each variable's value through its own label_values query, in the board's order (chained)."""
    values = dict(BUILTINS)
    for v in board.get("templating", {}).get("list", []):
        name = v["name"]
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert m, query
        selector = substitute(m.group(1), values)
        r = await client.get(f"{prom}/api/v1/series", params={"match[]": selector, "start": time.time() - 300})
        assert r.status_code == 200, r.text
        options = sorted({s[m.group(2)] for s in r.json()["data"] if m.group(2) in s})
        report.append({"board": board["uid"], "variable": name, "query": selector, "options": len(options)})
        assert options, f"{board['uid']}: variable {name} ({selector}) has no values"
        want = wanted[name]
        if want == "$__all":
            values[name] = v.get("allValue") or "|".join(re.escape(o) for o in options)
        else:
            assert want in options, f"{board['uid']}: {want!r} is not among {name}'s values {options}"
            values[name] = want
    return values


async def test_every_panel_query_returns_data(stack: Any) -> None:
    started = time.monotonic()
    now = int(time.time() * 1000)
    model = FloorModel(SimConfig(start_ms=now - HISTORY_S * 1000, seed=11, run_id=f"panels-{uuid.uuid4().hex[:6]}"))
    async with httpx.AsyncClient(timeout=60) as client:
        history = model.events_until(now)
        await post(client, stack, history)
        await odd_things(client, stack, history[-20:])
        deadline = time.monotonic() + LIVE_S
        sent = len(history)
        while time.monotonic() < deadline:
            live = model.events_until(int(time.time() * 1000))
            if live:
                await post(client, stack, live)
                sent += len(live)
            await _sleep(1.0)

        prom = stack.prometheus_url
        report: list[dict[str, Any]] = []
        failures: list[str] = []
        panels = 0
        for path in BOARDS:
            board = json.loads(path.read_text(encoding="utf-8"))
            variables = {v["name"] for v in board.get("templating", {}).get("list", [])}
            scopes = AGENT_SCOPES if "agent" in variables else QUEUE_SCOPES if variables else {"board": {}}
            for scope_name, wanted in scopes.items():
                values = await resolve_scope(client, prom, board, wanted, report)
                for panel in _panels(board):
                    if not panel.get("targets"):
                        continue
                    panels += 1
                    for target in panel["targets"]:
                        query = substitute(target["expr"], values)
                        r = await client.get(f"{prom}/api/v1/query", params={"query": query})
                        body = r.json()
                        result = body.get("data", {}).get("result", [])
                        rows = len(result) if body.get("data", {}).get("resultType") in ("vector", "matrix") else 1
                        first = result[0] if result and isinstance(result, list) else result
                        entry = {"board": board["uid"], "scope": scope_name, "panel": panel["title"],
                                 "ref": target["refId"], "query": query, "status": body.get("status"),
                                 "series": rows, "first": first, "error": body.get("error")}
                        report.append(entry)
                        if body.get("status") != "success":
                            failures.append(f"{board['uid']} [{scope_name}] {panel['title']!r} {target['refId']}: "
                                            f"{body.get('errorType')}: {body.get('error')}\n    {query}")
                        elif rows == 0:
                            failures.append(f"{board['uid']} [{scope_name}] {panel['title']!r} {target['refId']}: "
                                            f"no data\n    {query}")

    summary = {
        "boards": len(BOARDS),
        "panel_runs": panels,
        "queries": sum(1 for e in report if "query" in e and "panel" in e),
        "queries_with_data": sum(1 for e in report if e.get("series")),
        "failures": failures,
        "events_posted": sent,
        "seconds": round(time.monotonic() - started, 1),
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps({"summary": summary, "results": report}, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print(f"\n{summary['queries_with_data']}/{summary['queries']} panel queries returned data "
          f"({panels} panel runs over {len(BOARDS)} boards): {ARTIFACT}")
    assert not failures, "\n".join(failures)


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
