"""The pipeline on a broker that speaks only SASL_SSL (`make up KAFKA_SECURITY=sasl_ssl`).

A stack of its own (its own ports and RUN_DIR, beside the session's plaintext one): events in
through ingest, a figure out at the API, every service authenticated with SCRAM over TLS; and
the broker refuses whoever comes without TLS, without the CA, or with a wrong password.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.config import REPO, StackConfig, ensure_dotenv, service_env
from deploy.local.kafka import start_kafka
from deploy.local.processes import log_tail
from deploy.local.service_parts import start_services
from deploy.local.stack import down
from deploy.local.testing import config_for_tests, copy_logs, reset
from services.core.kafka_security import client_kwargs

OFFSET = 50  # beside the session's ports (TEST_PORT_OFFSET steps by 100)


@pytest.fixture(scope="module")
def secure_stack() -> Iterator[StackConfig]:
    base = config_for_tests()
    off = OFFSET
    cfg = replace(
        base,
        run_dir=base.run_dir.with_name(base.run_dir.name + "-sasl"),
        kafka_port=base.kafka_port + off, kafka_controller_port=base.kafka_controller_port + off,
        ingest_port=base.ingest_port + off, api_port=base.api_port + off,
        scorer_metrics_port=base.scorer_metrics_port + off, prometheus_port=base.prometheus_port + off,
        alertmanager_port=base.alertmanager_port + off, kafka_security="sasl_ssl",
    )
    cfg = replace(cfg, env_file=cfg.run_dir / ".env")
    reset(cfg)
    try:
        cfg.run_dir.mkdir(parents=True)
        ensure_dotenv(cfg)
        start_kafka(cfg, quiet=True)
        start_services(cfg, quiet=True)
        yield cfg
    except Exception:
        copy_logs(cfg, REPO / "test-artifacts" / "logs-sasl")
        raise
    finally:
        down(cfg, wipe=True)


async def _can_list_topics(bootstrap: str, **security: object) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=4000, **security)
    try:
        await asyncio.wait_for(admin.start(), 8)
        await asyncio.wait_for(admin.list_topics(), 8)
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def test_pipeline_runs_over_sasl_ssl(secure_stack: StackConfig) -> None:
    cfg = secure_stack
    env = service_env(cfg)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_USERNAME"] == "floorwatch"
    server = (cfg.kafka_dir / "server.properties").read_text()
    assert "PLAINTEXT://" not in server.replace("CONTROLLER:PLAINTEXT", "")  # no plaintext listener for clients

    queue = f"sasl-{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    events = [
        {"event_id": f"{queue}-1", "type": "conversation.opened", "ts": now - 20_000, "tenant": "t", "shop_id": "s",
         "platform": "web", "conversation_id": f"{queue}-c", "queue": queue},
        {"event_id": f"{queue}-2", "type": "message", "ts": now - 19_000, "tenant": "t", "shop_id": "s",
         "platform": "web", "conversation_id": f"{queue}-c", "sender": "customer"},
    ]
    r = httpx.post(f"{cfg.ingest_url}/v1/events", json=events,
                   headers={"Authorization": f"Bearer {env['INGEST_TOKEN']}"}, timeout=30)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 90
    view = None
    while time.monotonic() < deadline:
        got = httpx.get(f"{cfg.api_url}/v1/queues/{queue}", timeout=5)
        if got.status_code == 200 and got.json()["live"]["awaiting_reply"] == 1:
            view = got.json()
            break
        time.sleep(0.5)
    assert view is not None, "the buyer never showed at the API through the SASL_SSL broker"
    assert view["windows"]["1m"]["arrivals"] == 1
    password = env["KAFKA_PASSWORD"]
    for name in ("ingest", "scorer-0", "api"):
        assert password not in log_tail(cfg, name, 10_000)


def test_broker_refuses_clients_without_credentials(secure_stack: StackConfig) -> None:
    cfg = secure_stack
    good = service_env(cfg)
    boot = cfg.kafka_bootstrap

    async def check() -> None:
        assert await _can_list_topics(boot, **client_kwargs(good))
        assert not await _can_list_topics(boot)  # plaintext
        assert not await _can_list_topics(boot, **client_kwargs({**good, "KAFKA_PASSWORD": "wrong"}))
        no_ca = {k: v for k, v in good.items() if k != "KAFKA_SSL_CAFILE"}
        assert not await _can_list_topics(boot, **client_kwargs(no_ca))  # a broker we cannot verify
        assert not await _can_list_topics(boot, **client_kwargs({**good, "KAFKA_SECURITY_PROTOCOL": "SSL"}))

    asyncio.run(check())


def test_settings_are_checked_before_any_connection() -> None:
    from services.core.kafka_security import KafkaSecurity, KafkaSecurityError

    with pytest.raises(KafkaSecurityError, match="KAFKA_USERNAME and KAFKA_PASSWORD"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl"})
    with pytest.raises(KafkaSecurityError, match="use one of"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(KafkaSecurityError, match="no such file"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"})
    sec = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_USERNAME": "u",
                                  "KAFKA_PASSWORD": "p4ss"})
    assert "p4ss" not in repr(sec)
    assert sec.aiokafka_kwargs() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                     "sasl_plain_username": "u", "sasl_plain_password": "p4ss"}
    assert KafkaSecurity.from_env({}).aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper() == "PLAINTEXT"  # the session's stack
