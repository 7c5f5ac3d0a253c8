"""Stage 2 evaluates the alert rules on queue totals and shops, once per tick, with engine snapshots."""

from __future__ import annotations

import orjson

from services.core.alerts import AlertEngine
from services.core.wire import ENGINE_KEY_PREFIX, queue_partition
from services.scorer.inprocess import InProcessScorer

B = 1_795_700_000_000
BASE = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}


def waiting_buyer() -> list[dict[str, object]]:
    return [
        {**BASE, "event_id": "o", "type": "conversation.opened", "ts": B, "conversation_id": "c1", "queue": "presales"},
        {**BASE, "event_id": "m", "type": "message", "ts": B + 1000, "conversation_id": "c1", "sender": "customer"},
    ]


def alerts_of(s: InProcessScorer) -> list[dict[str, object]]:
    return [orjson.loads(r.value) for r in s.alerts if r.value and not r.key.startswith(ENGINE_KEY_PREFIX.encode())]


def test_oldest_wait_fires_once_and_escalates() -> None:
    s = InProcessScorer(event_clock=False)
    s.feed(waiting_buyer())
    s.tick(B + 50_000)
    assert alerts_of(s) == []
    s.tick(B + 102_000)  # waited 101 s: one warning, on the shop (the queue total is the same one buyer)
    fired = alerts_of(s)
    assert {(a["rule"], a["shop_id"], a["severity"]) for a in fired} == {("oldest_wait", "acme-jd", "warning")}
    s.tick(B + 120_000)
    assert len(alerts_of(s)) == 1  # no repeat while the episode lasts
    s.tick(B + 182_000)  # 181 s: the same episode, escalated
    escalated = alerts_of(s)[1:]
    assert {a["severity"] for a in escalated} == {"critical"}
    assert {a["id"] for a in escalated} == {a["id"] for a in fired}


def test_engine_snapshot_restores_the_episode() -> None:
    s = InProcessScorer(event_clock=False)
    s.feed(waiting_buyer())
    s.tick(B + 102_000)
    qp = queue_partition("presales", s.queue_partitions)
    snaps = [r for r in s.alerts if r.key == f"{ENGINE_KEY_PREFIX}{qp}".encode()]
    assert snaps, "a snapshot travels with the changes"
    restored = AlertEngine.from_json(orjson.loads(snaps[-1].value or b"{}"))
    assert {a.id for a in restored.open_alerts()} == {a["id"] for a in alerts_of(s)}
