"""HTTP and validation layer of the ingest service, against a fake producer (no Kafka here).

The real Kafka path (acks, keys, one produce round per batch) is in
tests/integration/test_ingest_kafka.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.events import parse_event, state_key
from services.ingest.app import create_app
from services.ingest.producer import ProduceError, Record
from services.ingest.settings import IngestSettings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW_S = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the fake wall clock
NOW_MS = int(NOW_S * 1000)


class FakeProducer:
    """Implements services.ingest.producer.EventProducer in memory."""

    def __init__(self) -> None:
        self.connected = True
        self.started = False
        self.reachable = True
        self.batches: list[list[Record]] = []
        self.fail: str | None = None
        self.acked_on_failure: frozenset[int] = frozenset()
        self.crash = False
        self.pings = 0
        self.timeouts: list[float] = []

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send_batch(self, records: Sequence[Record], timeout_s: float) -> None:
        self.timeouts.append(timeout_s)
        if self.crash:
            raise RuntimeError("a bug, not bad input")
        if self.fail is not None:
            self.batches.append([records[i] for i in sorted(self.acked_on_failure)])
            raise ProduceError(self.fail, self.acked_on_failure)
        self.batches.append(list(records))

    async def ping(self, timeout_s: float) -> bool:
        self.pings += 1
        return self.reachable

    @property
    def records(self) -> list[Record]:
        return [r for batch in self.batches for r in batch]


def base_settings(**overrides: Any) -> IngestSettings:
    defaults: dict[str, Any] = {
        "token": TOKEN,
        "allow_unauthenticated": False,
        "max_body_bytes": 5 * 1024 * 1024,
        "max_batch": 5000,
        "send_timeout_s": 10.0,
        "dedupe_size": 1_000_000,
        "dedupe_ttl_s": 3600.0,
        "max_future_s": 300.0,
        "max_past_s": 7 * 86_400.0,
        "health_cache_s": 2.0,
        "topic": "unit.events",
    }
    defaults.update(overrides)
    return IngestSettings(**defaults)


class Harness:
    def __init__(self, client: httpx.AsyncClient, producer: FakeProducer, app: Any) -> None:
        self.client = client
        self.producer = producer
        self.app = app

    async def post(self, body: Any, *, params: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        headers = {**AUTH, **kw.pop("headers", {})}
        if isinstance(body, bytes):
            return await self.client.post("/v1/events", content=body, headers=headers, params=params)
        return await self.client.post("/v1/events", content=orjson.dumps(body), headers=headers, params=params)

    def sample(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)


MakeHarness = Callable[..., Awaitable["Harness"]]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    """Builds apps (lifespan entered, fake producer) and closes them after the test."""
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**overrides: Any) -> Harness:
        producer = overrides.pop("producer", None) or FakeProducer()
        app = create_app(base_settings(**overrides), producer, wall_clock=lambda: NOW_S)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")
        opened.append((lifespan, client))
        return Harness(client, producer, app)

    yield make
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def h(make_harness: MakeHarness) -> Harness:
    return await make_harness()


def ev(n: int = 1, conv: str = "c-1", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": f"e-{conv}-{n}",
        "type": "message",
        "ts": NOW_MS - 1000,
        "tenant": "acme",
        "shop_id": "acme-jd",
        "platform": "jd",
        "conversation_id": conv,
        "sender": "customer",
        "chars": 12,
    }
    out.update(fields)
    return {k: v for k, v in out.items() if v is not None}


def agent_status(agent: str = "a-1") -> dict[str, Any]:
    return {
        "event_id": f"st-{agent}",
        "type": "agent.status",
        "ts": "2027-01-15T15:59:00+08:00",
        "shop_id": "acme-jd",
        "platform": "jd",
        "agent_id": agent,
        "status": "online",
        "capacity": 5,
        "queues": ["presales"],
    }


# --- shapes -----------------------------------------------------------------------------------


async def test_single_object_is_produced_with_key_and_normalised_value(h: Harness) -> None:
    resp = await h.post(ev(1))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 1, "duplicates": 0}
    [(key, value)] = h.producer.records
    assert key == state_key("acme", "c-1").encode()  # the tenant's conversation (issue 16)
    assert value == parse_event(ev(1)).to_json()
    assert orjson.loads(value)["ts"] == NOW_MS - 1000


async def test_array_is_one_produce_call_and_agent_status_keyed_by_agent(h: Harness) -> None:
    batch = [ev(i, conv=f"c-{i % 3}") for i in range(50)] + [agent_status("a-9")]
    resp = await h.post(batch)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 51, "duplicates": 0}
    assert len(h.producer.batches) == 1  # one produce round for the whole batch
    keys = [k for k, _ in h.producer.batches[0]]
    assert keys[:50] == [state_key("acme", f"c-{i % 3}").encode() for i in range(50)]  # order kept
    assert keys[50] == state_key("default", "a-9").encode()  # the tenant's agent (no tenant: "default")
    assert orjson.loads(h.producer.batches[0][50][1])["ts"] == NOW_MS - 60_000
    assert h.producer.timeouts == [10.0]


async def test_ndjson_with_blank_lines_and_crlf(h: Harness) -> None:
    lines = [orjson.dumps(ev(i)) for i in range(3)]
    body = lines[0] + b"\r\n\n" + lines[1] + b"\n  \n" + lines[2] + b"\n"
    resp = await h.post(body, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 3, "duplicates": 0}


async def test_ndjson_bad_line_is_rejected_alone(h: Harness) -> None:
    body = orjson.dumps(ev(1)) + b"\n{not json\n" + orjson.dumps(ev(2)) + b"\n"
    resp = await h.post(body, headers={"Content-Type": "application/x-ndjson; charset=utf-8"})
    assert resp.status_code == 422
    data = resp.json()
    assert data["accepted"] == 2 and data["duplicates"] == 0
    [err] = data["errors"]
    assert err["index"] == 1 and err["line"] == 2 and err["event_id"] is None
    assert "not valid JSON" in err["reason"]
    assert h.sample("floorwatch_ingest_rejected_total", reason="invalid_json") == 1


async def test_empty_array_and_empty_ndjson_accept_nothing(h: Harness) -> None:
    assert (await h.post([])).json() == {"accepted": 0, "duplicates": 0}
    resp = await h.post(b"\n\n", headers={"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 202 and resp.json() == {"accepted": 0, "duplicates": 0}
    assert h.producer.batches == []


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (b"", "invalid_json", "empty"),
        (b"{oops", "invalid_json", "not valid JSON"),
        (orjson.dumps(ev(1)) + b"\n" + orjson.dumps(ev(2)), "invalid_json", "application/x-ndjson"),
        (b"42", "not_object", "JSON object or an array"),
        (b'"text"', "not_object", "JSON object or an array"),
    ],
)
async def test_bad_body_is_422_with_reason(h: Harness, body: bytes, code: str, needle: str) -> None:
    resp = await h.post(body)
    assert resp.status_code == 422
    data = resp.json()
    assert needle in data["detail"]
    assert data["accepted"] == 0 and data["errors"] == []
    assert h.sample("floorwatch_ingest_rejected_total", reason=code) == 1


# --- per-event validation, partial acceptance, atomic -------------------------------------------


async def test_invalid_events_get_per_event_reasons_and_valid_ones_still_go(h: Harness) -> None:
    batch: list[Any] = [
        ev(0),
        ev(1, sender=None),  # missing sender
        ev(2, type="message.deleted"),  # unknown type
        "not an object",
        ev(4, platform="JD"),  # upper-case platform
        ev(5),
        {k: v for k, v in ev(6).items() if k != "event_id"},
    ]
    resp = await h.post(batch)
    assert resp.status_code == 422
    data = resp.json()
    assert data["accepted"] == 2 and data["duplicates"] == 0
    errors = {e["index"]: e for e in data["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 6]
    assert errors[1] == {"index": 1, "event_id": "e-c-1-1", "reason": "sender is required for message"}
    assert errors[2]["event_id"] == "e-c-1-2" and "type must be one of" in errors[2]["reason"]
    assert errors[3]["event_id"] is None and "JSON object" in errors[3]["reason"]
    assert "lower-case" in errors[4]["reason"]
    assert errors[6]["event_id"] is None and "event_id is required" in errors[6]["reason"]
    assert "5 of 7 events are invalid" in data["detail"]
    assert [orjson.loads(v)["event_id"] for _, v in h.producer.records] == ["e-c-1-0", "e-c-1-5"]
    assert h.sample("floorwatch_ingest_rejected_total", reason="bad_field") == 3
    assert h.sample("floorwatch_ingest_rejected_total", reason="unknown_type") == 1
    assert h.sample("floorwatch_ingest_rejected_total", reason="not_object") == 1
    assert h.sample("floorwatch_ingest_events_total", result="rejected") == 5
    assert h.sample("floorwatch_ingest_events_total", result="accepted") == 2


async def test_atomic_writes_nothing_when_any_event_is_invalid(h: Harness) -> None:
    batch = [ev(0), ev(1, chars=-1), ev(2)]
    resp = await h.post(batch, params={"atomic": "true"})
    assert resp.status_code == 422
    data = resp.json()
    assert data["accepted"] == 0
    assert [e["index"] for e in data["errors"]] == [1]
    assert "nothing was written" in data["detail"]
    assert h.producer.batches == []
    assert h.sample("floorwatch_ingest_rejected_total", reason="atomic_batch") == 2
    # Nothing was remembered as seen: the fixed batch goes through completely.
    resp = await h.post([ev(0), ev(1), ev(2)], params={"atomic": "true"})
    assert resp.status_code == 202 and resp.json() == {"accepted": 3, "duplicates": 0}


async def test_atomic_parameter_must_be_boolean(h: Harness) -> None:
    resp = await h.post(ev(1), params={"atomic": "maybe"})
    assert resp.status_code == 400
    assert h.producer.batches == []


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic czNjcmV0"}],
)
async def test_missing_or_wrong_token_is_401(h: Harness, headers: dict[str, str]) -> None:
    resp = await h.client.post("/v1/events", content=orjson.dumps(ev(1)), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert h.producer.batches == []
    assert h.sample("floorwatch_ingest_rejected_total", reason="unauthorized") == 1
    assert h.sample("floorwatch_ingest_requests_total", code="401") == 1


async def test_non_ascii_token_is_401_not_500(h: Harness) -> None:
    resp = await h.client.post(
        "/v1/events", content=orjson.dumps(ev(1)), headers=[(b"Authorization", "Bearer tökén".encode())]
    )
    assert resp.status_code == 401


async def test_no_token_configured_refuses_everything(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="floorwatch.ingest"):
        h = await make_harness(token="")
    assert any("INGEST_TOKEN is not set" in r.getMessage() for r in caplog.records)
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        resp = await h.client.post("/v1/events", content=orjson.dumps(ev(1)), headers=headers)
        assert resp.status_code == 503
        assert resp.json()["detail"] == "ingest token not configured (set INGEST_TOKEN)"
    assert h.producer.batches == []


async def test_allow_unauthenticated_without_token(make_harness: MakeHarness, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="floorwatch.ingest"):
        h = await make_harness(token="", allow_unauthenticated=True)
    assert any("INGEST_ALLOW_UNAUTHENTICATED" in r.getMessage() for r in caplog.records)
    resp = await h.client.post("/v1/events", content=orjson.dumps(ev(1)))
    assert resp.status_code == 202


async def test_token_still_required_when_set_even_if_unauthenticated_allowed(make_harness: MakeHarness) -> None:
    h = await make_harness(allow_unauthenticated=True)
    resp = await h.client.post("/v1/events", content=orjson.dumps(ev(1)))
    assert resp.status_code == 401


# --- limits --------------------------------------------------------------------------------------


async def test_content_length_over_limit_is_413(make_harness: MakeHarness) -> None:
    h = await make_harness(max_body_bytes=1000)
    resp = await h.post([ev(i) for i in range(20)])
    assert resp.status_code == 413
    assert "larger than 1000 bytes" in resp.json()["detail"]
    assert h.sample("floorwatch_ingest_rejected_total", reason="body_too_large") == 1


async def test_streamed_body_without_length_is_cut_at_limit(make_harness: MakeHarness) -> None:
    h = await make_harness(max_body_bytes=1000)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b" " * 100

    resp = await h.client.post("/v1/events", content=chunks(), headers=AUTH)
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413
    assert sent < 100, "the body was read to the end before refusing it"
    assert h.producer.batches == []


async def test_body_at_the_limit_is_fine(make_harness: MakeHarness) -> None:
    body = orjson.dumps([ev(i) for i in range(3)])
    h = await make_harness(max_body_bytes=len(body))
    assert (await h.post(body)).status_code == 202


@pytest.mark.parametrize("ndjson", [False, True])
async def test_batch_over_max_is_413(make_harness: MakeHarness, ndjson: bool) -> None:
    h = await make_harness(max_batch=10)
    events = [ev(i) for i in range(11)]
    if ndjson:
        body = b"\n".join(orjson.dumps(e) for e in events)
        resp = await h.post(body, headers={"Content-Type": "application/x-ndjson"})
    else:
        resp = await h.post(events)
    assert resp.status_code == 413
    assert "at most 10" in resp.json()["detail"]
    assert h.producer.batches == []
    assert h.sample("floorwatch_ingest_rejected_total", reason="batch_too_large") == 1
    assert (await h.post(events[:10])).status_code == 202


# --- duplicates ----------------------------------------------------------------------------------


async def test_acknowledged_ids_are_counted_as_duplicates_and_not_resent(h: Harness) -> None:
    batch = [ev(i) for i in range(5)]
    assert (await h.post(batch)).json() == {"accepted": 5, "duplicates": 0}
    resp = await h.post([*batch[2:], ev(5)])
    assert resp.status_code == 202
    assert resp.json() == {"accepted": 1, "duplicates": 3}
    assert len(h.producer.records) == 6
    assert h.sample("floorwatch_ingest_events_total", result="duplicate") == 3
    assert h.sample("floorwatch_ingest_events_total", result="accepted") == 6


async def test_duplicates_within_one_batch_count_once_first_wins(h: Harness) -> None:
    batch = [ev(1, chars=1), ev(1, chars=2), ev(2), ev(1, chars=3)]
    resp = await h.post(batch)
    assert resp.json() == {"accepted": 2, "duplicates": 2}
    assert [orjson.loads(v).get("chars") for _, v in h.producer.records] == [1, 12]


async def test_dedupe_memory_is_bounded(make_harness: MakeHarness) -> None:
    h = await make_harness(dedupe_size=3)
    await h.post([ev(i) for i in range(5)])  # only e-…-2..4 are remembered
    resp = await h.post([ev(i) for i in range(5)])
    assert resp.json() == {"accepted": 2, "duplicates": 3}
    assert h.sample("floorwatch_ingest_dedupe_entries") == 3


# --- Kafka failures ------------------------------------------------------------------------------


async def test_send_failure_is_503_and_nothing_is_marked_seen(h: Harness) -> None:
    h.producer.fail = "KafkaTimeoutError()"
    batch = [ev(i) for i in range(4)]
    resp = await h.post(batch)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"
    data = resp.json()
    assert "Kafka unavailable" in data["detail"] and "KafkaTimeoutError" in data["detail"]
    assert data["accepted"] == 0
    assert h.sample("floorwatch_ingest_rejected_total", reason="kafka_unavailable") == 4
    assert h.sample("floorwatch_ingest_requests_total", code="503") == 1
    assert len(h.app.state.seen) == 0
    # Kafka is back: the retry is accepted in full, not counted as duplicates.
    h.producer.fail = None
    resp = await h.post(batch)
    assert resp.status_code == 202
    assert resp.json() == {"accepted": 4, "duplicates": 0}


async def test_partly_acknowledged_batch_remembers_only_acked_ids(h: Harness) -> None:
    h.producer.fail = "one partition leader missing"
    h.producer.acked_on_failure = frozenset({0, 2})
    batch = [ev(i) for i in range(4)]
    resp = await h.post(batch)
    assert resp.status_code == 503
    assert resp.json()["accepted"] == 2
    h.producer.fail = None
    resp = await h.post(batch)
    assert resp.json() == {"accepted": 2, "duplicates": 2}
    assert [orjson.loads(v)["event_id"] for _, v in h.producer.batches[-1]] == ["e-c-1-1", "e-c-1-3"]


async def test_not_connected_yet_is_503_without_trying(h: Harness) -> None:
    h.producer.connected = False
    resp = await h.post([ev(1)])
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
    assert "not connected" in resp.json()["detail"]
    assert h.producer.timeouts == []


async def test_invalid_plus_kafka_down_is_503_with_errors(h: Harness) -> None:
    h.producer.fail = "down"
    resp = await h.post([ev(1), ev(2, sender="martian")])
    assert resp.status_code == 503
    assert [e["index"] for e in resp.json()["errors"]] == [1]


async def test_all_duplicates_need_no_kafka(h: Harness) -> None:
    await h.post([ev(1)])
    h.producer.connected = False
    resp = await h.post([ev(1)])
    assert resp.status_code == 202 and resp.json() == {"accepted": 0, "duplicates": 1}


async def test_a_bug_is_500_and_logged(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.producer.crash = True
    with caplog.at_level(logging.ERROR, logger="floorwatch.ingest"):
        resp = await h.post([ev(1)])
    assert resp.status_code == 500
    assert "internal error" in resp.json()["detail"]
    assert any(r.exc_info for r in caplog.records)
    assert h.sample("floorwatch_ingest_requests_total", code="500") == 1


# --- event-time policy ---------------------------------------------------------------------------


async def test_ts_far_in_future_or_past_is_rejected_by_reason(h: Harness) -> None:
    batch = [
        ev(0, ts=NOW_MS + 299_000),  # within 5 min ahead: fine
        ev(1, ts=NOW_MS + 301_000),
        ev(2, ts="2027-01-15T16:10:00+08:00"),  # 10 min ahead
        ev(3, ts=NOW_MS - 7 * 86_400_000 + 1000),  # just under 7 days old: fine
        ev(4, ts=NOW_MS - 8 * 86_400_000),
    ]
    resp = await h.post(batch)
    assert resp.status_code == 422
    data = resp.json()
    assert data["accepted"] == 2
    reasons = {e["index"]: e["reason"] for e in data["errors"]}
    assert sorted(reasons) == [1, 2, 4]
    assert "in the future" in reasons[1] and "clock" in reasons[1]
    assert reasons[2].startswith("ts is 10 min in the future")
    assert reasons[4].startswith("ts is 8.0 days in the past")
    assert h.sample("floorwatch_ingest_rejected_total", reason="ts_future") == 2
    assert h.sample("floorwatch_ingest_rejected_total", reason="ts_past") == 1


async def test_ts_policy_can_be_disabled(make_harness: MakeHarness) -> None:
    h = await make_harness(max_future_s=0, max_past_s=0)
    resp = await h.post([ev(0, ts=NOW_MS + 86_400_000), ev(1, ts="2020-01-01T00:00:00Z")])
    assert resp.status_code == 202


# --- health and metrics ---------------------------------------------------------------------------


async def test_healthz_reports_kafka_and_caches_the_probe(h: Harness) -> None:
    for _ in range(5):
        resp = await h.client.get("/healthz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok", "kafka": "connected"}
    assert h.producer.pings == 1  # the broker is asked at most once per 2 s


async def test_healthz_503_until_connected_and_when_unreachable(make_harness: MakeHarness) -> None:
    producer = FakeProducer()
    producer.connected = False
    h = await make_harness(producer=producer, health_cache_s=0.0)
    resp = await h.client.get("/healthz")
    assert resp.status_code == 503 and resp.json()["kafka"] == "connecting"
    producer.connected = True
    producer.reachable = False
    resp = await h.client.get("/healthz")
    assert resp.status_code == 503 and resp.json()["kafka"] == "unreachable"
    producer.reachable = True
    assert (await h.client.get("/healthz")).status_code == 200


async def test_lifespan_starts_and_stops_the_producer(make_harness: MakeHarness) -> None:
    h = await make_harness()
    assert h.producer.started


async def test_metrics_endpoint_exposes_the_counters(h: Harness) -> None:
    await h.post([ev(0), ev(0), ev(1, sender="x")])
    await h.client.post("/v1/events", content=b"{}")
    text = (await h.client.get("/metrics")).text
    assert 'floorwatch_ingest_events_total{result="accepted"} 1.0' in text
    assert 'floorwatch_ingest_events_total{result="duplicate"} 1.0' in text
    assert 'floorwatch_ingest_events_total{result="rejected"} 1.0' in text
    assert 'floorwatch_ingest_rejected_total{reason="bad_field"} 1.0' in text
    assert 'floorwatch_ingest_rejected_total{reason="unauthorized"} 1.0' in text
    assert 'floorwatch_ingest_rejected_total{reason="ts_future"} 0.0' in text
    assert 'floorwatch_ingest_requests_total{code="422"} 1.0' in text
    assert 'floorwatch_ingest_requests_total{code="401"} 1.0' in text
    assert "floorwatch_ingest_request_seconds_count 2.0" in text
    assert "floorwatch_ingest_kafka_send_seconds_count 1.0" in text
    assert "floorwatch_ingest_kafka_connected 1.0" in text


async def test_each_event_lands_in_exactly_one_result(h: Harness) -> None:
    batch = [ev(0), ev(0), ev(1, ts=NOW_MS + 3_600_000), "x", ev(2)]
    await h.post(batch)
    total = sum(h.sample("floorwatch_ingest_events_total", result=r) for r in ("accepted", "duplicate", "rejected"))
    assert total == len(batch)


# --- never a 500 for bad input --------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
_fieldish = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=140) | st.integers(),
        "type": st.sampled_from(["message", "agent.status", "csat.rated", "order.placed", "nope"]),
        "ts": st.integers() | st.text(max_size=40) | st.just(NOW_MS),
        "shop_id": st.text(max_size=5),
        "platform": st.sampled_from(["jd", "JD", ""]),
        "conversation_id": st.text(max_size=5),
        "sender": st.text(max_size=8),
        "score": _json_values,
        "amount": _json_values,
        "queues": _json_values,
        "capacity": _json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=300) | st.lists(_fieldish | _json_values, max_size=6).map(lambda v: json.dumps(v).encode())
)
async def test_bad_input_never_500(make_harness: MakeHarness, body: bytes) -> None:
    h = await make_harness()
    for ctype in ("application/json", "application/x-ndjson"):
        resp = await h.post(body, headers={"Content-Type": ctype})
        assert resp.status_code in (202, 413, 422), resp.text


async def test_settings_are_frozen_and_overridable() -> None:
    s = base_settings()
    assert replace(s, max_batch=3).max_batch == 3
    assert s.auth_mode == "token"
