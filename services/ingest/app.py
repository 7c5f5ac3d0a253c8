"""The ingest HTTP service: POST /v1/events, POST /v1/webhooks/{platform}, GET /healthz, GET /metrics.

See shared/EVENTS.md for the event contract and adapters/README.md for the platform webhooks.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Path, Request, Response
from starlette.requests import ClientDisconnect

from .body import BodyError, check_content_length, is_ndjson, read_limited
from .dedupe import RecentIds
from .health import HealthCache
from .metrics import CONTENT_TYPE, IngestMetrics
from .openapi import EVENTS_BODY, WEBHOOK_EXTRA
from .producer import EventProducer, KafkaEventProducer
from .service import Ingestor, Outcome
from .settings import IngestSettings
from .webhooks import PLATFORMS, WebhookHandler, log_auth_modes

log = logging.getLogger("floorwatch.ingest")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


ALL_TENANTS = ""  # what `_caller` returns for INGEST_TOKEN (or no token needed): any tenant may be posted


def _caller(settings: IngestSettings, header: str | None) -> str | Outcome:
    """The tenant the caller may post for (ALL_TENANTS for INGEST_TOKEN), or the refusal (401, or 503
    when no token is configured)."""
    mode = settings.auth_mode
    if mode == "open":
        return ALL_TENANTS
    if mode == "unconfigured":
        return Outcome(
            503,
            {"detail": "ingest token not configured (set INGEST_TOKEN)"},
            {"Retry-After": "30"},
        )
    scheme, _, presented = (header or "").partition(" ")
    given = presented.strip().encode() if scheme.lower() == "bearer" else b""
    # Every token is compared (no early exit), so the time taken says nothing about which one matched.
    found: str | None = None
    if settings.token and hmac.compare_digest(given, settings.token.encode()):
        found = ALL_TENANTS
    for tenant, token in settings.tokens.items():
        if hmac.compare_digest(given, token.encode()) and found is None:
            found = tenant
    if given and found is not None:
        return found
    return Outcome(401, {"detail": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})


def _log_auth_mode(settings: IngestSettings) -> None:
    mode = settings.auth_mode
    if mode == "unconfigured":
        log.error("INGEST_TOKEN is not set (nor INGEST_TOKENS): POST /v1/events refuses all traffic with 503")
    elif mode == "open":
        log.warning("INGEST_ALLOW_UNAUTHENTICATED=true: POST /v1/events accepts requests without a token")


def create_app(
    settings: IngestSettings | None = None,
    producer: EventProducer | None = None,
    *,
    wall_clock: Callable[[], float] = time.time,
) -> FastAPI:
    settings = settings or IngestSettings()
    if producer is None:
        producer = KafkaEventProducer(
            settings.kafka.bootstrap,
            settings.topic,
            linger_ms=settings.kafka_linger_ms,
            max_batch_bytes=settings.kafka_max_batch_bytes,
        )
    metrics = IngestMetrics()
    seen = RecentIds(settings.dedupe_size, settings.dedupe_ttl_s)
    ingestor = Ingestor(settings, producer, seen, metrics, wall_clock=wall_clock)
    health = HealthCache(producer, ttl_s=settings.health_cache_s)
    webhooks = WebhookHandler(settings, ingestor, metrics, wall_clock=wall_clock)
    metrics.track(lambda: producer.connected, lambda: len(seen))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _log_auth_mode(settings)
        log_auth_modes(settings)
        await producer.start()
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(title="floorwatch ingest", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.producer = producer
    app.state.metrics = metrics
    app.state.seen = seen
    app.state.health = health
    app.state.webhooks = webhooks

    async def handle(request: Request) -> Outcome:
        caller = _caller(settings, request.headers.get("authorization"))
        if isinstance(caller, Outcome):
            metrics.reject("unauthorized" if caller.status == 401 else "token_not_configured")
            return caller
        atomic_raw = request.query_params.get("atomic", "").strip().lower()
        if atomic_raw not in _TRUE | _FALSE:
            return ingestor.refuse(BodyError(400, "bad_request", "atomic must be true or false"))
        try:
            check_content_length(request.headers.get("content-length"), settings.max_body_bytes)
            raw = await read_limited(request.stream(), settings.max_body_bytes)
        except BodyError as err:
            return ingestor.refuse(err)
        return await ingestor.ingest(
            raw, ndjson=is_ndjson(request.headers.get("content-type")), atomic=atomic_raw in _TRUE,
            tenant=caller or None,
        )

    async def answer(what: str, run: Callable[[], Awaitable[Outcome]]) -> tuple[str, Response]:
        """Run a handler; a client gone mid-body or a bug never escapes as a bare exception."""
        try:
            outcome = await run()
            return str(outcome.status), _json(outcome.status, outcome.body, outcome.headers)
        except ClientDisconnect:
            return "499", Response(status_code=400)  # the client went away mid-body; nobody to answer
        except Exception:
            log.exception("bug while handling %s", what)
            return "500", _json(500, {"detail": "internal error (logged); please report it"})

    @app.post(
        "/v1/events",
        status_code=202,
        summary="Post chat events: one JSON object, a JSON array, or NDJSON",
        responses={
            401: {"description": "missing or wrong bearer token"},
            413: {"description": "body or batch too large"},
            422: {"description": "invalid events (errors[] lists index, event_id, reason), invalid or too deep JSON"},
            503: {"description": "Kafka unavailable (Retry-After) or no token configured"},
        },
        openapi_extra=EVENTS_BODY,
    )
    async def post_events(request: Request) -> Response:
        started = time.perf_counter()
        code, response = await answer("POST /v1/events", lambda: handle(request))
        metrics.requests.labels(code).inc()
        metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    @app.post(
        "/v1/webhooks/{platform}",
        status_code=202,
        summary="A chat platform's webhook delivery (chatwoot, livechat, sunshine), mapped onto chat events",
        responses={
            400: {"description": "bad Content-Length or account parameter"},
            401: {"description": "missing, wrong or stale signature / secret"},
            404: {"description": "unknown platform"},
            413: {"description": "body too large"},
            422: {"description": "not JSON, too deep, or not a delivery the adapter can map (errors[] say why)"},
            503: {"description": "Kafka unavailable (Retry-After), or no secret configured for the platform"},
        },
        openapi_extra=WEBHOOK_EXTRA,
    )
    async def post_webhook(
        request: Request,
        platform: str = Path(description="chat platform", json_schema_extra={"enum": list(PLATFORMS)}),
    ) -> Response:
        started = time.perf_counter()
        code, response = await answer(
            "POST /v1/webhooks/{platform}", lambda: webhooks.handle(platform, request)
        )
        metrics.webhook_requests.labels(platform if platform in PLATFORMS else "other", code).inc()
        metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", summary="200 when the producer is connected and Kafka answers")
    async def healthz() -> Response:
        state = await health.kafka_state()
        if state == "connected":
            return _json(200, {"status": "ok", "kafka": state})
        return _json(503, {"status": "unavailable", "kafka": state})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(Exception)
    async def on_bug(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return _json(500, {"detail": "internal error (logged); please report it"})

    return app
