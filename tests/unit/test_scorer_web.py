"""The scorer's web server serves /metrics and /healthz only: Faust's table pages (raw state of every
conversation at /table/{table}/{key}/), router, stats and graph pages are off (issue 16)."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.sensors import Monitor
from faust.types import TP

from services.scorer import collector, malloc
from services.scorer.app import build_app
from services.scorer.monitor import LeanMonitor
from services.scorer.settings import ScorerSettings
from services.scorer.topics import TABLES


def routes(tmp_path: Path) -> tuple[set[str], Any]:
    app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path))
    web = app.web
    web.init_server()
    web_app = web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's application
    paths = {r.resource.canonical for r in web_app.router.routes() if r.resource is not None}
    return paths, web_app


async def test_only_metrics_and_health_are_served(tmp_path: Path) -> None:
    paths, _ = routes(tmp_path)
    # "/" is Faust's production index, a constant {"status": "OK"}: no state behind it.
    assert paths <= {"/metrics", "/healthz", "/"}, sorted(paths)
    assert {"/metrics", "/healthz"} <= paths


async def test_table_pages_answer_404(tmp_path: Path) -> None:
    _, web_app = routes(tmp_path)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
        for path in ("/table/", "/table/conversations/", "/table/conversations/c-1/", "/router/", "/stats/",
                     "/graph/"):
            resp = await client.get(path)
            assert resp.status == 404, (path, resp.status)


def test_each_worker_is_a_static_group_member_by_its_index(tmp_path: Path) -> None:
    """group.instance.id = app id + worker index (stable per StatefulSet pod): a restarted worker is the same
    member and gets its partitions back without a rebalance; off, the group is dynamic."""
    on = build_app(ScorerSettings(store="memory://", data_dir=tmp_path, app_id="fw", worker_index=3))
    assert on.conf.consumer_group_instance_id == "fw-3"
    off = build_app(ScorerSettings(store="memory://", data_dir=tmp_path, worker_index=3, static_membership=False))
    assert off.conf.consumer_group_instance_id is None


async def test_a_scrape_can_ask_for_some_families(tmp_path: Path) -> None:
    _, web_app = routes(tmp_path)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
        whole = await (await client.get("/metrics")).text()
        wanted = "floorwatch_scorer_views_published_timestamp_seconds"
        some = await (await client.get("/metrics", params={"name[]": wanted})).text()
    assert "floorwatch_queue_arrivals" in whole and wanted in whole
    assert f"\n{wanted} " in some and "floorwatch_queue_arrivals" not in some and "floorwatch_agent" not in some


def test_standby_replicas_are_faust_s_table_standbys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCORER_STANDBY_REPLICAS reaches Faust's table_standby_replicas: "auto" (the default) is one on rocksdb:// and
    none on memory://; a count is taken as given, anything else is refused, and so is a standby on memory://
    (Faust's memory store drops standby copies after each recovery)."""
    monkeypatch.delenv("SCORER_STANDBY_REPLICAS", raising=False)
    assert build_app(ScorerSettings(store="memory://", data_dir=tmp_path)).conf.table_standby_replicas == 0
    assert build_app(ScorerSettings(store="rocksdb://", data_dir=tmp_path / "a")).conf.table_standby_replicas == 1
    assert ScorerSettings(store="rocksdb://", data_dir=tmp_path, standby="0").standby_replicas == 0
    monkeypatch.setenv("SCORER_STANDBY_REPLICAS", "2")
    assert build_app(ScorerSettings(store="rocksdb://", data_dir=tmp_path / "b")).conf.table_standby_replicas == 2
    for bad in ("-1", "one", "1.5"):
        with pytest.raises(SystemExit, match="SCORER_STANDBY_REPLICAS must be auto or a count"):
            ScorerSettings(store="rocksdb://", data_dir=tmp_path, standby=bad)
    with pytest.raises(SystemExit, match="SCORER_STANDBY_REPLICAS needs SCORER_STORE=rocksdb://"):
        ScorerSettings(store="memory://", data_dir=tmp_path, standby="1")


def test_a_dead_worker_is_noticed_after_6_s_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session timeout is the broker's least by default (6 s), its heartbeat well inside it."""
    monkeypatch.delenv("SCORER_SESSION_TIMEOUT_S", raising=False)
    conf = build_app(ScorerSettings(store="memory://", data_dir=tmp_path)).conf
    assert conf.broker_session_timeout == 6.0
    assert conf.broker_heartbeat_interval <= conf.broker_session_timeout / 3


