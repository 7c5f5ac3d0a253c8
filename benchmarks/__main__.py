"""Run the benchmarks: `python -m benchmarks [--only throughput,memory] [--quick]` (or `make bench`).

Writes benchmarks/results/latest.json (merged: sections not run keep their last figures, each with its
own date) and benchmarks/results/throughput_freshness.png. Sections, in the order they run:

    ingest      benchmarks/ingest_bench.py (another engineer's), when the file exists
    staffing    GET /v1/staffing/erlang latency, in-process
    memory      RSS against open conversations (in-process) and over a simulated day
    throughput  one real worker vs the bare-consumer ceiling vs Quix Streams, on one pre-filled topic
    recovery    SIGKILL and restart with 100k open conversations, memory:// and rocksdb:// (and the real-worker
                memory point)
    takeover    SIGKILL of one of two workers for good, 100k open conversations: on memory:// and rocksdb://,
                with and without a standby replica, and with one and a 6 s session timeout
    freshness   ingest 202 -> figure at the API, its SSE stream and /metrics, at 15 (the demo), 300, 1,000 and
                3,000 events/s offered on one worker, 1,000 and 3,000 on two; records and bytes per event
    profile     cProfile of InProcessScorer over a simulated hour, py-spy of a real worker
    whatif      the same worker with other settings (environment only): producers, Faust's knobs
    names       one sender tries 100k queue names: ingest and scorer state, /metrics size (in-process)
    worker_day  a real worker's RSS over a simulated day of floor x1 on rocksdb://, Faust's RocksDB defaults and
                bounded (SCORER_ROCKSDB_WRITE_BUFFER_MB, SCORER_ROCKSDB_BLOCK_CACHE_MB), caught up as fast as it
                can; and three hours fed at 20x live, as a live floor's worker holds them, on the default
                partitions and at the same time on one event and one queue partition (a small floor's sizing)

Every section is bounded in time and stops by itself; a broker (TEST_PORT_OFFSET, default 700) is
started for the sections that need one and stopped at the end. Speed never fails anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from .common import REPO, RESULTS, Broker, broker, dump_json, log, port_offset

SECTIONS = ("ingest", "staffing", "memory", "names", "throughput", "recovery", "takeover", "freshness", "profile",
            "whatif", "worker_day")
NEEDS_BROKER = {"throughput", "recovery", "takeover", "freshness", "profile", "whatif", "worker_day"}
# The real worker's day on rocksdb://: today's defaults (RocksDB bounded, memory trimmed) against Faust's RocksDB
# defaults with no trim (as before), environment only.
ROCKSDB_SETTINGS = {
    "defaults": {},
    "faust_rocksdb_defaults_no_trim": {"SCORER_ROCKSDB_WRITE_BUFFER_MB": "0", "SCORER_ROCKSDB_BLOCK_CACHE_MB": "0",
                                       "SCORER_MALLOC_TRIM_S": "0"},
}
# What-if: the same worker under other settings (environment only), alternated with the defaults in one run.
# benchmarks/results/whatif_issue11.json keeps the runs that chose today's defaults: the state producer's
# linger and the separate output producer (issue 11's flush hole closed first), outputs uncompressed (lz4 cost
# 8 %), the fast step (3 % of a worker catching up), STREAM_BUFFER_MAXSIZE, uvloop with at most 500 records a poll
# (run_e, run_f). These are the questions still open, and the former defaults against today's.
WHATIF = {
    "asyncio_loop": {"SCORER_EVENT_LOOP": "asyncio"},
    "unbounded_poll": {"SCORER_MAX_POLL_RECORDS": "0"},
    "asyncio_unbounded_poll": {"SCORER_EVENT_LOOP": "asyncio", "SCORER_MAX_POLL_RECORDS": "0"},
    # Faust's wheel ships its Cython stream iterator and conductor, on unless NO_CYTHON: what they are worth.
    "faust_no_cython": {"NO_CYTHON": "1"},
    # Faust's own Monitor sensor: counts and times every record, send and table access (services/scorer/monitor.py).
    "faust_monitor": {"SCORER_FAUST_MONITOR": "faust"},
}

FULL: dict[str, dict[str, Any]] = {
    "throughput": {"events": 1_000_000, "scale": 10, "rounds": 3, "scorer_cap_s": 60, "ceiling_cap_s": 120,
                   "peer_cap_s": 30},
    "recovery": {"n": 100_000, "cycles": 3, "fill_timeout_s": 360, "cycle_timeout_s": 150},
    "takeover": {"n": 100_000, "fill_timeout_s": 360, "cycle_timeout_s": 150},
    "freshness": {"rates": [15, 300, 1_000, 3_000], "seconds": 60, "pyspy_s": 20,
                  "two_worker_rates": (1_000, 3_000)},
    "memory": {"open_points": [10_000, 100_000, 1_000_000], "day_scale": 1, "point_timeout_s": 600,
               "day_timeout_s": 1500},
    "staffing": {"sizes": [10, 1_000, 10_000], "requests": 300, "rounds": 3},
    "profile": {"scale": 2, "tick_every": 2000, "worker_events": 100_000, "worker_seconds": 30},
    "whatif": {"scale": 10, "events": 100_000, "rounds": 2, "cap_s": 40, "settings": WHATIF},
    "names": {"names": 100_000, "step": 10_000, "open_names": 20_000},
    "worker_day": {"hours": 24, "scale": 1, "cap_s": 2400, "settings": ROCKSDB_SETTINGS,
                   "hours_of": {"faust_rocksdb_defaults_no_trim": 8}, "paced_hours": 3, "pace": 20,
                   "paced_partitions": [[1, 1]]},
}
QUICK: dict[str, dict[str, Any]] = {
    "throughput": {"events": 60_000, "scale": 10, "rounds": 1, "scorer_cap_s": 20, "ceiling_cap_s": 30,
                   "peer_cap_s": 15},
    "recovery": {"n": 5_000, "cycles": 1, "fill_timeout_s": 120, "cycle_timeout_s": 90},
    "takeover": {"n": 5_000, "fill_timeout_s": 120, "cycle_timeout_s": 90},
    "freshness": {"rates": [100], "seconds": 20, "pyspy_s": 10, "two_worker_rates": (100,)},
    "memory": {"open_points": [10_000], "day_scale": 1, "point_timeout_s": 120, "day_timeout_s": 300},
    "staffing": {"sizes": [10, 1_000], "requests": 50, "rounds": 1},
    "profile": {"scale": 1, "tick_every": 2000, "worker_events": 20_000, "worker_seconds": 10},
    "whatif": {"scale": 10, "events": 20_000, "rounds": 1, "cap_s": 15, "settings": WHATIF},
    "names": {"names": 20_000, "step": 10_000, "open_names": 10_000},
    "worker_day": {"hours": 2, "scale": 1, "cap_s": 300, "settings": ROCKSDB_SETTINGS, "paced_hours": 1, "pace": 60,
                   "paced_partitions": [[1, 1]]},
}


def versions(kafka_version: str) -> dict[str, str | None]:
    def v(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(), "aiokafka": v("aiokafka"), "faust-streaming": v("faust-streaming"),
        "orjson": v("orjson"), "quixstreams": v("quixstreams"), "confluent-kafka": v("confluent-kafka"),
        "kafka": kafka_version, "fastapi": v("fastapi"), "httpx": v("httpx"),
    }


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "broker": "single-node Kafka (KRaft) on the same machine, loopback"}


def git_commit() -> str | None:
    if os.environ.get("BENCH_GIT_COMMIT"):  # run from an export of a commit (`git archive`), no .git there
        return os.environ["BENCH_GIT_COMMIT"]
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    return r.stdout.strip() or None


def uncommitted_services() -> list[str]:
    """Files of services/ that differ from the commit: the figures measured the working tree."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return []
    r = subprocess.run(["git", "status", "--porcelain", "--", "services"], cwd=REPO, capture_output=True, text=True,
                       check=False)
    return [line[3:] for line in r.stdout.splitlines()]


