"""GET /v1/scorecard and GET /v1/standing (shared/API.md, SCORECARD.md): read from stage 2's day records.

The figures are sums stage 2 published; the score, grade, flags and budget are the pure functions of
services.core.scorecard_report, the very ones stage 2's `platform_budget` alert reads.
"""

from __future__ import annotations

import time
from datetime import datetime
from itertools import chain
from typing import Annotated, Any

from fastapi import FastAPI, Query

from services.core.merge import iso
from services.core.platform_rules import rule_for
from services.core.privacy import shown_agent_id
from services.core.scope import AGENT_PREFIX, Scope, is_agent_scope
from services.core.scorecard import ScorecardConfig
from services.core.scorecard_report import AgentFilter, Period, rule_standing, scorecard_report, shop_hours

from .params import Filter
from .views import ViewStore


def _ms(stamp: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def newest_ms(views: ViewStore) -> int:
    """The scorer's now as the API last heard it (the newest as_of of a view or a day record), else the wall
    clock: "today" is the scorer's day, so a replay or an event-clock run reads the day it scored."""
    # Every as_of is `merge.iso`'s fixed UTC form, so the newest is the greatest string: one parse per request.
    stamps = [a for a in chain((v.get("as_of") for v in views.views.values()),
                               (r.get("as_of") for r in views.days.values())) if isinstance(a, str)]
    newest = _ms(max(stamps)) if stamps else None
    return newest if newest is not None else int(time.time() * 1000)


def mount_scorecard(app: FastAPI, views: ViewStore, config: ScorecardConfig, tz: str) -> None:
    def day_records() -> dict[tuple[Scope, int], dict[str, int]]:
        return {key: record["sums"] for key, record in views.days.items()}

    @app.get("/v1/scorecard")
    async def scorecard(
        period: Annotated[Period, Query(description="1h (rolling), today or month (local, SCORECARD_TZ)")],
        platform: Filter = None, queue: Filter = None, tenant: Filter = None, shop_id: Filter = None,
        agent_id: Filter = None,
    ) -> dict[str, Any]:
        """The agents' weighted scorecard per platform and overall, with grades and flags (advice, never an
        action). A null score means not enough data, never 0."""
        now = newest_ms(views)
        agents: set[str] | None = None
        if queue is not None or agent_id is not None:
            agents = set()
            for key, view in views.views.items():
                if not is_agent_scope(key.queue):
                    continue
                raw = key.queue[len(AGENT_PREFIX):]
                if agent_id is not None and agent_id not in (raw, shown_agent_id(raw)):
                    continue
                if queue is not None and queue not in (((agent := view.get("agent")) and agent.get("queues")) or ()):
                    continue
                agents.add(raw)
            if queue is None and agent_id is not None:  # an agent with day records but no live view any more
                agents |= {s.queue[len(AGENT_PREFIX):] for s, _ in views.days
                           if is_agent_scope(s.queue) and agent_id in (raw := s.queue[len(AGENT_PREFIX):],
                                                                        shown_agent_id(raw))}
        keep = AgentFilter(tenant, shop_id, platform, None if agents is None else frozenset(agents))
        windows = {
            key: view["windows"]["1h"] for key, view in views.views.items()
            if is_agent_scope(key.queue) and "1h" in view.get("windows", {})
        } if period == "1h" else None
        report = scorecard_report(day_records(), period, now, tz, config, keep, windows_1h=windows,
                                  shown=shown_agent_id)
        return {"as_of": iso(now), "period": period, **report}

    @app.get("/v1/standing")
    async def standing(shop_id: Filter = None, platform: Filter = None) -> dict[str, Any]:
        """Each shop's platform rules today, with the misses left before the day's rate falls under target."""
        now = newest_ms(views)
        out = []
        for (_tenant, shop, plat), hours in sorted(shop_hours(day_records()).items()):
            if shop_id not in (None, shop) or platform not in (None, plat):
                continue
            rules = rule_standing(plat, hours, now, tz, rule_for(plat))
            if rules:
                out.append({"shop_id": shop, "platform": plat, "rules": rules})
        return {"as_of": iso(now), "standings": out}
