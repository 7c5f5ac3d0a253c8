"""Smoke test of benchmarks/ingest_bench.py's pure helpers (the benchmark itself is not a test)."""

from __future__ import annotations

import asyncio
import math

import orjson
import pytest

from benchmarks import ingest_bench as bench
from services.core.events import parse_event


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert bench.percentile(values, 50) == 3.0
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 100) == 5.0
    assert bench.percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert bench.percentile(list(map(float, range(1, 1001))), 99) == 990.0
    assert bench.percentile([7.0], 99) == 7.0
    assert math.isnan(bench.percentile([], 50))
    with pytest.raises(ValueError):
        bench.percentile([1.0], 101)


def test_median_summary_and_ratio() -> None:
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    assert bench.median([math.nan, 4.0, 2.0]) == 3.0
    assert math.isnan(bench.median([]))
    runs = [
        {"events_per_s": 100.0, "requests_per_s": 1.0, "p50_ms": 5.0, "p99_ms": 9.0, "errors": 0,
         "ingest_cpu_cores": None, "client_cpu_cores": 0.1},
        {"events_per_s": 300.0, "requests_per_s": 3.0, "p50_ms": 7.0, "p99_ms": 20.0, "errors": 2,
         "ingest_cpu_cores": None, "client_cpu_cores": 0.3},
        {"events_per_s": 200.0, "requests_per_s": 2.0, "p50_ms": 6.0, "p99_ms": 10.0, "errors": 0,
         "ingest_cpu_cores": None, "client_cpu_cores": 0.2},
    ]
    summary = bench.summarize(runs)
    assert summary["events_per_s"] == 200.0 and summary["p50_ms"] == 6.0 and summary["p99_ms"] == 10.0
    assert summary["errors"] == 0.0 and summary["ingest_cpu_cores"] is None
    assert bench.ratio(50.0, 200.0) == 0.25
    assert bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0.0) is None
    assert bench.finite({"a": [math.nan, 1.0], "b": math.nan}) == {"a": [None, 1.0], "b": None}


def test_run_result_summary() -> None:
    r = bench.RunResult(events=1000, requests=10, errors=1, elapsed_s=2.0,
                        latencies_s=[0.001 * i for i in range(1, 11)], ingest_cpu_s=1.0, client_cpu_s=0.2)
    s = r.summary()
    assert s["events_per_s"] == 500.0 and s["requests_per_s"] == 5.0
    assert s["p50_ms"] == 5.0 and s["p99_ms"] == 10.0
    assert s["ingest_cpu_cores"] == 0.5 and s["client_cpu_cores"] == 0.1


def test_templates_render_what_ingest_writes() -> None:
    """The bare producer's records are ingest's normalisation of the same body, for any prefix."""
    tpl = bench.templates(1_795_000_000_000, batch_size=12)
    for name, template in tpl.items():
        body = template.render_body("run.3.17")
        decoded = orjson.loads(body)
        events = decoded if isinstance(decoded, list) else [decoded]
        assert len(events) == template.events == (12 if name == "batch" else 1)
        expected = [(parse_event(e).key.encode(), parse_event(e).to_json()) for e in events]
        assert template.render_records("run.3.17") == expected
        assert len({e["event_id"] for e in events}) == len(events)
        assert bench.PLACEHOLDER.encode() not in body
    batch = orjson.loads(tpl["batch"].render_body("x"))
    assert len({e["conversation_id"] for e in batch}) == 3  # whole conversations of five: keys spread


def test_prefixes_are_unique_per_request() -> None:
    p = bench.Prefixes("t")
    assert len({p.next(w) for w in range(4) for _ in range(100)}) == 400


def test_parse_head() -> None:
    status, headers = bench.parse_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 34\r\nContent-Type: x")
    assert status == 202 and headers == {"content-length": "34", "content-type": "x"}
    with pytest.raises(bench.HttpError):
        bench.parse_head(b"SSH-2.0-OpenSSH")


def test_drive_counts_units_and_errors() -> None:
    calls = {"n": 0}

    def make(_worker: int) -> bench.Unit:
        async def unit(_w: int) -> tuple[int, bool]:
            calls["n"] += 1
            await asyncio.sleep(0.01)
            return (5, True) if calls["n"] % 4 else (0, False)

        return unit

    result = asyncio.run(bench.drive(2, 0.2, make))
    assert result.requests > 0 and result.errors > 0
    assert result.events == 5 * result.requests
    assert result.requests + result.errors == calls["n"]
    assert 0.199 <= result.elapsed_s < 1.0


def test_parse_args_defaults_and_bounds() -> None:
    args = bench.parse_args([])
    assert args.duration == 10.0 and args.runs == 3 and args.batch_size == 500 and args.offset == 600
    assert args.out == bench.DEFAULT_OUT and args.ingest_url is None
    with pytest.raises(SystemExit):
        bench.parse_args(["--runs", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-size", "6000"])