def test_the_event_loop_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORER_EVENT_LOOP", raising=False)
    assert ScorerSettings().event_loop == "uvloop"  # the default: whatif run_e and run_f
    monkeypatch.setenv("SCORER_EVENT_LOOP", "asyncio")
    assert ScorerSettings().event_loop == "asyncio"
    monkeypatch.setenv("SCORER_EVENT_LOOP", "trio")
    with pytest.raises(SystemExit, match="SCORER_EVENT_LOOP"):
        ScorerSettings()


def test_rocksdb_memory_is_bounded_per_table(tmp_path: Path) -> None:
    """Each table's RocksDB gets SCORER_ROCKSDB_WRITE_BUFFER_MB / _BLOCK_CACHE_MB (0.5 MiB each by default); 0
    leaves Faust's own (64 MiB, 2 GiB)."""
    def options(app: Any) -> set[tuple[int, int]]:
        return {(t.data.rocksdb_options.write_buffer_size, t.data.rocksdb_options.block_cache_size)
                for t in app.tables.values()}

    bounded = build_app(ScorerSettings(store="rocksdb://", data_dir=tmp_path / "a"))
    assert len(bounded.tables) == 3 and options(bounded) == {(2**19, 2**19)}
    faust_own = build_app(ScorerSettings(store="rocksdb://", data_dir=tmp_path / "b", rocksdb_write_buffer_mb=0,
                                         rocksdb_block_cache_mb=0))
    assert options(faust_own) == {(64 * 2**20, 2 * 2**30)}
    with pytest.raises(SystemExit, match="SCORER_ROCKSDB_WRITE_BUFFER_MB"):
        ScorerSettings(store="rocksdb://", data_dir=tmp_path, rocksdb_write_buffer_mb=-1)


def test_trim_hands_freed_memory_back() -> None:
    """Freed blocks pinned between live ones stay in the process until malloc_trim gives their pages back."""
    held = [bytes(1000 + i % 7) for i in range(200_000)]  # ~200 MB of blocks above pymalloc's 512 bytes
    before_free = self_rss()
    held = held[::64]  # one block in 64 stays: no page at the heap's top is free, so free() returns nothing
    freed = self_rss()
    assert malloc.trim()
    after = self_rss()
    assert before_free - freed < 50 * 2**20 and freed - after > 100 * 2**20, (before_free, freed, after)
    assert len(held) == 3125


def self_rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_the_worker_sets_the_collector_and_counts_its_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """SCORER_GC_THRESHOLDS reaches gc.set_threshold when the worker is built, and each collection's time shows
    on /metrics as floorwatch_scorer_gc_seconds_total{generation}; a bad value stops the worker at start."""
    before = gc.get_threshold()
    try:
        monkeypatch.setenv("SCORER_GC_THRESHOLDS", "python")
        assert ScorerSettings(store="memory://", data_dir=tmp_path).gc_thresholds == (700, 10, 10)
        monkeypatch.setenv("SCORER_GC_THRESHOLDS", "12345,7,3")
        app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path))
        assert gc.get_threshold() == (12345, 7, 3)
        gc.collect(1)
        app.web.init_server()
        async with TestClient(TestServer(app.web.web_app, host="127.0.0.1")) as client:  # type: ignore[attr-defined]
            text = await (await client.get("/metrics", params={"name[]": "floorwatch_scorer_gc_seconds_total"})).text()
        assert 'floorwatch_scorer_gc_seconds_total{generation="1"}' in text, text
        monkeypatch.setenv("SCORER_GC_THRESHOLDS", "0,10,10")
        with pytest.raises(SystemExit, match="SCORER_GC_THRESHOLDS"):
            ScorerSettings(store="memory://", data_dir=tmp_path)
    finally:
        collector.configure(before)


def test_a_poll_returns_at_most_500_records_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORER_MAX_POLL_RECORDS", raising=False)
    assert build_app(ScorerSettings(store="memory://", data_dir=tmp_path)).conf.broker_max_poll_records == 500
    monkeypatch.setenv("SCORER_MAX_POLL_RECORDS", "0")  # Faust's own default: no limit
    assert build_app(ScorerSettings(store="memory://", data_dir=tmp_path / "b")).conf.broker_max_poll_records is None
    monkeypatch.setenv("SCORER_MAX_POLL_RECORDS", "-1")
    with pytest.raises(SystemExit, match="SCORER_MAX_POLL_RECORDS"):
        ScorerSettings()


