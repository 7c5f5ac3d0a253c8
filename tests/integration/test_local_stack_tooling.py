"""The local-stack tooling itself: the test broker answers, topics exist as configured, and the
rendered monitoring configs pass the official offline checkers."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local.monitoring import render_configs
from deploy.local.testing import KafkaBroker, config_for_tests
from services.core.config import Topics


async def test_broker_has_the_standard_topics(kafka: KafkaBroker) -> None:
    cfg = kafka.cfg
    topics = Topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([topics.events, topics.views])}
        assert len(described[topics.events]["partitions"]) == cfg.event_partitions
        assert len(described[topics.views]["partitions"]) == cfg.queue_partitions
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.views)])
        resource = configs[0].to_object()["resources"][0]
        entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        assert entries["cleanup.policy"] == "compact", resource
    finally:
        await admin.close()


async def test_create_topic_then_round_trip(kafka: KafkaBroker) -> None:
    name = f"tooling-{uuid.uuid4().hex[:8]}"
    await kafka.acreate_topic(name, 2)
    kafka.create_topic(name, 2)  # idempotent, and callable from sync code too
    assert name in kafka.topics()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(name, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
        assert record.value == b"hello"
    finally:
        await consumer.stop()


def test_rendered_monitoring_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    cfg = config_for_tests(run_dir=tmp_path, scorer_workers=3)
    prom, am = render_configs(cfg)
    text = prom.read_text()
    base = cfg.scorer_metrics_port
    assert f"'127.0.0.1:{base}', '127.0.0.1:{base + 1}', '127.0.0.1:{base + 2}'" in text
    assert f"127.0.0.1:{cfg.alertmanager_port}" in text  # alerting goes to this stack's Alertmanager
    assert cfg.alert_webhook_url in am.read_text()
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    assert promtool and amtool, "run `make system-deps`"
    subprocess.run([promtool, "check", "config", str(prom)], check=True, capture_output=True)
    subprocess.run([amtool, "check-config", str(am)], check=True, capture_output=True)
