"""The cost of Faust's exactly-once processing against our idempotent at-least-once, in one run.

The same simulated hour is scored twice (fresh group and internal topics each time) by one real
worker, once per guarantee; the figure is events/s from the first to the last event scored, and
both runs must end with the same views. Writes benchmarks/results/processing_guarantee.json.

    python -m benchmarks.processing_guarantee [--hours 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

from deploy.local.stack import down
from deploy.local.testing import KafkaBroker, config_for_tests, reset, start_broker_for_tests
from services.simulator.model import FloorModel, SimConfig
from tests.integration.scorer_harness import ScorerRun, produce

START = 1_795_600_800_000
OUT = Path(__file__).resolve().parent / "results" / "processing_guarantee.json"


async def score(broker: KafkaBroker, topic: str, total: int, guarantee: str) -> dict[str, Any]:
    run = ScorerRun(broker, f"pg-{guarantee[:3]}-{uuid.uuid4().hex[:6]}", topic,
                    extra_env={"SCORER_PROCESSING_GUARANTEE": guarantee})
    await run.create_topics()
    try:
        run.start_worker(0)
        await run.wait_healthy(0, timeout=180)
        started = time.monotonic()
        cpu0 = _cpu(run.procs[0].pid)
        while (seen := await run.metric_sum("floorwatch_scorer_events_total")) < total:
            await asyncio.sleep(0.2)
        seconds = time.monotonic() - started
        cpu = _cpu(run.procs[0].pid) - cpu0
        await asyncio.sleep(3)
        views = await run.views()
        return {"events": seen, "seconds": seconds, "events_per_s": seen / seconds,
                "cpu_us_per_event": cpu / seen * 1e6, "views": len(views), "_views": views}
    finally:
        run.stop()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(hours: float) -> None:
    cfg = config_for_tests()
    reset(cfg)
    broker = start_broker_for_tests(cfg)
    try:
        events = FloorModel(SimConfig(start_ms=START, seed=11, run_id="pg")).events_until(
            START + int(hours * 3_600_000))
        topic = f"pg-{uuid.uuid4().hex[:6]}.chat-events"
        await broker.acreate_topic(topic, 6)
        total = await produce(broker.bootstrap, topic, [dict(e) for e in events])
        results = {g: await score(broker, topic, total, g) for g in ("at_least_once", "exactly_once")}
        same = results["at_least_once"].pop("_views") == results["exactly_once"].pop("_views")
        alo, eos = results["at_least_once"], results["exactly_once"]
        summary = {
            "what": "one scorer worker, a simulated hour pre-filled in Kafka, each guarantee on a fresh group",
            "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
            "events": total,
            "at_least_once": alo,
            "exactly_once": eos,
            "exactly_once_over_at_least_once_throughput": eos["events_per_s"] / alo["events_per_s"],
            "same_views": same,
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    finally:
        down(cfg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().hours))
