"""Ingest throughput and latency, against a bare aiokafka producer writing the same records.

    python -m benchmarks.ingest_bench [--out benchmarks/results/ingest.json]
    python -m benchmarks.ingest_bench --ingest-url http://127.0.0.1:8081 --kafka-bootstrap 127.0.0.1:9092

Without --ingest-url it brings up a local stack the way `make up` does (deploy/local/stack.py), on
its own ports and RUN_DIR (TEST_PORT_OFFSET-style offset, 600 by default), and stops and wipes
it at the end. The scorer workers are stopped while measuring (--keep-scorer leaves them on): on a
small machine they would compete with ingest and the broker for the same cores.

Four modes, each run `--runs` times (interleaved, so background load hits them alike) for a bounded
`--duration` from a bounded number of concurrent clients on loopback:

* ingest_single:   POST /v1/events with one event per request, `--clients-single` connections;
* ingest_batch500: POST /v1/events with 500 events per request, `--clients-batch` connections;
* bare_single / bare_batch500: one AIOKafkaProducer (acks=all, idempotent, ingest's linger,
  batch size and compression) shared by as many tasks, each writing one record and awaiting its
  ack, or 500 records and awaiting all acks: what ingest does per request, without HTTP,
  validation and dedupe. Same keys, same normalised values (ingest's own normalisation), same topic.

Reported per mode: accepted events/s, requests/s, p50/p99 request latency (nearest rank), errors,
and the CPU ingest used; the median of the runs; and ingest ÷ bare producer events/s, the ratio to
beat. Benchmarks are not tests: this never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "ingest.json"
DEFAULT_OFFSET = 600
BATCH_SIZE = 500
PLACEHOLDER = "@@P@@"  # stands for a request's unique prefix in the templates below
TENANT, SHOP, PLATFORM, QUEUE = "bench", "bench-web", "web", "bench-presales"


# ------------------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


@dataclass
class RunResult:
    """One bounded run of one mode."""

    events: int = 0  # acknowledged
    requests: int = 0  # answered 202 (ingest) / fully acknowledged units (bare)
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    ingest_cpu_s: float | None = None
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        el = self.elapsed_s or math.nan
        return {
            "events_per_s": round(self.events / el, 1),
            "requests_per_s": round(self.requests / el, 1),
            "p50_ms": round(percentile(self.latencies_s, 50) * 1000, 2),
            "p99_ms": round(percentile(self.latencies_s, 99) * 1000, 2),
            "events": self.events,
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "ingest_cpu_cores": None if self.ingest_cpu_s is None else round(self.ingest_cpu_s / el, 2),
            "client_cpu_cores": round(self.client_cpu_s / el, 2),
        }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median over runs of each figure (NaN-free where any run has it)."""
    keys = ("events_per_s", "requests_per_s", "p50_ms", "p99_ms", "errors", "ingest_cpu_cores", "client_cpu_cores")
    out: dict[str, Any] = {}
    for key in keys:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        out[key] = round(median(values), 2) if values else None
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return None
    return round(numerator / denominator, 3)


