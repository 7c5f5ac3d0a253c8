"""What the test fixtures (tests/conftest.py) and the benchmarks hold: the test session's stack
settings, the running broker (`kafka` fixture) and the whole running stack (`stack` fixture)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from deploy.local.config import REPO, StackConfig, StackError, ephemeral_clash, service_env
from deploy.local.kafka import create_topics, start_kafka, topic_names
from deploy.local.processes import log_path, snapshot
from deploy.local.stack import down, start_part, stop_part, up

TEST_PLATFORM_RULES: Final = (
    '{"jd": {"hours": null}, "pdd": {"hours": null}, "taobao": {"hours": null}, "tmall": {"hours": null}}'
)


def config_for_tests(**overrides: object) -> StackConfig:
    """The test session's stack: its own ports and RUN_DIR, fresh secrets, in-memory scorer tables.

    TEST_PORT_OFFSET (default 0) shifts every port and the RUN_DIR, so two test sessions on one
    machine (two developers' trees, say) never share a broker. An offset that puts a port in the
    ephemeral range is refused: the broker-restart tests would find its port taken (ephemeral_clash).
    """
    off = int(os.environ.get("TEST_PORT_OFFSET", "0") or 0)
    webhook_port = 29099 + off
    run_dir = REPO / ".run" / ("test" if off == 0 else f"test-{off}")
    cfg = StackConfig(
        run_dir=run_dir,
        kafka_port=29092 + off,
        kafka_controller_port=29094 + off,
        ingest_port=28081 + off,
        api_port=28080 + off,
        scorer_metrics_port=26066 + off,
        prometheus_port=29090 + off,
        alertmanager_port=29095 + off,
        alert_webhook_url=f"http://127.0.0.1:{webhook_port}/alerts",
        env_file=run_dir / ".env",  # RUN_DIR is wiped first, so every session gets new tokens
        # The platforms' rules counted all day: end-to-end figures must not depend on the hour CI runs at (the
        # counted hours themselves are tested in process: tests/unit/test_platform_rules.py).
        extra_env={"SCORER_STORE": "memory://", "PLATFORM_RULES": TEST_PLATFORM_RULES},
    )
    cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    cfg.validate()
    clash = ephemeral_clash([*cfg.listen_ports, webhook_port])
    if clash is not None:
        raise StackError(f"TEST_PORT_OFFSET={off}: {clash} (a smaller offset)")
    return cfg


@dataclass
class KafkaBroker:
    """What the `kafka` test fixture yields: a running broker and a topic helper."""

    cfg: StackConfig
    bootstrap: str

    def create_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        """Create `name` unless it exists (usable from sync and async tests alike)."""
        create_topics(self.cfg, [(name, partitions, compact)])

    async def acreate_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        await asyncio.to_thread(self.create_topic, name, partitions, compact)

    def topics(self) -> list[str]:
        return topic_names(self.cfg)


@dataclass
class RunningStack:
    """What the `stack` test fixture yields."""

    cfg: StackConfig
    env: dict[str, str]  # the full environment given to the services
    kafka_bootstrap: str
    ingest_url: str
    api_url: str
    scorer_metrics_url: str  # first worker's /metrics
    scorer_metrics_urls: list[str]
    prometheus_url: str
    alertmanager_url: str
    alert_webhook_url: str  # where Alertmanager posts: a test may listen there
    ingest_token: str
    api_token: str
    run_dir: Path

    def stop_part(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_part(self.cfg, name, sig)

    def start_part(self, name: str) -> None:
        start_part(self.cfg, name)

    def log(self, name: str) -> str:
        return snapshot(log_path(self.cfg, name)) or ""


def reset(cfg: StackConfig) -> None:
    """Stop whatever an earlier run left in cfg.run_dir and delete it (test sessions start clean)."""
    down(cfg, wipe=True)


def start_broker_for_tests(cfg: StackConfig) -> KafkaBroker:
    start_kafka(cfg, quiet=True)
    return KafkaBroker(cfg=cfg, bootstrap=cfg.kafka_bootstrap)


def start_stack_for_tests(cfg: StackConfig) -> RunningStack:
    up(cfg, quiet=True)  # reuses the broker if the `kafka` fixture started it
    env = service_env(cfg)
    return RunningStack(
        cfg=cfg,
        env=env,
        kafka_bootstrap=cfg.kafka_bootstrap,
        ingest_url=cfg.ingest_url,
        api_url=cfg.api_url,
        scorer_metrics_url=f"http://127.0.0.1:{cfg.scorer_metrics_port}/metrics",
        scorer_metrics_urls=[f"http://127.0.0.1:{p}/metrics" for p in cfg.scorer_ports],
        prometheus_url=cfg.prometheus_url,
        alertmanager_url=cfg.alertmanager_url,
        alert_webhook_url=cfg.alert_webhook_url,
        ingest_token=env.get("INGEST_TOKEN", ""),
        api_token=env.get("API_TOKEN", ""),
        run_dir=cfg.run_dir,
    )


def copy_logs(cfg: StackConfig, dest: Path) -> None:
    """Copy RUN_DIR/logs (and the rendered configs) into `dest`, e.g. test-artifacts/logs."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in (cfg.logs_dir, cfg.config_dir):
        if folder.is_dir():
            for item in folder.iterdir():
                if item.is_file():
                    shutil.copy2(item, dest / item.name)
