"""Run real scorer workers against the test broker, each run isolated by its own topics and group.

A run gets a prefix: its own internal topics and consumer group, and the chat-events topic it
is pointed at (shared between runs that score the same events). Workers are real processes
(`python -m services.scorer`), so a test can SIGKILL one and start it again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from deploy.local.config import topics_for
from deploy.local.testing import KafkaBroker
from services.core.config import deployment_topics
from services.core.events import parse_event
from services.core.scope import Scope
from services.kafka_util.read import read_to_end

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScorerRun:
    kafka: KafkaBroker
    prefix: str
    events_topic: str
    event_partitions: int = 6
    queue_partitions: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)

    @property
    def topics(self) -> dict[str, str]:
        p = self.prefix
        return {
            "TOPIC_EVENTS": self.events_topic,
            "TOPIC_DEAD_LETTER": f"{p}.dead-letter",
            "TOPIC_AGENT_CHANGES": f"{p}.agent-changes",
            "TOPIC_PARTIALS": f"{p}.partials",
            "TOPIC_VIEWS": f"{p}.views",
            "TOPIC_ALERTS": f"{p}.alerts",
        }

    async def create_topics(self) -> None:
        """The run's own topics as a deployment makes them (services.core.config.deployment_topics), but for the
        chat-events topic, which the run shares."""
        specs = deployment_topics(topics_for(self.topics), self.event_partitions, self.queue_partitions)
        for name, parts, compact in specs:
            if name != self.events_topic:
                await self.kafka.acreate_topic(name, parts, compact)

    def env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.topics)
        env.update({
            "KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "EVENT_PARTITIONS": str(self.event_partitions),
            "QUEUE_PARTITIONS": str(self.queue_partitions),
            "SCORER_APP_ID": f"{self.prefix}-scorer",
            "SCORER_STORE": "memory://",
            "SCORER_CLOCK": "event",
            "SCORER_WORKER_INDEX": str(index),
            "SCORER_METRICS_PORT": str(self.ports[index]),
            "RUN_DIR": str(REPO / ".run" / "harness" / self.prefix),
            "LOG_LEVEL": "WARNING",
            "SCORER_SESSION_TIMEOUT_S": "10",
            # Purged often, so that every run (crashes and rebalances too) would show a purge that lost partials.
            "SCORER_PARTIALS_PURGE_S": "2",
        })
        env.update(self.extra_env)
        return env

    def start_worker(self, index: int) -> None:
        self.ports.setdefault(index, free_port())
        log_dir = REPO / "test-artifacts" / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{self.prefix}-scorer-{index}.log").open("ab")
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "services.scorer"], cwd=REPO, env=self.env(index),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(index)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for index in list(self.procs):
            proc = self.procs[index]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            del self.procs[index]

    async def wait_healthy(self, index: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ports[index]}/healthz"
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                proc = self.procs[index]
                assert proc.poll() is None, f"scorer {index} exited with {proc.returncode}"
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError(f"scorer {index} not healthy within {timeout} s")

    async def metrics_text(self, index: int, *families: str) -> str:
        """Worker `index`'s /metrics page: the named families only (`?name[]=`), or all of it."""
        async with httpx.AsyncClient(timeout=5) as client:
            url = f"http://127.0.0.1:{self.ports[index]}/metrics"
            return (await client.get(url, params=[("name[]", f) for f in families])).text

    async def metric_sum(self, name: str, **labels: str) -> float:
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for index in self.procs:
            for line in (await self.metrics_text(index)).splitlines():
                if line.startswith(name) and (line[len(name)] in "{ ") and all(w in line for w in want):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    async def read_compacted(self, topic: str, read_committed: bool = False) -> dict[bytes, bytes]:
        """The latest value per key (what a compacted topic converges to)."""
        out: dict[bytes, bytes] = {}
        for key, value in await self.read_all(topic, read_committed):
            if key is not None:
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = value
        return out

    async def read_all(self, topic: str, read_committed: bool = False) -> list[tuple[bytes | None, bytes | None]]:
        """Every record of the topic (one of the run's queue-partitioned topics), in partition order."""
        out: list[tuple[bytes | None, bytes | None]] = []
        await read_to_end(
            self.kafka.bootstrap, topic, range(self.queue_partitions), lambda rec: out.append((rec.key, rec.value)),
            isolation_level="read_committed" if read_committed else "read_uncommitted",
        )
        return out

    async def day_records(self) -> dict[tuple[Any, ...], dict[str, int]]:
        """The scorecard's day records on the views topic: key [@day, tenant, shop, platform, who, start] -> sums."""
        raw = await self.read_compacted(self.topics["TOPIC_VIEWS"])
        return {
            tuple(key): orjson.loads(v)["sums"] for k, v in raw.items() if len(key := orjson.loads(k)) == 6
        }

    async def views(self) -> dict[Scope, dict[str, Any]]:
        raw = await self.read_compacted(self.topics["TOPIC_VIEWS"])
        # The queue and agent views (the scorecard's day records share the topic: keys of 6, not 4).
        return {
            Scope.from_queue_first(key): orjson.loads(v) for k, v in raw.items() if len(key := orjson.loads(k)) == 4
        }


async def produce(bootstrap: str, topic: str, events: Iterable[dict[str, Any]], *, per_second: float = 0) -> int:
    """Validate and write events as ingest would (acks=all); paced when per_second > 0."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_000_000)
    await producer.start()
    n = 0
    started = time.monotonic()
    try:
        for obj in events:
            ev = parse_event(obj)
            await producer.send(topic, key=ev.key.encode(), value=ev.to_json())
            n += 1
            if per_second and n % 100 == 0:
                ahead = n / per_second - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return n
