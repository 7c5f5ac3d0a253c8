"""The ceiling: a bare aiokafka consumer that reads and decodes (orjson) the chat-events topic, nothing else.

    python -m benchmarks.ceiling --bootstrap HOST:PORT --topic T --expect N --deadline-s S --out result.json

One consumer group member (like one scorer worker), earliest offsets, every value decoded with orjson.
It stops by itself at N records or at the deadline, and writes what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from pathlib import Path

import orjson


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def consume(bootstrap: str, topic: str, expect: int, deadline_s: float) -> dict[str, object]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-ceiling-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=True,
    )
    started = time.monotonic()
    await consumer.start()
    n = 0
    first_t = last_t = 0.0
    first_cpu = 0.0
    sink = 0
    try:
        while n < expect and time.monotonic() - started < deadline_s:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                if not first_t and records:
                    first_t, first_cpu = time.monotonic(), cpu_s()
                for rec in records:
                    value = orjson.loads(rec.value)  # type: ignore[arg-type]
                    sink += len(value)
                n += len(records)
            if batch:
                last_t = time.monotonic()
        end_cpu = cpu_s()
    finally:
        await consumer.stop()
    return {
        "events": n, "first_at_s": first_t - started if first_t else None, "seconds": last_t - first_t,
        "cpu_s": end_cpu - first_cpu, "timed_out": n < expect, "startup_s": (first_t - started) if first_t else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--deadline-s", type=float, default=300)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    res = asyncio.run(consume(a.bootstrap, a.topic, a.expect, a.deadline_s))
    a.out.write_bytes(orjson.dumps(res))


if __name__ == "__main__":
    main()
