"""Ingest against a hostile or careless sender (issue 16): poison never blocks a sender, reserved names are
refused, a tenant's token posts its tenant only, placeholder secrets stop the start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from services.core.events import MAX_QUEUES_PER_AGENT, EventError, parse_event
from services.core.limits import TenantLimits
from services.ingest.producer import KafkaEventProducer
from services.ingest.settings import IngestSettings
from tests.unit.test_ingest_api import AUTH, NOW_MS, Harness, MakeHarness, base_settings, ev, h, make_harness

__all__ = ["h", "make_harness"]  # the fixtures, shared with test_ingest_api.py


def order(n: int, amount: Any, **fields: Any) -> dict[str, Any]:
    return ev(n, type="order.placed", sender=None, chars=None, amount=amount, currency="CNY", **fields)


# --- Medium 6: every string bounded, a too-large record refused per event ---------------------------------


async def test_a_huge_amount_is_refused_alone_and_the_rest_goes(h: Harness) -> None:
    r = await h.post([ev(1), order(2, "1" * 2_000_000), ev(3)])
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["accepted"] == 2
    (err,) = body["errors"]
    assert err["index"] == 1 and "amount" in err["reason"] and len(r.content) < 2000
    assert len(h.producer.records) == 2


@pytest.mark.parametrize("amount", ["1e400", "99999999999999999999", 10**16, "0." + "1" * 40])
def test_amount_is_bounded_in_length_and_size(amount: Any) -> None:
    with pytest.raises(EventError, match="amount"):
        parse_event(order(1, amount) | {"ts": NOW_MS})


def test_every_string_field_has_a_bound() -> None:
    """The bounds table in docs/events-bounds.md, checked: one past each bound is refused."""
    from services.core import events

    cases = {
        "event_id": events.MAX_ID_LEN, "conversation_id": events.MAX_ID_LEN, "customer_id": events.MAX_ID_LEN,
        "agent_id": events.MAX_ID_LEN, "tenant": events.MAX_NAME_LEN, "shop_id": events.MAX_NAME_LEN,
        "platform": events.MAX_NAME_LEN, "queue": events.MAX_NAME_LEN, "channel": events.MAX_NAME_LEN,
    }
    for name, bound in cases.items():
        ok = ev(1, type="conversation.opened", sender=None, chars=None, queue="presales") | {name: "a" * bound}
        parse_event(ok)
        with pytest.raises(EventError, match=name):
            parse_event({**ok, name: "a" * (bound + 1)})
    transfer = ev(1, type="conversation.transferred", sender=None, chars=None, to_queue="q",
                  reason="r" * events.MAX_REASON_LEN)
    parse_event(transfer)
    with pytest.raises(EventError, match="reason"):
        parse_event({**transfer, "reason": "r" * (events.MAX_REASON_LEN + 1)})
    with pytest.raises(EventError, match="currency"):
        parse_event(order(1, "10.00") | {"currency": "CNYY"})


class TinyKafka:
    """An aiokafka producer whose records are refused as too large past `client_limit` bytes (as
    aiokafka does against max_request_size) or, after sending, past `broker_limit` (message.max.bytes)."""

    def __init__(self, client_limit: int, broker_limit: int) -> None:
        self.client_limit, self.broker_limit = client_limit, broker_limit
        self.sent: list[bytes] = []

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        if len(value) > self.client_limit:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes when serialized")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(value) > self.broker_limit:
            fut.set_exception(MessageSizeTooLargeError())
        else:
            self.sent.append(value)
            fut.set_result(None)
        return fut


def agent_with_queues(n: int, name_len: int) -> dict[str, Any]:
    return {
        "event_id": f"st-{n}", "type": "agent.status", "ts": NOW_MS - 1000, "shop_id": "acme-jd", "platform": "jd",
        "agent_id": f"a-{n}", "status": "online", "capacity": 5,
        "queues": [f"{i:03d}" + "q" * (name_len - 3) for i in range(64)],
    }


async def test_a_record_too_large_for_kafka_is_a_422_for_that_event_never_a_503(make_harness: MakeHarness) -> None:
    kafka = TinyKafka(client_limit=6000, broker_limit=3000)
    producer = KafkaEventProducer("unused:9092", "unit.events")
    producer._producer = kafka  # type: ignore[assignment]  # "connected" to the fake
    renewed: list[object] = []

    async def renew(broken: object) -> TinyKafka:
        # A refused batch costs an idempotent producer its sequence: ingest starts a new one (here the same
        # fake; tests/integration/test_ingest_poison_kafka.py does it against a real broker).
        renewed.append(broken)
        return kafka

    producer._renew = renew  # type: ignore[method-assign,assignment]
    # Agents listing the contract's 64 queues: within the contract, so Kafka is the one to refuse them.
    roomy = TenantLimits(queues=1000, queues_per_agent=MAX_QUEUES_PER_AGENT)
    h = await make_harness(producer=producer, limits=roomy)
    for _ in range(3):  # a retry meets the same answer: the sender is never told to come back later
        r = await h.post([ev(1), agent_with_queues(2, 100), ev(3), agent_with_queues(4, 60)])
        assert r.status_code == 422, r.text[:500]
        errors = r.json()["errors"]
        assert [(e["index"], e["event_id"]) for e in errors] == [(1, "st-2"), (3, "st-4")]
        assert all("Kafka" in e["reason"] for e in errors)
        assert h.sample("floorwatch_ingest_rejected_total", reason="too_large") >= 2
        assert h.sample("floorwatch_ingest_rejected_total", reason="kafka_unavailable") == 0
    assert len(kafka.sent) == 2  # the two small ones, once: the retries were duplicates
    assert renewed, "a batch the broker refused leaves the producer replaced"


# --- Medium 8: reserved names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("tenant", "*"), ("shop_id", "*"), ("platform", "*"), ("queue", "*"), ("queue", "@agent:a-12"),
    ("shop_id", "@agent:x"), ("to_queue", "@agent:a-1"),
])
async def test_reserved_names_are_refused_with_a_reason(h: Harness, field: str, value: str) -> None:
    event = ev(1, type="conversation.transferred", sender=None, chars=None, to_queue="aftersales", queue="presales")
    r = await h.post([event | {field: value}])
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert "reserved" in err["reason"] and field in err["reason"]
    assert h.producer.records == []


async def test_an_agent_serving_a_reserved_queue_is_refused(h: Harness) -> None:
    status = agent_with_queues(1, 8) | {"queues": ["presales", "@agent:boss"]}
    r = await h.post(status)
    assert r.status_code == 422 and "reserved" in r.json()["errors"][0]["reason"]


# --- Must 5: a token per tenant ----------------------------------------------------------------------------


async def test_a_tenant_token_posts_its_own_tenant_only(make_harness: MakeHarness) -> None:
    h = await make_harness(tokens={"acme": "acme-token-123", "globex": "globex-token-456"})
    acme = {"Authorization": "Bearer acme-token-123"}
    r = await h.post([ev(1, tenant="acme"), ev(2, tenant="globex"), ev(3, tenant=None)], headers=acme)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [e["index"] for e in errors] == [1, 2] and all("tenant" in e["reason"] for e in errors)
    assert r.json()["accepted"] == 1
    assert h.sample("floorwatch_ingest_rejected_total", reason="wrong_tenant") == 2
    r = await h.post([ev(4, tenant="globex")], headers={"Authorization": "Bearer globex-token-456"})
    assert r.status_code == 202
    # INGEST_TOKEN stays the all-tenants token.
    assert (await h.post([ev(5, tenant="globex"), ev(6, tenant="acme")], headers=AUTH)).status_code == 202
    assert (await h.post([ev(7)], headers={"Authorization": "Bearer acme-token-12"})).status_code == 401


async def test_tenant_tokens_alone_configure_ingest(make_harness: MakeHarness) -> None:
    h = await make_harness(token="", tokens={"acme": "acme-token-123"})
    assert (await h.post([ev(1)], headers={"Authorization": "Bearer acme-token-123"})).status_code == 202
    assert (await h.post([ev(2)], headers={"Authorization": "Bearer "})).status_code == 401


def test_ingest_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_TOKENS", "acme=tok-a1b2c3, globex=tok-d4e5f6")
    assert IngestSettings().tokens == {"acme": "tok-a1b2c3", "globex": "tok-d4e5f6"}
    for bad in ("acme", "acme=", "=tok", "acme=t1,acme=t2", "acme=same,globex=same"):
        monkeypatch.setenv("INGEST_TOKENS", bad)
        with pytest.raises(SystemExit, match="INGEST_TOKENS"):
            IngestSettings()


# --- Must 7: placeholders refused at start -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "field"), [
    ("INGEST_TOKEN", "token"), ("CHATWOOT_WEBHOOK_SECRET", "chatwoot_webhook_secret"),
    ("LIVECHAT_SECRET_KEY", "livechat_secret_key"), ("SUNSHINE_API_KEY", "sunshine_api_key"),
])
@pytest.mark.parametrize("value", ["replace-me", "changeme"])
def test_placeholder_secrets_stop_ingest_at_start(name: str, field: str, value: str) -> None:
    with pytest.raises(SystemExit, match=name):
        base_settings(**{field: value})
    with pytest.raises(SystemExit, match="INGEST_TOKENS"):
        base_settings(tokens={"acme": value})