def finite(obj: Any) -> Any:
    """JSON has no NaN: NaN becomes null, recursively."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------ events


def conversation_events(prefix: str, ts_ms: int) -> list[dict[str, Any]]:
    """Five events of one conversation (opened, customer message, assigned, agent reply, closed)."""
    cid = f"{prefix}-c"
    common = {"tenant": TENANT, "shop_id": SHOP, "platform": PLATFORM, "conversation_id": cid}
    return [
        {**common, "event_id": f"{prefix}-1", "type": "conversation.opened", "ts": ts_ms, "queue": QUEUE,
         "customer_id": f"{prefix}-buyer", "channel": "web"},
        {**common, "event_id": f"{prefix}-2", "type": "message", "ts": ts_ms + 1000, "sender": "customer",
         "chars": 24},
        {**common, "event_id": f"{prefix}-3", "type": "conversation.assigned", "ts": ts_ms + 2000,
         "agent_id": "bench-agent-1"},
        {**common, "event_id": f"{prefix}-4", "type": "message", "ts": ts_ms + 9000, "sender": "agent",
         "agent_id": "bench-agent-1", "chars": 60},
        {**common, "event_id": f"{prefix}-5", "type": "conversation.closed", "ts": ts_ms + 30_000,
         "reason": "resolved"},
    ]


def batch_events(prefix: str, ts_ms: int, size: int) -> list[dict[str, Any]]:
    """`size` events: whole conversations of five events (keys spread over the partitions)."""
    events: list[dict[str, Any]] = []
    i = 0
    while len(events) < size:
        events += conversation_events(f"{prefix}.{i}", ts_ms)
        i += 1
    return events[:size]


def single_event(prefix: str, ts_ms: int) -> dict[str, Any]:
    """One customer message of its own conversation (the commonest event on a floor)."""
    return conversation_events(prefix, ts_ms)[1]


@dataclass(frozen=True)
class Template:
    """A request body and the records ingest writes for it, with PLACEHOLDER where the prefix goes.

    `render(prefix)` is a bytes replace (cheap), so the load generator spends its CPU on I/O.
    """

    body: bytes  # what a client POSTs
    records: tuple[tuple[bytes, bytes], ...]  # (key, normalised value) as ingest writes them

    @property
    def events(self) -> int:
        return len(self.records)

    def render_body(self, prefix: str) -> bytes:
        return self.body.replace(PLACEHOLDER.encode(), prefix.encode())

    def render_records(self, prefix: str) -> list[tuple[bytes, bytes]]:
        p, v = PLACEHOLDER.encode(), prefix.encode()
        return [(k.replace(p, v), val.replace(p, v)) for k, val in self.records]


def make_template(events: list[dict[str, Any]]) -> Template:
    from services.core.events import parse_event

    parsed = [parse_event(e) for e in events]
    body = orjson.dumps(events[0] if len(events) == 1 else events)
    return Template(body, tuple((ev.key.encode(), ev.to_json()) for ev in parsed))


def templates(ts_ms: int, batch_size: int = BATCH_SIZE) -> dict[str, Template]:
    return {
        "single": make_template([single_event(PLACEHOLDER, ts_ms)]),
        "batch": make_template(batch_events(PLACEHOLDER, ts_ms, batch_size)),
    }


class Prefixes:
    """Unique request prefixes: run tag, worker, sequence number."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.n = 0

    def next(self, worker: int) -> str:
        self.n += 1
        return f"{self.tag}.{worker}.{self.n}"


# ------------------------------------------------------------------------------------------ HTTP client


class HttpError(Exception):
    pass


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.1 response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class Connection:
    """One keep-alive HTTP/1.1 connection: a lean client so the load generator costs little CPU."""

    def __init__(self, url: str, token: str) -> None:
        split = urlsplit(url)
        self.host = split.hostname or "127.0.0.1"
        self.port = split.port or 80
        self.path = (split.path.rstrip("/") or "") + "/v1/events"
        self.head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
            status, headers = parse_head(head[:-4])
            length = headers.get("content-length")
            if length is None:
                raise HttpError("response without Content-Length")
            data = await self._reader.readexactly(int(length))
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return status, data
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# ------------------------------------------------------------------------------------------ load


def process_cpu_s(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process (Linux /proc); this process when pid is None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Unit = Callable[[int], Awaitable[tuple[int, bool]]]  # worker index -> (events acknowledged, ok)


async def drive(workers: int, duration_s: float, make_unit: Callable[[int], Unit],
                ingest_pid: int | None = None) -> RunResult:
    """`workers` loops, each doing one unit (a request, or a producer write) after another until
    `duration_s` has passed; the units in flight at the deadline finish and count."""
    result = RunResult()
    cpu0, ingest0 = process_cpu_s(), process_cpu_s(ingest_pid) if ingest_pid else None
    started = time.perf_counter()
    deadline = started + duration_s
    last_done = started

    async def loop(worker: int) -> None:
        nonlocal last_done
        unit = make_unit(worker)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                events, ok = await unit(worker)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError):
                events, ok = 0, False
            t1 = time.perf_counter()
            last_done = max(last_done, t1)
            if ok:
                result.events += events
                result.requests += 1
                result.latencies_s.append(t1 - t0)
            else:
                result.errors += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(loop(w) for w in range(workers)))
    result.elapsed_s = max(last_done, deadline) - started  # the window, stretched by the last unit in flight
    cpu1 = process_cpu_s()
    result.client_cpu_s = (cpu1 or 0.0) - (cpu0 or 0.0)
    if ingest_pid and ingest0 is not None:
        ingest1 = process_cpu_s(ingest_pid)
        result.ingest_cpu_s = None if ingest1 is None else ingest1 - ingest0
    return result


