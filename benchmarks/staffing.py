"""Staffing: GET /v1/staffing/erlang latency for floors needing ~10, ~1,000 and ~10,000 agents.

In-process through httpx's ASGITransport against services.api.app.create_app (no sockets, no Kafka:
its view and alert stores are never started), so the figure is the app's own time (routing,
validation, the Erlang C search, JSON) without the network or uvicorn. Arrival rates are chosen
(bisection on services.core.erlang) so the answer is the target agent count at AHT 180 s, c = 1,
80% within 20 s.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from .common import log, median, pct, rnd

AHT_S = 180.0


def arrivals_for(agents: int) -> float:
    from services.core import erlang

    lo, hi = 1.0, agents * 3600 / AHT_S * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if erlang.required_agents(mid, AHT_S, 1, 0.8, 20).required_agents < agents:
            lo = mid
        else:
            hi = mid
    return math.ceil(hi * 1000) / 1000


async def measure(agents: int, requests: int, rounds: int) -> dict[str, Any]:
    import httpx

    from services.api.alerts import AlertStore
    from services.api.app import create_app
    from services.api.views import ViewStore

    app = create_app(store=ViewStore("127.0.0.1:1", "unused"), alert_store=AlertStore("127.0.0.1:1", "unused"))
    lam = arrivals_for(agents)
    params = {"arrivals_per_hour": lam, "aht_s": AHT_S, "concurrency": 1, "sl_target": 0.8, "sl_seconds": 20}
    per_round: list[dict[str, float | None]] = []
    answer: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for _ in range(20):  # warm-up
            await client.get("/v1/staffing/erlang", params=params)
        for _ in range(rounds):
            lat = []
            for _ in range(requests):
                t = time.perf_counter()
                r = await client.get("/v1/staffing/erlang", params=params)
                lat.append(time.perf_counter() - t)
                answer = r.json()
            per_round.append({"p50": pct(lat, 0.5), "p99": pct(lat, 0.99)})
    from services.core import erlang

    t = time.perf_counter()
    for _ in range(50):
        erlang.required_agents(lam, AHT_S, 1, 0.8, 20)
    math_s = (time.perf_counter() - t) / 50
    return {
        "target_agents": agents, "arrivals_per_hour": lam, "required_agents": answer.get("required_agents"),
        "p50_ms": rnd((median([r["p50"] for r in per_round]) or 0) * 1000, 3),
        "p99_ms": rnd((median([r["p99"] for r in per_round]) or 0) * 1000, 3),
        "erlang_math_only_ms": rnd(math_s * 1000, 3), "requests_per_round": requests, "rounds": rounds,
    }


def run(*, sizes: list[int], requests: int, rounds: int) -> dict[str, Any]:
    out = []
    for n in sizes:
        res = asyncio.run(measure(n, requests, rounds))
        log(f"staffing: {res}")
        out.append(res)
    return {"transport": "httpx.ASGITransport, in-process (no network, no uvicorn)", "by_agents": out}