def run_ingest(timeout_s: float = 600) -> dict[str, Any]:
    script = REPO / "benchmarks" / "ingest_bench.py"
    if not script.exists():
        return {"not_measured": "benchmarks/ingest_bench.py does not exist yet"}
    out = RESULTS / "ingest.json"
    out.unlink(missing_ok=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.ingest_bench", "--out", str(out)], cwd=REPO,
                              timeout=timeout_s, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        return {"not_measured": f"benchmarks.ingest_bench did not finish within {timeout_s:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        return {"error": f"benchmarks.ingest_bench exited {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
    res: dict[str, Any] = orjson.loads(out.read_bytes())
    return res


def section(name: str, params: dict[str, Any], b: Broker | None) -> dict[str, Any]:
    from . import freshness, hostile_names, memory, profiling, recovery, staffing, throughput, worker_day

    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "ingest": run_ingest,
        "staffing": lambda: staffing.run(**params),
        "memory": lambda: memory.run(**params),
        "throughput": lambda: throughput.run(b, **params),  # type: ignore[arg-type]
        "recovery": lambda: recovery.run(b, **params),  # type: ignore[arg-type]
        "takeover": lambda: recovery.run_takeovers(b, **params),  # type: ignore[arg-type]
        "freshness": lambda: freshness.run(b, **params),  # type: ignore[arg-type]
        "profile": lambda: profiling.run(b, **params),
        "whatif": lambda: profiling.what_if(b, **params),  # type: ignore[arg-type]
        "names": lambda: hostile_names.run(**params),
        "worker_day": lambda: worker_day.run(b, **params),  # type: ignore[arg-type]
    }
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        res = runners[name]()
    except Exception as exc:  # a broken section is recorded, the others still run
        traceback.print_exc()
        res = {"error": repr(exc)}
    return {
        **res, "params": params, "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "duration_s": round(time.monotonic() - started, 1),
        "loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks themselves")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    a = p.parse_args(argv)
    wanted = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    order = [s for s in SECTIONS if s in wanted]
    sizes = QUICK if a.quick else FULL
    os.environ.setdefault("TEST_PORT_OFFSET", str(port_offset()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    from deploy.local.config import StackConfig

    data: dict[str, Any] = orjson.loads(a.out.read_bytes()) if a.out.exists() else {}
    data.setdefault("sections", {})
    data["meta"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "git_commit": git_commit(),
        "services_uncommitted_at_start": uncommitted_services(),
        "machine": machine(), "versions": versions(StackConfig().kafka_version), "quick": a.quick,
        "sections_run": order,
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": ("2 cores shared by the broker (JVM), the measured process and the load generator; other "
                 "processes on the machine show in each section's loadavg_1m_before/after"),
    }
    started = time.monotonic()

    def record(name: str, b: Broker | None) -> None:
        log(f"=== {name}")
        data["sections"][name] = section(name, sizes.get(name, {}), b)
        dump_json(a.out, data)

    for name in [s for s in order if s not in NEEDS_BROKER]:
        record(name, None)
    with_broker = [s for s in order if s in NEEDS_BROKER]
    if with_broker:
        log(f"starting a broker on TEST_PORT_OFFSET={os.environ['TEST_PORT_OFFSET']}")
        with broker() as b:
            for name in with_broker:
                record(name, b)
    data["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    dump_json(a.out, data)
    from .plot import plot

    png = plot(data, a.out.parent / "throughput_freshness.png")
    log(f"wrote {a.out} and {png} in {data['meta']['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
