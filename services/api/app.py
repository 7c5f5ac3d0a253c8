"""The API: queue views, staffing answers; a reader of stage 2's topics only."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Annotated, Any, cast

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from services.core import erlang
from services.core.config import STAFFING_MAX_OCCUPANCY, STAFFING_SL_SECONDS, STAFFING_SL_TARGET
from services.core.merge import iso
from services.core.staffing import StaffingDefaults, staffing_inputs

from .agents import mount_agents
from .alerts import AlertStore, CurrentValues, mount_alerts
from .guard import ApiGuard
from .params import MAX_AHT_S, MAX_ARRIVALS_PER_HOUR, MAX_CONCURRENCY, MAX_SLOTS, Filter, Name
from .scorecard import mount_scorecard
from .settings import ApiSettings
from .stream import mount_stream
from .views import ViewStore
from .wallboard import mount_wallboard


def create_app(
    settings: ApiSettings | None = None, store: ViewStore | None = None, alert_store: AlertStore | None = None
) -> FastAPI:
    cfg = settings or ApiSettings()
    views = store or ViewStore(cfg.kafka.bootstrap, cfg.kafka.topics.views)
    alerts = alert_store or AlertStore(cfg.kafka.bootstrap, cfg.kafka.topics.alerts)
    registry = CollectorRegistry()
    requests = Counter("floorwatch_api_requests_total", "API requests", ["route", "code"], registry=registry)
    views_held = Gauge("floorwatch_api_views", "Queue views held", registry=registry)
    views_held.set_function(lambda: len(views.views))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if store is None:
            views.start()
        if alert_store is None:
            alerts.start()
        yield
        await close_alerts()
        if alert_store is None:
            await alerts.stop()
        if store is None:
            await views.stop()

    app = FastAPI(
        title="Floorwatch API",
        version="0.1.0",
        description="Live queue figures, staffing and alerts for e-commerce customer-service floors.",
        lifespan=lifespan,
    )
    app.state.views = views
    app.state.settings = cfg

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer quotes each failing `input` (a whole body, a 16 MiB one too): name
        # where and why only.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type")}
            for e in exc.errors()[:20]
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = request.scope.get("route")
        requests.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ready = views.caught_up.is_set()
        newest = max((v["as_of"] for v in views.views.values()), default=None)
        body = {"status": "ok" if ready else "starting", "views": len(views.views), "newest_as_of": newest}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/queues")
    async def list_queues(tenant: Filter = None, shop_id: Filter = None, platform: Filter = None) -> dict[str, Any]:
        """Every queue's view; filters pick the roll-up for a tenant, a platform or one shop.

        Each window ("1m", "5m", "15m", "1h") states `span_s`, the event time it actually covers
        ((now − W, now] with its edge rounded down to a grid of W/60, so between W and W + W/60), and
        `arrivals_per_min` is `arrivals` ÷ that span."""
        selected = views.select(None, tenant, shop_id, platform)
        as_of = max((v["as_of"] for v in selected), default=None)
        return {"as_of": as_of or iso(int(time.time() * 1000)), "queues": selected}

    @app.get("/v1/queues/{queue}")
    async def get_queue(
        queue: Annotated[str, Path(max_length=128)],
        tenant: Filter = None,
        shop_id: Filter = None,
        platform: Filter = None,
    ) -> dict[str, Any]:
        selected = views.select(queue, tenant, shop_id, platform)
        if not selected:
            raise HTTPException(404, f"no figures for queue {queue!r} with these filters yet")
        if len(selected) > 1:
            raise HTTPException(
                409, f"shop_id {shop_id!r} is ambiguous across tenants/platforms: add tenant and platform"
            )
        return cast(dict[str, Any], selected[0])  # the response as published (no response model)

    @app.get("/v1/staffing")
    async def staffing(
        queue: Name,
        tenant: Filter = None,
        shop_id: Filter = None,
        platform: Filter = None,
        sl_target: Annotated[float, Query(gt=0, lt=1)] = STAFFING_SL_TARGET,
        sl_seconds: Annotated[float, Query(ge=0, le=86_400)] = STAFFING_SL_SECONDS,
        max_occupancy: Annotated[float, Query(gt=0, le=1)] = STAFFING_MAX_OCCUPANCY,
        shrinkage: Annotated[float, Query(ge=0, lt=1)] = 0.3,
        drain_minutes: Annotated[float, Query(gt=0, le=1440)] = 10,
    ) -> dict[str, Any]:
        """Agents needed now for this queue, from its live arrival rate, AHT and concurrency."""
        view = await get_queue(queue, tenant, shop_id, platform)
        # The alert rules' reading of the view too (staffing_gap): one function, one answer.
        inputs = staffing_inputs(view, StaffingDefaults(aht_s=cfg.staffing.aht_s, concurrency=cfg.staffing.concurrency))
        if inputs.arrivals_per_hour is None:
            raise HTTPException(404, f"no 15m arrival figures for queue {queue!r} yet")
        arrivals_per_hour, aht_s, conc = inputs.arrivals_per_hour, inputs.aht_s, inputs.concurrency
        available = inputs.agents_available or 0
        # Projections use the agents on duty (online or busy) and their real slots (Σ capacity): a busy
        # floor's free-slot count falls as load rises and would count the same load twice.
        staffing = inputs.agents_serving or 0
        backlog = inputs.backlog or 0
        patience_s = inputs.patience_s  # observed: all waits of those who left / those who gave up
        try:
            need = erlang.required_agents(
                arrivals_per_hour, aht_s, conc, sl_target, sl_seconds, max_occupancy, shrinkage
            )
            proj = erlang.projected(staffing, conc, arrivals_per_hour, aht_s, sl_seconds, patience_s)
            drain = erlang.backlog_drain(backlog, drain_minutes, arrivals_per_hour, aht_s, conc, staffing)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "queue": queue,
            "as_of": view["as_of"],
            "inputs": {
                "arrivals_per_hour": float(arrivals_per_hour),
                "aht_s": aht_s,
                "aht_source": inputs.aht_source,
                "concurrency": float(conc),
                # The exact mean capacity (Σ capacity ÷ agents, e.g. "8/3"): the figure the answer used.
                "concurrency_exact": str(conc),
                "concurrency_source": inputs.concurrency_source,
                "agents_available": available,
                "agents_staffing": staffing,
                "slots_on_duty": inputs.slots,
                "backlog": backlog,
            },
            "target": {"sl_target": sl_target, "sl_seconds": sl_seconds, "max_occupancy": max_occupancy,
                       "shrinkage": shrinkage},
            "required_agents": need.required_agents,
            "required_rostered": need.required_rostered,
            "backlog_drain": {"agents": drain.agents, "minutes_at_current": drain.minutes_at_current},
            "projected_sl": proj.service_level,
            "utilization": proj.utilization,
            "overload": proj.overload,
            "queue_growth_per_min": proj.queue_growth_per_min,
            # Erlang A: the share of buyers who would give up at this staffing, from their observed patience.
            "erlang_a_abandon": proj.erlang_a_abandon,
            "patience_s": patience_s,
        }

    @app.get("/v1/staffing/erlang")
    async def erlang_calculator(
        arrivals_per_hour: Annotated[float, Query(ge=0, le=MAX_ARRIVALS_PER_HOUR)],
        aht_s: Annotated[float, Query(gt=0, le=MAX_AHT_S)],
        concurrency: Annotated[
            str,
            Query(
                max_length=64, pattern=r"^\s*\d+(\.\d+)?(\s*/\s*\d+)?\s*$",
                description="Chats per agent: a number (2.5) or an exact fraction (8/3 for capacities 2, 3, 3).",
            ),
        ] = "1",
        sl_target: Annotated[float, Query(gt=0, lt=1)] = 0.8,
        sl_seconds: Annotated[float, Query(ge=0, le=MAX_AHT_S)] = 20,
        max_occupancy: Annotated[float, Query(gt=0, le=1)] = 1,
        shrinkage: Annotated[float, Query(ge=0, lt=1)] = 0,
    ) -> dict[str, Any]:
        """The what-if calculator: the same Erlang C slot model as /v1/staffing."""
        if arrivals_per_hour * aht_s / 3600 / max_occupancy > MAX_SLOTS:
            raise HTTPException(
                422, f"offered load / max_occupancy must be at most {MAX_SLOTS:,} chat slots (arrivals_per_hour × "
                "aht_s / 3600 / max_occupancy)"
            )
        try:
            # Exactly what was typed: "8/3" is 8/3 and "2.5" is 5/2, never a rounded float.
            c = Fraction(concurrency.replace(" ", ""))
        except (ValueError, ZeroDivisionError):
            raise HTTPException(422, f"concurrency must be a number or a fraction such as 8/3, got {concurrency!r}") \
                from None
        if not 1 <= c <= MAX_CONCURRENCY:
            raise HTTPException(422, f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency!r}")
        try:
            need = erlang.required_agents(
                arrivals_per_hour, aht_s, c, sl_target, sl_seconds, max_occupancy, shrinkage
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "required_agents": need.required_agents,
            "required_rostered": need.required_rostered,
            "service_level": need.service_level,
            "occupancy": need.occupancy,
            "p_wait": need.p_wait,
            "asa_s": need.asa_s,
            "slots": need.slots,
            "load_erlangs": need.load_erlangs,
        }

    mount_agents(app, views)  # GET /v1/agents, /v1/agents/{agent_id}
    mount_scorecard(app, views, cfg.scorecard, cfg.scorecard_tz)  # GET /v1/scorecard, /v1/standing
    close_alerts = mount_alerts(app, alerts, cfg)  # GET /v1/alerts, POST /v1/alerts/{id}/ack
    hub = mount_stream(app, views, cfg.stale_after_s, cfg.sse_max_clients, cfg.stream_min_interval_s)
    alerts.on_change = lambda alert: hub.publish_alerts([alert])  # GET /v1/stream; app.state.stream.publish_alerts(...)
    alerts.current = CurrentValues(views)  # firing alerts' current_value, from the views this API holds
    mount_wallboard(app, views)  # GET / (the wallboard page), /wallboard/*, GET /v1/thresholds
    # Outermost: tokens and body size are settled on the headers, before any route reads the body.
    app.add_middleware(
        ApiGuard, write_token=cfg.token, read_token=cfg.read_token, max_body_bytes=cfg.max_body_bytes,
        on_refused=lambda code: requests.labels("guard", str(code)).inc(),
    )
    return app