def test_the_conductor_waits_on_queued_table_writes_as_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 10,000 by default, not Faust's 100, which stopped a floor x61 worker's delivery a fifth of the time
    # (benchmarks/PROFILE.md).
    monkeypatch.delenv("SCORER_STATE_BUFFER_MAX", raising=False)
    app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path))
    assert app.producer.buffer.max_messages == 10_000
    monkeypatch.setenv("SCORER_STATE_BUFFER_MAX", "250")
    assert build_app(ScorerSettings(store="memory://", data_dir=tmp_path / "b")).producer.buffer.max_messages == 250
    monkeypatch.setenv("SCORER_STATE_BUFFER_MAX", "0")
    with pytest.raises(SystemExit, match="SCORER_STATE_BUFFER_MAX"):
        ScorerSettings()


async def test_table_writes_are_counted_by_table(tmp_path: Path) -> None:
    # make bench divides these by the events scored: table writes are records each event costs, as published ones.
    app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path, app_id="fw-test"))
    assert set(app.tables) == set(TABLES)  # each table's changelog counted under its name
    for table, key, value in (("conversations", b"c1", b"12345"), ("conversations", b"c2", None),
                              ("queue-partials", b"p", b"67")):
        app.tables[table].send_changelog(0, key, value)  # type: ignore[attr-defined]  # Faust's table write path
    app.web.init_server()
    async with TestClient(TestServer(app.web.web_app, host="127.0.0.1")) as client:  # type: ignore[attr-defined]
        text = await (await client.get("/metrics", params={"name[]": ["floorwatch_scorer_state_writes_total",
                                                                      "floorwatch_scorer_state_write_bytes_total"]})
                      ).text()
    assert 'floorwatch_scorer_state_writes_total{table="conversations"} 2.0' in text, text
    assert 'floorwatch_scorer_state_write_bytes_total{table="conversations"} 9.0' in text, text
    assert 'floorwatch_scorer_state_writes_total{table="queue-partials"} 1.0' in text, text
    assert 'floorwatch_scorer_state_write_bytes_total{table="queue-partials"} 3.0' in text, text


async def test_the_broker_holds_an_empty_fetch_100_ms_by_default(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust's driver fixes 1,500 ms, which stalled a worker a little behind (services/scorer/consumer.py).
    monkeypatch.delenv("SCORER_FETCH_MAX_WAIT_MS", raising=False)
    for env, want in ((None, 100), ("40", 40)):
        if env is not None:
            monkeypatch.setenv("SCORER_FETCH_MAX_WAIT_MS", env)
        app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path / str(want)))
        thread = app.consumer._thread  # type: ignore[attr-defined]  # Faust's consumer thread
        kafka_consumer = thread._create_worker_consumer(app.transport)  # what the thread starts (no I/O before)
        assert kafka_consumer._fetch_max_wait_ms == want
    monkeypatch.setenv("SCORER_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(SystemExit, match="SCORER_FETCH_MAX_WAIT_MS"):
        ScorerSettings()


def test_trims_wait_longer_when_they_cost_more_than_their_share() -> None:
    """A cheap trim comes every SCORER_MALLOC_TRIM_S; a costly one (a large heap) spaces the next out so that
    trimming never takes more than TRIM_CPU_SHARE of a core."""
    assert malloc.next_trim_in(0.003, 2.0) == 2.0  # 3 ms every 2 s: 0.15 % of a core
    assert malloc.next_trim_in(0.030, 2.0) == pytest.approx(6.0)  # 30 ms at most 0.5 % of a core: every 6 s
    assert malloc.next_trim_in(0.030, 10.0) == 10.0  # ... which the default 10 s already is under
    assert malloc.next_trim_in(0.0, 10.0) == 10.0
    took = malloc.timed_trim()
    assert 0.0 <= took < 5.0


def test_faust_s_monitor_is_kept_to_what_faust_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the Monitor sensor keeps only when each partition's stream last took an event (Faust's consumer
    reads it to tell a stuck stream); SCORER_FAUST_MONITOR=faust gives Faust's own, which counts everything."""
    monkeypatch.delenv("SCORER_FAUST_MONITOR", raising=False)
    tp = TP("events", 3)
    lean = build_app(ScorerSettings(store="memory://", data_dir=tmp_path)).monitor
    assert isinstance(lean, LeanMonitor)
    lean.on_stream_event_in(tp, 7, object(), object())
    assert set(lean.stream_inbound_time) == {tp} and lean.events_total == 0
    lean.on_table_set(object(), b"k", b"v")
    assert lean.tables == {}
    monkeypatch.setenv("SCORER_FAUST_MONITOR", "faust")
    own = build_app(ScorerSettings(store="memory://", data_dir=tmp_path / "b")).monitor
    assert type(own) is Monitor
    monkeypatch.setenv("SCORER_FAUST_MONITOR", "none")
    with pytest.raises(SystemExit, match="SCORER_FAUST_MONITOR"):
        ScorerSettings()
