"""Hostile input on every ingest endpoint: schemathesis against ingest's own OpenAPI, and named cases.

The fuzz run is in-process (the ASGI app with a fake producer, no network), positive and negative
cases from the documented request bodies, bounded by MAX_EXAMPLES per operation so it finishes
well under a minute. Its one property: no answer is a 5xx (a 503 from a deliberately unconfigured
or Kafka-less path would be one too, so the app here has every secret set and Kafka "up"). Most
generated requests carry the right credentials, so bodies reach the parsers and the adapters.
"""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services.ingest.adapters import AdapterConfig
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.unit.test_ingest_api import FakeProducer

TOKEN = "fuzz-token"
LIVECHAT = "fuzz-livechat"
SUNSHINE = "fuzz-sunshine"
NOW_S = 1_800_000_000.0
MAX_EXAMPLES = 300  # per operation (4 operations): ~20 s on the 2-core machine

SETTINGS = IngestSettings(
    token=TOKEN,
    allow_unauthenticated=False,
    max_body_bytes=64 * 1024,
    max_batch=50,
    max_future_s=300.0,
    max_past_s=7 * 86_400.0,
    chatwoot_webhook_secret="fuzz-chatwoot",
    chatwoot_allow_unsigned=True,  # signed deliveries are checked, unsigned ones reach the adapter
    livechat_secret_key=LIVECHAT,
    sunshine_api_key=SUNSHINE,
    adapters=AdapterConfig(queue_map={"chatwoot:inbox:1": "presales"}),
    topic="fuzz.events",
)


def _ndjson(_ctx: Any, value: Any) -> bytes:
    """Bodies for application/x-ndjson: text as it is (lone surrogates passed through as bytes),
    lists as one JSON value a line, anything else as one JSON line."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return "\n".join(json.dumps(item, default=str) for item in value).encode("utf-8", "surrogatepass")
    return json.dumps(value, default=str).encode("utf-8", "surrogatepass")


schemathesis.serializer("application/x-ndjson")(_ndjson)
PRODUCER = FakeProducer()
APP = create_app(SETTINGS, PRODUCER, wall_clock=lambda: NOW_S)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
_rng = random.Random(7)


def with_credentials(case: Any) -> None:
    """Nine in ten cases get valid credentials, so the fuzzing gets past authentication."""
    if _rng.random() < 0.1:
        return
    headers = dict(case.headers or {})
    if case.path == "/v1/events":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif (case.path_parameters or {}).get("platform") == "sunshine":
        headers["X-API-Key"] = SUNSHINE
    elif (case.path_parameters or {}).get("platform") == "livechat" and isinstance(case.body, dict):
        case.body["secret_key"] = LIVECHAT
    case.headers = headers


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_ingest_answer_5xx(case: Any) -> None:
    with_credentials(case)
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.status_code, response.text)


# --- named hostile inputs on POST /v1/events ------------------------------------------------------


@pytest.fixture
async def client() -> Any:
    app = create_app(SETTINGS, FakeProducer(), wall_clock=lambda: NOW_S)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await lifespan.__aexit__(None, None, None)


def event(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": "e-1", "type": "message", "ts": int(NOW_S * 1000) - 1000, "shop_id": "s", "platform": "jd",
        "conversation_id": "c-1", "sender": "customer",
    }
    out.update(fields)
    return out


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (orjson.dumps(event(event_id="x" * 50_000)), 422, "bad_field"),  # huge string
        (orjson.dumps(event(chars="12")), 422, "bad_field"),  # wrong types
        (orjson.dumps(event(ts=[1])), 422, "bad_field"),
        (orjson.dumps(event(conversation_id={"id": 1})), 422, "bad_field"),
        (orjson.dumps(event(type="message.deleted")), 422, "unknown_type"),
        (orjson.dumps(event(type=None)), 422, "unknown_type"),
        (orjson.dumps(event(event_id="a\x00b")), 422, "bad_field"),  # NUL
        (orjson.dumps(event(conversation_id="c\u200f1")), 422, "bad_field"),  # RTL mark
        (orjson.dumps(event(shop_id="\u202eevil")), 422, "bad_field"),  # RTL override
        (b'{"event_id": "\\ud83d", "type": "message"}', 422, "invalid_json"),  # lone surrogate
        (b'{"event_id": "\xed\xb0\x80"}', 422, "invalid_json"),  # an encoded surrogate is not UTF-8
        (b'{"event_id": "\xc0\xaf"}', 422, "invalid_json"),  # overlong UTF-8
        (b"\xef\xbb\xbf" + orjson.dumps(event()), 422, "invalid_json"),  # a BOM
        (b"[" * 70 + b"]" * 70, 422, "too_deep"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 422, "too_deep"),  # past orjson's own 1024 limit
        (b"1e999", 422, "invalid_json"),
        (b'"just a string"', 422, "not_object"),
        (b"[1, null, true]", 422, "not_object"),
    ],
)
async def test_hostile_event_bodies(client: Any, body: bytes, status: int, reason: str) -> None:
    resp = await client.post("/v1/events", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]
    registry = client.app.state.metrics.registry
    assert registry.get_sample_value("floorwatch_ingest_rejected_total", {"reason": reason}) >= 1


async def test_emoji_in_ids_are_accepted(client: Any) -> None:
    body = orjson.dumps(event(event_id="😀-1", conversation_id="会话-🛼", shop_id="店-🏪"))
    resp = await client.post("/v1/events", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 202, resp.text


async def test_body_limit_on_events(client: Any) -> None:
    body = orjson.dumps([event(event_id=f"e-{i}", queue="q" * 100) for i in range(400)])
    resp = await client.post("/v1/events", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 413