def ingest_unit(url: str, token: str, template: Template, prefixes: Prefixes,
                connections: dict[int, Connection], timeout_s: float) -> Callable[[int], Unit]:
    def make(worker: int) -> Unit:
        conn = connections.setdefault(worker, Connection(url, token))

        async def unit(w: int) -> tuple[int, bool]:
            body = template.render_body(prefixes.next(w))
            status, data = await asyncio.wait_for(conn.post(body), timeout_s)
            if status != 202:
                return 0, False
            answer = orjson.loads(data)
            return int(answer["accepted"]), True

        return unit

    return make


def bare_unit(producer: Any, topic: str, template: Template, prefixes: Prefixes,
              timeout_s: float) -> Callable[[int], Unit]:
    def make(worker: int) -> Unit:
        async def unit(w: int) -> tuple[int, bool]:
            records = template.render_records(prefixes.next(w))
            futures = [await producer.send(topic, value=v, key=k) for k, v in records]
            done = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout_s)
            ok = not any(isinstance(d, BaseException) for d in done)
            return (len(records), True) if ok else (0, False)

        return unit

    return make


# ------------------------------------------------------------------------------------------ stack


@dataclass
class Target:
    ingest_url: str
    ingest_token: str
    kafka_bootstrap: str
    topic: str
    linger_ms: int
    max_batch_bytes: int
    send_timeout_s: float
    kafka_version: str | None
    ingest_pid: int | None
    reused: bool
    run_dir: str | None = None
    scorer_running: bool | None = None


def bench_config(offset: int) -> Any:
    """The test stack's config (deploy/local/testing.py config_for_tests) shifted by `offset`, in its own RUN_DIR."""
    from deploy.local.testing import config_for_tests

    saved = os.environ.get("TEST_PORT_OFFSET")
    os.environ["TEST_PORT_OFFSET"] = str(offset)
    try:
        run_dir = REPO / ".run" / f"bench-ingest-{offset}"
        return config_for_tests(run_dir=run_dir, env_file=run_dir / ".env")
    finally:
        if saved is None:
            os.environ.pop("TEST_PORT_OFFSET", None)
        else:
            os.environ["TEST_PORT_OFFSET"] = saved


def ingest_settings_from(env: Mapping[str, str]) -> Any:
    """IngestSettings as a service started with `env` reads them."""
    from services.ingest.settings import IngestSettings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return IngestSettings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def local_stack_target(offset: int, keep_scorer: bool) -> Iterator[Target]:
    """Bring up a whole local stack on `offset` ports (as `make up`); stop and wipe it afterwards."""
    from deploy.local.config import service_env, topics_for
    from deploy.local.processes import running_pid
    from deploy.local.stack import down, stop_part, up
    from deploy.local.testing import reset

    cfg = bench_config(offset)
    reset(cfg)  # leftovers of an interrupted earlier run
    try:
        print(f"starting a local stack in {cfg.run_dir} (ports offset {offset}) ...", flush=True)
        up(cfg, quiet=True)
        env = service_env(cfg)
        if not keep_scorer:
            for i in range(cfg.scorer_workers):
                stop_part(cfg, f"scorer-{i}")
        settings = ingest_settings_from(env)
        yield Target(
            ingest_url=cfg.ingest_url,
            ingest_token=env.get("INGEST_TOKEN", ""),
            kafka_bootstrap=cfg.kafka_bootstrap,
            topic=topics_for(env).events,
            linger_ms=settings.kafka_linger_ms,
            max_batch_bytes=settings.kafka_max_batch_bytes,
            send_timeout_s=settings.send_timeout_s,
            kafka_version=cfg.kafka_version,
            ingest_pid=running_pid(cfg, "ingest"),
            reused=False,
            run_dir=str(cfg.run_dir),
            scorer_running=keep_scorer,
        )
    finally:
        print("stopping the local stack ...", flush=True)
        down(cfg, wipe=True)


