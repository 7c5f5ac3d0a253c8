"""Judge once (issue 14, item 2): every queue view goes out with the alert rules' reading of it, and its
levels are those of the alerts the engine raises, so the wallboard colours what the pages say."""

from __future__ import annotations

from typing import Any

import orjson

from services.core.figures import QueueView
from services.core.scope import Scope
from services.core.wire import ENGINE_KEY_PREFIX
from services.scorer.inprocess import InProcessScorer

B = 1_795_700_000_000


def buyer(queue: str, conv: str, ts: int, answered: bool) -> list[dict[str, Any]]:
    scope = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}
    out = [
        {**scope, "event_id": f"{conv}-o", "type": "conversation.opened", "ts": ts, "conversation_id": conv,
         "queue": queue},
        {**scope, "event_id": f"{conv}-m", "type": "message", "ts": ts, "conversation_id": conv, "sender": "customer"},
    ]
    if answered:
        out.append({**scope, "event_id": f"{conv}-r", "type": "message", "ts": ts + 5_000, "conversation_id": conv,
                    "sender": "agent", "agent_id": "a1"})
    return out


def test_each_queue_view_carries_the_levels_its_alerts_fire_at() -> None:
    s = InProcessScorer(event_clock=False)
    # presales: a buyer unanswered since B (past critical, 180 s, at B + 200 s; past warning, 100 s, at B + 120 s).
    # aftersales: answered in 5 s, nobody waits.
    s.feed(buyer("presales", "c1", B, answered=False) + buyer("aftersales", "c2", B, answered=True))
    published: dict[Scope, QueueView] = {}
    levels_seen = []
    for t in (B + 50_000, B + 120_000, B + 200_000):
        published.update(s.tick(t))
        levels_seen.append(published[Scope("acme", "acme-jd", "jd", "presales")]["judged"]["levels"]["oldest_wait"])
    assert levels_seen == ["ok", "warning", "critical"]

    shop = published[Scope("acme", "acme-jd", "jd", "presales")]["judged"]
    assert shop["signals"]["oldest_wait_s"] == 200.0 and shop["signals"]["waiting"] == 1
    assert published[Scope("acme", "acme-jd", "jd", "aftersales")]["judged"]["levels"]["oldest_wait"] == "ok"
    # Every queue view is judged, the roll-ups a board over a tenant or a platform shows too; agents' are not.
    for key, view in published.items():
        assert ("judged" in view) != key.queue.startswith("@agent:"), key
        assert set(view.get("judged", {"levels": {}})["levels"]) <= {"peak_load", "oldest_wait", "sla_breach",
                                                                      "staffing_gap"}
    assert published[Scope("acme", "*", "jd", "presales")]["judged"]["levels"]["oldest_wait"] == "critical"

    # The engine's page for that buyer is at the level the view shows.
    alerts = [orjson.loads(r.value) for r in s.alerts
              if r.value and not r.key.startswith(ENGINE_KEY_PREFIX.encode())]
    firing = {(a["queue"], a["shop_id"]): a["severity"] for a in alerts
              if a["rule"] == "oldest_wait" and a["state"] == "firing"}
    assert firing[("presales", "acme-jd")] == "critical"
    assert not any(q == "aftersales" for q, _ in firing)
