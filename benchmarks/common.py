"""Shared pieces of the benchmarks: the broker, seeded simulator traffic, process accounting, statistics.

Everything here is bounded: helpers take deadlines, and the broker started by `Broker` is stopped
by pid when the `with` block ends (it runs on TEST_PORT_OFFSET, 700 by default, never the demo's ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from services.core.kafka_security import client_kwargs

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Simulated floors start at UTC midnight two days ago: recent enough for the broker's 7-day retention
# (record timestamps are event times in the peer's repartition topic), and the same all day long.
# Ids do not depend on it (each run_id is fixed), so a seed always gives the same events.
START_MS = (int(time.time()) // 86_400 - 2) * 86_400_000
EVENTS_PER_UNIT_FLOOR_S = 16.5  # the default floor (6 shops, 57 agents, 2 chats/s) emits ~16.5 events/s
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------ traffic


def scaled_floor(scale: int, seed: int = 7, start_ms: int = START_MS, run_id: str | None = None) -> Any:
    """The simulator's default floor with `scale` x the agents and `scale` x the arrivals.

    Same mix of events per conversation (bot share, transfers, orders, CSAT, abandonment) as the
    default floor; only the size changes, so one unit floor's ~16.5 events/s become scale x that.
    """
    from services.simulator.model import DEFAULT_SHOPS, FloorModel, SimConfig

    shops = tuple(dataclasses.replace(s, agents=s.agents * scale) for s in DEFAULT_SHOPS)
    cfg = SimConfig(start_ms=start_ms, seed=seed, rate_factor=float(scale), shops=shops,
                    run_id=run_id or f"bench-s{seed}-x{scale}")
    return FloorModel(cfg)


def records_of(events: Sequence[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, normalised value) exactly as ingest writes them to the chat-events topic."""
    from services.core.events import parse_event

    out = []
    for obj in events:
        ev = parse_event(obj)
        out.append((ev.key.encode(), ev.to_json()))
    return out


def sim_records(n: int, scale: int, seed: int = 7, step_ms: int = 60_000) -> tuple[list[tuple[bytes, bytes]], int]:
    """At least `n` records of a scaled floor (cut at n); returns them and the simulated span in ms."""
    model = scaled_floor(scale, seed)
    t = START_MS
    recs: list[tuple[bytes, bytes]] = []
    while len(recs) < n:
        t += step_ms
        recs.extend(records_of(model.events_until(t)))
    return recs[:n], t - START_MS


# ------------------------------------------------------------------------------------------ processes


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def self_rss_bytes() -> int:
    return proc_rss_bytes(os.getpid())


def self_peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------------------------------ statistics


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for no samples."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def rnd(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


# ------------------------------------------------------------------------------------------ broker


def port_offset() -> int:
    return int(os.environ.get("TEST_PORT_OFFSET", "700") or 700)


@dataclasses.dataclass
class Broker:
    """A single-node Kafka of the project's own stack code, on TEST_PORT_OFFSET ports (RUN_DIR wiped)."""

    cfg: Any
    bootstrap: str
    kafka: Any  # deploy.local.testing.KafkaBroker

    def create_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        self.kafka.create_topic(name, partitions, compact)


@contextlib.contextmanager
def broker() -> Iterator[Broker]:
    os.environ.setdefault("TEST_PORT_OFFSET", str(port_offset()))
    from deploy.local.stack import down
    from deploy.local.testing import config_for_tests, reset, start_broker_for_tests

    cfg = config_for_tests()
    reset(cfg)
    try:
        kb = start_broker_for_tests(cfg)
        yield Broker(cfg=cfg, bootstrap=kb.bootstrap, kafka=kb)
    finally:
        down(cfg)


async def prefill(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> float:
    """Write records (acks=all, as ingest does) as fast as the broker takes them; returns seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=1_000_000, max_request_size=8_000_000, **client_kwargs())
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for i, (k, v) in enumerate(records):
            pending.append(await producer.send(topic, key=k, value=v))
            if i % 20_000 == 19_999:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - started


async def end_offsets_total(bootstrap: str, topic: str, partitions: int) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_kwargs())
    await c.start()
    try:
        end = await c.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return int(sum(end.values()))
    finally:
        await c.stop()


def dump_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)