@contextlib.contextmanager
def given_target(args: argparse.Namespace) -> Iterator[Target]:
    from services.core.config import Topics
    from services.ingest.settings import IngestSettings

    settings = IngestSettings()  # the producer settings: from this environment, as ingest reads them
    yield Target(
        ingest_url=args.ingest_url,
        ingest_token=args.ingest_token or os.environ.get("INGEST_TOKEN", ""),
        kafka_bootstrap=args.kafka_bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        topic=args.topic or Topics().events,
        linger_ms=settings.kafka_linger_ms,
        max_batch_bytes=settings.kafka_max_batch_bytes,
        send_timeout_s=settings.send_timeout_s,
        kafka_version=args.kafka_version,
        ingest_pid=args.ingest_pid,
        reused=True,
    )


def producer_options(target: Target) -> dict[str, Any]:
    """What ingest's KafkaEventProducer sets (services/ingest/producer.py), for the bare producer."""
    from aiokafka.codec import has_lz4

    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": target.linger_ms,
        "compression_type": "lz4" if has_lz4() else None,
        "max_batch_size": target.max_batch_bytes,
        "max_request_size": max(target.max_batch_bytes, 1_048_576),
    }


# ------------------------------------------------------------------------------------------ main


async def wait_ingest_ready(target: Target, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{target.ingest_url}/healthz", timeout=2.0)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"ingest at {target.ingest_url} is not healthy after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    await wait_ingest_ready(target)
    tag = uuid.uuid4().hex[:8]
    tpl = templates(int(time.time() * 1000), args.batch_size)
    options = producer_options(target)
    producer = AIOKafkaProducer(bootstrap_servers=target.kafka_bootstrap, client_id="ingest-bench-bare", **options)
    await producer.start()
    connections: dict[int, Connection] = {}
    timeout_s = target.send_timeout_s + 10.0
    try:
        partitions = len(await producer.partitions_for(target.topic))
        modes: dict[str, tuple[int, Callable[[Prefixes], Callable[[int], Unit]], int | None]] = {
            "ingest_single": (args.clients_single, lambda p: ingest_unit(
                target.ingest_url, target.ingest_token, tpl["single"], p, connections, timeout_s), target.ingest_pid),
            "bare_single": (args.clients_single, lambda p: bare_unit(
                producer, target.topic, tpl["single"], p, timeout_s), None),
            "ingest_batch500": (args.clients_batch, lambda p: ingest_unit(
                target.ingest_url, target.ingest_token, tpl["batch"], p, connections, timeout_s), target.ingest_pid),
            "bare_batch500": (args.clients_batch, lambda p: bare_unit(
                producer, target.topic, tpl["batch"], p, timeout_s), None),
        }
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for name, (workers, make, pid) in modes.items():  # warm-up: connections, metadata, caches
            await drive(workers, args.warmup, make(Prefixes(f"{tag}.w.{name}")), pid)
            connections.clear()
        for run in range(args.runs):
            for name, (workers, make, pid) in modes.items():
                result = await drive(workers, args.duration, make(Prefixes(f"{tag}.{run}.{name}")), pid)
                for conn in connections.values():
                    await conn.close()
                connections.clear()
                summary = result.summary()
                runs[name].append(summary)
                print(f"  run {run + 1}/{args.runs} {name:<16} {summary['events_per_s']:>10,.0f} events/s  "
                      f"p50 {summary['p50_ms']:>8.2f} ms  p99 {summary['p99_ms']:>8.2f} ms  "
                      f"errors {summary['errors']}", flush=True)
    finally:
        for conn in connections.values():
            await conn.close()
        await producer.stop()

    results: dict[str, dict[str, Any]] = {name: {"runs": rs, "median": summarize(rs)} for name, rs in runs.items()}
    med: dict[str, dict[str, Any]] = {name: r["median"] for name, r in results.items()}
    return {
        "partitions": partitions,
        "producer_options": options,
        "results": results,
        "ratio_ingest_to_bare": {
            "single": ratio(med["ingest_single"]["events_per_s"], med["bare_single"]["events_per_s"]),
            "batch500": ratio(med["ingest_batch500"]["events_per_s"], med["bare_batch500"]["events_per_s"]),
        },
        "request_bytes": {"single": len(tpl["single"].body), "batch500": len(tpl["batch"].body)},
    }


def versions(kafka_version: str | None) -> dict[str, str | None]:
    import aiokafka
    import fastapi
    import uvicorn

    return {
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": kafka_version,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "orjson": orjson.__version__,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (default %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per mode; the median is reported (default %(default)s)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per mode first (default %(default)s)")
    p.add_argument("--clients-single", type=int, default=32, help="concurrent clients, one event a request")
    p.add_argument("--clients-batch", type=int, default=8, help="concurrent clients, batches")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="events per batch (default %(default)s)")
    p.add_argument("--offset", type=int, default=DEFAULT_OFFSET, help="port offset of the stack it starts")
    p.add_argument("--keep-scorer", action="store_true", help="leave the scorer running while measuring")
    p.add_argument("--ingest-url", help="reuse a running ingest instead of starting a stack")
    p.add_argument("--ingest-token", help="its bearer token (default $INGEST_TOKEN)")
    p.add_argument("--kafka-bootstrap", help="its broker (default $KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="its chat-events topic (default $TOPIC_EVENTS or floor.chat-events)")
    p.add_argument("--kafka-version", help="the broker's version, for the record")
    p.add_argument("--ingest-pid", type=int, help="ingest's pid, to report its CPU")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.runs < 1 or args.clients_single < 1 or args.clients_batch < 1:
        p.error("--duration, --runs and --clients-* must be positive")
    if not 1 <= args.batch_size <= 5000:
        p.error("--batch-size must be 1..5000 (ingest's INGEST_MAX_BATCH default)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    target_cm = given_target(args) if args.ingest_url else local_stack_target(args.offset, args.keep_scorer)
    # SIGTERM (a CI timeout, say) unwinds through the context manager, which stops the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with target_cm as target:
        measured = asyncio.run(measure(target, args))
    report = {
        "benchmark": "ingest",
        "started_at": started_at,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
        },
        "versions": versions(target.kafka_version),
        "stack": {
            "reused": target.reused,
            "ingest_url": target.ingest_url,
            "kafka_bootstrap": target.kafka_bootstrap,
            "topic": target.topic,
            "partitions": measured.pop("partitions"),
            "run_dir": target.run_dir,
            "scorer_running_while_measuring": target.scorer_running,
        },
        "parameters": {
            "duration_s": args.duration,
            "runs": args.runs,
            "warmup_s": args.warmup,
            "clients_single": args.clients_single,
            "clients_batch": args.clients_batch,
            "batch_size": args.batch_size,
            "statistic": "median of runs; latency percentiles are nearest rank over the run's requests",
            "bare_producer": measured.pop("producer_options"),
            "request_bytes": measured.pop("request_bytes"),
        },
        **measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finite(report), indent=2) + "\n")
    med = {k: v["median"] for k, v in report["results"].items()}
    print(f"\nwrote {args.out}")
    for name, m in med.items():
        print(f"  {name:<16} {m['events_per_s']:>10,.0f} events/s  "
              f"p50 {m['p50_ms']:>8.2f} ms  p99 {m['p99_ms']:>8.2f} ms")
    print(f"  ingest / bare producer: single {report['ratio_ingest_to_bare']['single']}, "
          f"batch {report['ratio_ingest_to_bare']['batch500']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
