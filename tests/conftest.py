"""Shared fixtures: a real Kafka broker (`kafka`) and the whole local stack (`stack`).

Both run on test ports in RUN_DIR `.run/test` (wiped when the session starts) through the same code
as `make up` (deploy/local/stack.py), so tests exercise what users run:

    def test_x(kafka):                      # broker only, standard floor.* topics created
        kafka.create_topic("t", 3)          # idempotent; `await kafka.acreate_topic(...)` in async code
        ... AIOKafkaProducer(bootstrap_servers=kafka.bootstrap) ...

    async def test_y(stack):                # broker, Prometheus, Alertmanager, ingest, scorer, api
        httpx.post(f"{stack.ingest_url}/v1/events", headers={"Authorization": f"Bearer {stack.ingest_token}"})
        stack.stop_part("scorer-0", signal.SIGKILL); stack.start_part("scorer-0")

Alertmanager posts to `stack.alert_webhook_url` (http://127.0.0.1:29099/alerts): listen there to
receive notifications. Everything is stopped at session end; when anything failed, the logs and
rendered configs are copied to test-artifacts/logs/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from deploy.local.config import StackConfig
from deploy.local.stack import down
from deploy.local.testing import (
    KafkaBroker,
    RunningStack,
    config_for_tests,
    copy_logs,
    reset,
    start_broker_for_tests,
    start_stack_for_tests,
)

REPO = Path(__file__).resolve().parents[1]
ARTIFACT_LOGS = REPO / "test-artifacts" / "logs"

# Hypothesis: `ci` (CI=true, or HYPOTHESIS_PROFILE=ci) is deterministic and has no deadline, so a
# slow shared machine never fails a property test on time alone.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def stack_config() -> StackConfig:
    """The test stack's settings (ports, RUN_DIR .run/test, SCORER_STORE=memory://)."""
    return config_for_tests()


def _save_logs(cfg: StackConfig) -> None:
    copy_logs(cfg, ARTIFACT_LOGS)
    print(f"\nstack logs copied to {ARTIFACT_LOGS}")


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest, stack_config: StackConfig) -> Iterator[KafkaBroker]:
    """A single-node Kafka broker on 127.0.0.1:29092 (controller 29094) with the floor.* topics."""
    reset(stack_config)  # stop leftovers of an earlier session, wipe .run/test
    try:
        broker = start_broker_for_tests(stack_config)
    except Exception:
        _save_logs(stack_config)
        down(stack_config)
        raise
    try:
        yield broker
    finally:
        if request.session.testsfailed:
            _save_logs(stack_config)
        down(stack_config)


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest,
    stack_config: StackConfig,
    kafka: KafkaBroker,
) -> Iterator[RunningStack]:
    """The whole stack on test ports (reusing the `kafka` broker), with fresh random tokens."""
    try:
        running = start_stack_for_tests(stack_config)
    except Exception:
        _save_logs(stack_config)
        raise
    try:
        yield running
    finally:
        if request.session.testsfailed:
            _save_logs(stack_config)
        down(stack_config, keep=("kafka",))  # the broker goes with the `kafka` fixture
