"""Scorer settings from the environment (documented in .env.example)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.core.config import (
    DEFAULT_SCORER_METRICS_PORT,
    KafkaSettings,
    env_float,
    env_int,
    env_str,
    horizon_ms,
)
from services.core.days import ScorecardTzError, scorecard_tz
from services.core.scorecard import ScorecardConfig
from services.core.scorecard_config import ScorecardConfigError, config_from_env
from services.core.secrets import refuse_placeholders, require_secrets

from .collector import parse_thresholds


def _checked_config() -> ScorecardConfig:
    try:
        return config_from_env()
    except ScorecardConfigError as exc:
        raise SystemExit(str(exc)) from None


def _checked_gc(raw: str) -> tuple[int, int, int]:
    try:
        return parse_thresholds(raw)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _checked_tz() -> str:
    try:
        return scorecard_tz()
    except ScorecardTzError as exc:
        raise SystemExit(str(exc)) from None


@dataclass(frozen=True)
class ScorerSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    app_id: str = field(default_factory=lambda: env_str("SCORER_APP_ID", "floorwatch-scorer"))
    store: str = field(default_factory=lambda: env_str("SCORER_STORE", "rocksdb://"))
    # RocksDB's memory per database (rocksdb://: one per table partition, 15 with the default partitions): its
    # memtable (RocksDB keeps up to 3 while one is flushed) and its block cache. 0: Faust's default, 64 MiB and
    # 2 GiB, caps a day fills: a real worker on a small floor held 799 MB at hour 8 and climbing with them, 217-248 MB
    # all day at 2 MiB each with the trim below, at the same speed (benchmarks/PROFILE.md, "A real worker's day"),
    # and ~30 MB less at 0.5 MiB, again at the same speed (whatif_issue11.json run_f). The OS's page cache keeps the
    # files' blocks besides.
    rocksdb_write_buffer_mb: float = field(default_factory=lambda: env_float("SCORER_ROCKSDB_WRITE_BUFFER_MB", 0.5))
    rocksdb_block_cache_mb: float = field(default_factory=lambda: env_float("SCORER_ROCKSDB_BLOCK_CACHE_MB", 0.5))
    # Freed memory handed back to the OS this often at most (glibc's malloc_trim; 0: never), less often when a trim
    # costs more than malloc.TRIM_CPU_SHARE of a core. A trim takes 2-5 ms on a small floor's worker and gave back
    # ~25 MB (services/scorer/malloc.py).
    malloc_trim_s: float = field(default_factory=lambda: env_float("SCORER_MALLOC_TRIM_S", 10))
    # CPython's cyclic collector: "gen0,gen1,gen2" thresholds, or "python" for Python's own 700,10,10, whose full
    # collections of a large floor's state stopped the worker for up to 1.7 s (services/scorer/collector.py).
    gc_thresholds: tuple[int, int, int] = field(
        default_factory=lambda: _checked_gc(env_str("SCORER_GC_THRESHOLDS", "10000,10,100")))
    # "wall": now is the wall clock (live floors); "event": now is the newest event time seen (replays, tests).
    clock: str = field(default_factory=lambda: env_str("SCORER_CLOCK", "wall"))
    grace_ms: int = field(default_factory=lambda: int(env_float("GRACE_S", 60) * 1000))
    # A window's edge may be rounded only to buckets of W/60 (METRICS.md): 1 s for the 1m window.
    bucket_ms: int = field(default_factory=lambda: round(env_float("BUCKET_S", 1) * 1000))
    tick_s: float = field(default_factory=lambda: env_float("TICK_S", 1.0))
    # Real time between ticks: stage 1 hands on its changed partials this often, and stage 2 builds the queue
    # views they changed as soon as they come in, at most this often (0: on the tick only). Agents' views and
    # the alert rules stay on the tick. A figure shows about PARTIALS_TICK_S + FAST_VIEWS_S after its event.
    partials_tick_s: float = field(default_factory=lambda: env_float("PARTIALS_TICK_S", 0.25))
    fast_views_s: float = field(default_factory=lambda: env_float("FAST_VIEWS_S", 0.25))
    # An agent's own view is rebuilt this often (agents take turns; its as_of says when); queue views are
    # rebuilt every tick. Thousands of agents, each changing with every chat, cost more than all queues.
    agent_view_refresh_s: float = field(default_factory=lambda: env_float("AGENT_VIEW_REFRESH_S", 5.0))
    # Events scored per batch, and the longest a batch waits to fill (a bound on added latency).
    batch_max: int = field(default_factory=lambda: env_int("SCORER_BATCH_MAX", 500))
    batch_within_s: float = field(default_factory=lambda: env_float("SCORER_BATCH_WITHIN_S", 0.05))
    # The producer of partials and views (what is rebuilt from state), apart from the state producer whose
    # writes the commits wait for: how long a batch lingers, how large it grows, and its compression
    # ("none", the default: measured on one machine, lz4 cost the CPU-bound worker 8 % of its events/s for bytes the
    # loopback did not miss; "lz4" where the network between worker, broker and API costs more; "zstd", "snappy",
    # "gzip" at level 9, costly).
    output_linger_ms: int = field(default_factory=lambda: env_int("SCORER_OUTPUT_LINGER_MS", 10))
    output_batch_bytes: int = field(default_factory=lambda: env_int("SCORER_OUTPUT_BATCH_BYTES", 512 * 1024))
    output_compression: str = field(default_factory=lambda: env_str("SCORER_OUTPUT_COMPRESSION", "none"))
    # "separate" (the default), or "shared": everything on Faust's producer, as before (kept to measure both).
    output_producer: str = field(default_factory=lambda: env_str("SCORER_OUTPUT_PRODUCER", "separate"))
    # "lean" (the default): Faust's Monitor sensor kept to what Faust reads back (services/scorer/monitor.py), or
    # "faust": Faust's own, which counts and times every record, send and table access (kept to measure both).
    faust_monitor: str = field(default_factory=lambda: env_str("SCORER_FAUST_MONITOR", "lean"))
    # At most this many partial buckets stage 1 handed to stage 2 in the same worker not yet taken (0: off, every
    # partial decoded; services/scorer/handoff.py). Beyond it (stage 2 behind on a backlog) stage 1 stops handing on.
    handoff_max: int = field(default_factory=lambda: env_int("SCORER_HANDOFF_MAX", 2048))
    # How often a worker deletes from the partials topic what its stage 2 has committed (services/scorer/purge.py;
    # 0: never, the topic's retention alone bounds it).
    partials_purge_s: float = field(default_factory=lambda: env_float("SCORER_PARTIALS_PURGE_S", 60.0))
    # Closed conversations stay this long after their last event, so late events still find them.
    retention_ms: int = field(default_factory=lambda: int(env_float("CONVERSATION_RETENTION_S", 3900) * 1000))
    # After retention a closed conversation leaves a tombstone this long, so an order or a rating that comes
    # hours later counts in its queue instead of opening a new conversation.
    tombstone_ms: int = field(default_factory=lambda: int(env_float("CONVERSATION_TOMBSTONE_S", 86_400) * 1000))
    # An agent whose last status or chat change is this old, who is offline (or never sent a status) and holds no
    # chat, is deleted: its view leaves the API, the wallboard and /metrics, and it starts fresh if it comes back.
    agent_retention_ms: int = field(default_factory=lambda: int(env_float("AGENT_RETENTION_S", 86_400) * 1000))
    # at_least_once (default: idempotent state makes replays harmless) or exactly_once (Kafka transactions);
    # docs/architecture.md has the measured cost of each.
    processing_guarantee: str = field(
        default_factory=lambda: env_str("SCORER_PROCESSING_GUARANTEE", "at_least_once")
    )
    # How soon the group notices a dead worker and moves its partitions (Kafka session timeout; was 20 s, then 10 s).
    # 6 s is the least a broker allows by default (group.min.session.timeout.ms). A worker SIGKILLed for good was
    # taken over in 8.7 s at 6 s with a standby on RocksDB (24.4 s at 10 s without one); shorter means a restart
    # slower than the timeout costs two rebalances, and an event loop stopped for longer is taken for dead (the
    # longest stop measured at a floor x61 was 0.2 s, Python's collector: services/scorer/collector.py).
    session_timeout_s: float = field(default_factory=lambda: env_float("SCORER_SESSION_TIMEOUT_S", 6.0))
    # Standby replicas of the tables (Faust's table_standby_replicas): each worker also follows this many other
    # workers' changelogs, so when one dies for good the survivor that takes its partitions has the state already
    # and only reads the tail. "auto" (the default): 1 on rocksdb://, 0 on memory://, where one is refused (see
    # `__post_init__`). On two workers at 1,000 events/s a standby cost ~0.1 of a core more in all
    # (docs/scaling.md); one worker alone has no other to follow, so it costs nothing there.
    standby: str = field(default_factory=lambda: env_str("SCORER_STANDBY_REPLICAS", "auto"))
    worker_index: int = field(default_factory=lambda: env_int("SCORER_WORKER_INDEX", 0))
    # Static group membership (Kafka's group.instance.id = app id + worker index, unique and stable per worker):
    # a worker that restarts within the session timeout gets its partitions back without a rebalance, instead
    # of waiting the timeout out first. "off": dynamic membership (a worker's index must then not be stable).
    static_membership: bool = field(default_factory=lambda: env_str("SCORER_STATIC_MEMBERSHIP", "on") != "off")
    # The worker's event loop: "uvloop" (the default; mode's uvloop policy, Faust's own option) or "asyncio". With
    # SCORER_MAX_POLL_RECORDS it cut a worker's CPU per event by 12-18 % (benchmarks/results/whatif_issue11.json,
    # run_e and run_f); either alone gained a few per cent.
    event_loop: str = field(default_factory=lambda: env_str("SCORER_EVENT_LOOP", "uvloop"))
    # The most records one poll of the consumer returns (Faust's broker_max_poll_records; 0: no limit, Faust's
    # default).
    max_poll_records: int = field(default_factory=lambda: env_int("SCORER_MAX_POLL_RECORDS", 500))
    # Table writes waiting for the state producer beyond which Faust's conductor stops delivering records (its
    # ProducerBuffer.max_messages, 100 in Faust; services/scorer/producers.py). At 100 the conductor waits a fifth of
    # the time at floor x61: two workers at 1,000 events/s were fresher at 10,000 (p99 0.91 s against 1.19 s, medians),
    # and a worker catching up on a backlog scored 7 % fewer events/s (benchmarks/PROFILE.md): 100 favours catching
    # up. Commits wait for every write whatever the bound.
    state_buffer_max: int = field(default_factory=lambda: env_int("SCORER_STATE_BUFFER_MAX", 10_000))
    # The longest the broker holds a fetch that finds no new record (aiokafka's fetch_max_wait_ms; Faust's driver
    # fixes 1500). The records that come in meanwhile on partitions left out of it wait as long: at 1,500 a worker a
    # little behind fell further behind with every fetch (services/scorer/consumer.py).
    fetch_max_wait_ms: int = field(default_factory=lambda: env_int("SCORER_FETCH_MAX_WAIT_MS", 100))
    web_bind: str = field(default_factory=lambda: env_str("SCORER_WEB_BIND", "127.0.0.1"))  # 0.0.0.0 in a pod
    metrics_port: int = field(default_factory=lambda: env_int("SCORER_METRICS_PORT", DEFAULT_SCORER_METRICS_PORT))
    data_dir: Path = field(
        default_factory=lambda: Path(env_str("RUN_DIR", str(Path.cwd() / ".run" / "local"))) / "scorer"
    )

    # The scorecard's local day (SCORECARD_TZ, default Asia/Shanghai): its day state's days and hours.
    scorecard_tz: str = field(default_factory=lambda: _checked_tz())
    # Its targets, weights and grades (SCORECARD_CONFIG): today's scores on /metrics.
    scorecard: ScorecardConfig = field(default_factory=lambda: _checked_config())

    @property
    def memory_store(self) -> bool:
        """The tables are held in the process (memory://), not on disk."""
        return self.store.startswith("memory:")

    @property
    def standby_replicas(self) -> int:
        """The standby replicas Faust keeps of each table: SCORER_STANDBY_REPLICAS resolved ("auto", or empty as for
        the numeric settings: 1 on disk, 0 on memory://); anything but auto or a count is refused."""
        if self.standby in ("auto", ""):
            return 0 if self.memory_store else 1
        if not (self.standby.isascii() and self.standby.isdigit()):
            raise SystemExit(f"SCORER_STANDBY_REPLICAS must be auto or a count (0 or more), got {self.standby!r}")
        return int(self.standby)

    def __post_init__(self) -> None:
        refuse_placeholders({"AGENT_ID_SALT": env_str("AGENT_ID_SALT", "")})
        require_secrets({"AGENT_ID_SALT": env_str("AGENT_ID_SALT", "")})
        if self.processing_guarantee not in ("at_least_once", "exactly_once"):
            raise SystemExit("SCORER_PROCESSING_GUARANTEE must be at_least_once or exactly_once")
        if self.output_compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
            raise SystemExit("SCORER_OUTPUT_COMPRESSION must be none, gzip, snappy, lz4 or zstd")
        if self.output_producer not in ("separate", "shared"):
            raise SystemExit("SCORER_OUTPUT_PRODUCER must be separate or shared")
        if self.faust_monitor not in ("lean", "faust"):
            raise SystemExit("SCORER_FAUST_MONITOR must be lean or faust")
        if not 1 <= self.fetch_max_wait_ms <= 30_000:
            raise SystemExit(f"SCORER_FETCH_MAX_WAIT_MS must be 1 to 30000, got {self.fetch_max_wait_ms}")
        if self.state_buffer_max < 1:
            raise SystemExit(f"SCORER_STATE_BUFFER_MAX must be 1 or more, got {self.state_buffer_max}")
        if self.max_poll_records < 0:
            raise SystemExit(f"SCORER_MAX_POLL_RECORDS must be 0 or more, got {self.max_poll_records}")
        if self.handoff_max < 0:
            raise SystemExit(f"SCORER_HANDOFF_MAX must be 0 or more, got {self.handoff_max}")
        if self.rocksdb_write_buffer_mb < 0 or self.rocksdb_block_cache_mb < 0 or self.malloc_trim_s < 0:
            raise SystemExit("SCORER_ROCKSDB_WRITE_BUFFER_MB, SCORER_ROCKSDB_BLOCK_CACHE_MB and SCORER_MALLOC_TRIM_S "
                             "must be 0 or more")
        if self.standby_replicas > 0 and self.memory_store:  # (reading it refuses a bad value)
            # Faust's memory store deletes, after every recovery, each key whose changelog partition is not active
            # on the worker, standby copies included (faust/stores/memory.py, on_recovery_completed; the likely cause):
            # with a standby the two-worker rebalance exactness test lost an agent's state on memory://, and it is
            # exact on rocksdb://.
            raise SystemExit("SCORER_STANDBY_REPLICAS needs SCORER_STORE=rocksdb://: Faust's memory:// store drops "
                             "standby copies after each rebalance, so a standby there would lose state")
        if self.event_loop not in ("asyncio", "uvloop"):
            raise SystemExit("SCORER_EVENT_LOOP must be asyncio or uvloop")
        if self.clock not in ("wall", "event"):
            raise SystemExit(f"SCORER_CLOCK must be 'wall' or 'event', got {self.clock!r}")
        if self.agent_retention_ms < self.horizon_ms:
            raise SystemExit(
                f"AGENT_RETENTION_S must be at least {self.horizon_ms // 1000} (the longest window plus GRACE_S): "
                "an agent deleted sooner would take time still inside a window with it"
            )
        if self.bucket_ms <= 0 or 60_000 % self.bucket_ms or self.bucket_ms > 1000:
            raise SystemExit(
                "BUCKET_S must be at most 1 and divide 60 (e.g. 1, 0.5): a window's lower edge may be rounded "
                "only to buckets of 1/60 of its width, 1 s for the 1m window (METRICS.md, rolling windows)"
            )

    @property
    def rocksdb_options(self) -> dict[str, int]:
        """Faust's RocksDB options for each table (rocksdb:// only): what is set here, the rest Faust's defaults.
        A new dict per call (Faust's store takes keys out of the one it gets)."""
        out: dict[str, int] = {}
        if self.rocksdb_write_buffer_mb > 0:
            out["write_buffer_size"] = int(self.rocksdb_write_buffer_mb * 2**20)
        if self.rocksdb_block_cache_mb > 0:
            out["block_cache_size"] = int(self.rocksdb_block_cache_mb * 2**20)
        return out

    @property
    def agent_refresh_ticks(self) -> int:
        return max(1, round(self.agent_view_refresh_s / self.tick_s))

    @property
    def horizon_ms(self) -> int:
        return horizon_ms(self.grace_ms)


def worker_data_dir(s: ScorerSettings) -> Path:
    return s.data_dir / f"worker-{s.worker_index}"



