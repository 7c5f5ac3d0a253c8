#!/usr/bin/env python3
"""Run the whole Floorwatch stack on one machine, as plain processes (no Docker, no systemd).

    python deploy/local/stack.py up            # start what is not running, wait for every health check
    python deploy/local/stack.py status        # pid, health, URL and log of each part
    python deploy/local/stack.py down [--wipe] # stop what we started (and delete RUN_DIR with --wipe)

Parts, in start order: a single-node Kafka in KRaft mode (jars from Maven Central, cached outside
git), Prometheus, Alertmanager, then the services (ingest, SCORER_WORKERS scorer workers, api).
Each part logs to RUN_DIR/logs/<name>.log and has RUN_DIR/pids/<name>.pid; `up` is idempotent.

Every setting comes from the environment (then `.env` at the repository root); see StackConfig
and `.env.example`. Tests use the same functions through tests/conftest.py (config_for_tests).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make `services` importable without installing
    sys.path.insert(0, str(REPO))

from deploy.local.kafka_security import ADMIN_USER, LocalKafkaSecrets  # noqa: E402
from services.core.config import Topics  # noqa: E402
from services.core.kafka_security import client_kwargs  # noqa: E402

T = TypeVar("T")

SECRET_NAMES = (
    "INGEST_TOKEN",
    "API_TOKEN",
    "CHATWOOT_WEBHOOK_SECRET",
    "LIVECHAT_SECRET_KEY",
    "SUNSHINE_API_KEY",
    "AGENT_ID_SALT",  # keys the agent-<hash> names of e-mail agent ids (services/core/privacy.py)
)
LOGPUMP = Path(__file__).resolve().parent / "logpump.py"
KAFKA_TIMEOUT_S = 60.0
KAFKA_SECURITY_MODES = ("plaintext", "sasl_ssl")
SERVICE_TIMEOUT_S = 90.0
MONITORING_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 40
INFRA = ("kafka", "prometheus", "alertmanager")


class StackError(RuntimeError):
    """A part failed to start or to answer its health check (message carries its log tail)."""


# --------------------------------------------------------------------------------------------- config


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments, blank lines, an `export ` prefix and quotes are allowed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def default_kafka_cache(version: str, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "floorwatch" / f"kafka-{version}" / "libs"


@dataclass(frozen=True)
class StackConfig:
    """Where and how the local stack runs. Defaults are the documented ones (.env.example).

    Environment variable for each field: RUN_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT, INGEST_PORT,
    API_PORT, SCORER_METRICS_PORT (first worker; worker i listens on +i), PROMETHEUS_PORT,
    ALERTMANAGER_PORT, EVENT_PARTITIONS, QUEUE_PARTITIONS, SCORER_WORKERS, KAFKA_VERSION,
    KAFKA_CACHE, KAFKA_HEAP, ALERT_WEBHOOK_URL.
    """

    repo: Path = REPO
    run_dir: Path = REPO / ".run" / "local"
    kafka_port: int = 9092
    kafka_controller_port: int = 9094  # never 9093: Alertmanager's port
    ingest_port: int = 8081
    api_port: int = 8080
    scorer_metrics_port: int = 6066
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    event_partitions: int = 6
    queue_partitions: int = 3
    scorer_workers: int = 1
    kafka_version: str = "4.4.0"
    kafka_cache: Path = field(default_factory=lambda: default_kafka_cache("4.4.0"))
    kafka_heap: str = "512m"
    alert_webhook_url: str = "http://127.0.0.1:9099/alerts"
    kafka_security: str = "plaintext"  # or "sasl_ssl": SCRAM over TLS, the only listener clients reach
    env_file: Path = REPO / ".env"
    # Each service's log is rotated past this size, keeping this many older files (LOG_MAX_BYTES, LOG_BACKUPS).
    log_max_bytes: int = 50 * 1024 * 1024
    log_backups: int = 3
    # Prometheus' /-/reload, /-/quit (PROMETHEUS_LIFECYCLE=1): off, so a local process cannot stop it over
    # HTTP; the stack reloads a changed config with SIGHUP instead.
    prometheus_lifecycle: bool = False
    # Highest precedence for the services' environment (tests: SCORER_STORE=memory:// and such).
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> StackConfig:
        """Settings from `environ` (default os.environ), falling back to `.env`, then the defaults."""
        env_path = env_file if env_file is not None else REPO / ".env"
        env = {**read_dotenv(env_path), **(os.environ if environ is None else environ)}

        def integer(name: str, default: int) -> int:
            raw = env.get(name, "")
            if raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise StackError(f"{name}={raw!r} must be an integer") from None

        version = env.get("KAFKA_VERSION") or "4.4.0"
        cfg = cls(
            run_dir=(REPO / (env.get("RUN_DIR") or ".run/local")).resolve(),  # relative: to the repo
            kafka_port=integer("KAFKA_PORT", 9092),
            kafka_controller_port=integer("KAFKA_CONTROLLER_PORT", 9094),
            ingest_port=integer("INGEST_PORT", 8081),
            api_port=integer("API_PORT", 8080),
            scorer_metrics_port=integer("SCORER_METRICS_PORT", 6066),
            prometheus_port=integer("PROMETHEUS_PORT", 9090),
            alertmanager_port=integer("ALERTMANAGER_PORT", 9093),
            event_partitions=integer("EVENT_PARTITIONS", 6),
            queue_partitions=integer("QUEUE_PARTITIONS", 3),
            scorer_workers=integer("SCORER_WORKERS", 1),
            kafka_version=version,
            kafka_cache=Path(env.get("KAFKA_CACHE") or default_kafka_cache(version, env)),
            kafka_heap=env.get("KAFKA_HEAP") or "512m",
            alert_webhook_url=env.get("ALERT_WEBHOOK_URL") or "http://127.0.0.1:9099/alerts",
            kafka_security=(env.get("KAFKA_SECURITY") or "plaintext").lower(),
            env_file=env_path,
            log_max_bytes=integer("LOG_MAX_BYTES", 50 * 1024 * 1024),
            log_backups=integer("LOG_BACKUPS", 3),
            prometheus_lifecycle=env.get("PROMETHEUS_LIFECYCLE", "").strip().lower() in {"1", "true", "yes", "on"},
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.kafka_security not in KAFKA_SECURITY_MODES:
            raise StackError(f"KAFKA_SECURITY={self.kafka_security!r}: use one of {', '.join(KAFKA_SECURITY_MODES)}")
        if self.scorer_workers < 1:
            raise StackError("SCORER_WORKERS must be at least 1")
        if self.event_partitions < 1 or self.queue_partitions < 1:
            raise StackError("EVENT_PARTITIONS and QUEUE_PARTITIONS must be at least 1")
        ports = [
            self.kafka_port,
            self.kafka_controller_port,
            self.ingest_port,
            self.api_port,
            self.prometheus_port,
            self.alertmanager_port,
            *self.scorer_ports,
        ]
        if len(set(ports)) != len(ports):
            raise StackError(f"two parts share a port: {sorted(ports)}")

    # ---- derived addresses
    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def scorer_ports(self) -> list[int]:
        return [self.scorer_metrics_port + i for i in range(self.scorer_workers)]

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    # ---- paths under RUN_DIR
    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "config"

    @property
    def kafka_dir(self) -> Path:
        # One folder per mode: SCRAM users are made with the storage, so each mode keeps its own broker.
        return self.run_dir / ("kafka" if self.kafka_security == "plaintext" else f"kafka-{self.kafka_security}")

    @property
    def kafka_secrets(self) -> LocalKafkaSecrets | None:
        return None if self.kafka_security == "plaintext" else LocalKafkaSecrets(self.kafka_dir / "tls")

    @property
    def python(self) -> str:
        venv = self.repo / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable


TEST_PLATFORM_RULES = (
    '{"jd": {"hours": null}, "pdd": {"hours": null}, "taobao": {"hours": null}, "tmall": {"hours": null}}'
)


def config_for_tests(**overrides: object) -> StackConfig:
    """The test session's stack: its own ports and RUN_DIR, fresh secrets, in-memory scorer tables.

    TEST_PORT_OFFSET (default 0) shifts every port and the RUN_DIR, so two test sessions on one
    machine (two developers' trees, say) never share a broker.
    """
    off = int(os.environ.get("TEST_PORT_OFFSET", "0") or 0)
    run_dir = REPO / ".run" / ("test" if off == 0 else f"test-{off}")
    cfg = StackConfig(
        run_dir=run_dir,
        kafka_port=29092 + off,
        kafka_controller_port=29094 + off,
        ingest_port=28081 + off,
        api_port=28080 + off,
        scorer_metrics_port=26066 + off,
        prometheus_port=29090 + off,
        alertmanager_port=29095 + off,
        alert_webhook_url=f"http://127.0.0.1:{29099 + off}/alerts",
        env_file=run_dir / ".env",  # RUN_DIR is wiped first, so every session gets new tokens
        # The platforms' rules counted all day: end-to-end figures must not depend on the hour CI runs at (the
        # counted hours themselves are tested in process: tests/unit/test_platform_rules.py).
        extra_env={"SCORER_STORE": "memory://", "PLATFORM_RULES": TEST_PLATFORM_RULES},
    )
    cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    cfg.validate()
    return cfg


def topics_for(env: Mapping[str, str]) -> Topics:
    """services.core.config.Topics as the services will see it (TOPIC_* from `env`)."""
    names = {k: v for k, v in env.items() if k.startswith("TOPIC_")}
    saved = {k: os.environ.get(k) for k in names}
    try:
        os.environ.update(names)
        return Topics()
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def topic_specs(cfg: StackConfig, env: Mapping[str, str]) -> list[tuple[str, int, bool]]:
    """(name, partitions, compacted) of every topic the stack needs."""
    t = topics_for(env)
    return [
        (t.events, cfg.event_partitions, False),
        (t.dead_letter, cfg.event_partitions, False),
        (t.agent_changes, cfg.event_partitions, False),
        (t.partials, cfg.queue_partitions, True),
        (t.views, cfg.queue_partitions, True),
        (t.alerts, cfg.queue_partitions, True),
    ]


# --------------------------------------------------------------------------------------------- secrets


def ensure_dotenv(cfg: StackConfig) -> bool:
    """Write the secrets file (random values) unless it exists. True when it was written now."""
    path = cfg.env_file
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Floorwatch secrets, written once by deploy/local/stack.py (`make up`). Never commit this file.",
        "# Every other setting and its default: .env.example. Process environment overrides this file.",
        *(f"{name}={secrets.token_urlsafe(24)}" for name in SECRET_NAMES),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return True


def service_env(cfg: StackConfig) -> dict[str, str]:
    """The environment every service process gets: os.environ over `.env`, then the stack's own
    addresses and sizes (so they always match what runs), then cfg.extra_env."""
    env = {**read_dotenv(cfg.env_file), **os.environ}
    env.update(
        KAFKA_BOOTSTRAP=cfg.kafka_bootstrap,
        KAFKA_PORT=str(cfg.kafka_port),
        INGEST_PORT=str(cfg.ingest_port),
        API_PORT=str(cfg.api_port),
        SCORER_METRICS_PORT=str(cfg.scorer_metrics_port),
        SCORER_WORKERS=str(cfg.scorer_workers),
        PROMETHEUS_PORT=str(cfg.prometheus_port),
        ALERTMANAGER_PORT=str(cfg.alertmanager_port),
        EVENT_PARTITIONS=str(cfg.event_partitions),
        QUEUE_PARTITIONS=str(cfg.queue_partitions),
        RUN_DIR=str(cfg.run_dir),
        INGEST_URL=cfg.ingest_url,
        API_URL=cfg.api_url,
        PROMETHEUS_URL=cfg.prometheus_url,
        ALERTMANAGER_URL=cfg.alertmanager_url,
        ALERT_WEBHOOK_URL=cfg.alert_webhook_url,
        PYTHONUNBUFFERED="1",
    )
    if cfg.kafka_secrets is not None:
        env.update(cfg.kafka_secrets.client_env())
    env.update(cfg.extra_env)
    return env


# --------------------------------------------------------------------------------------------- processes

_children: dict[int, subprocess.Popen[bytes]] = {}  # processes started by this interpreter (reaped)
_pumps: list[subprocess.Popen[bytes]] = []  # their log pumps (they end with the process they serve)


@dataclass(frozen=True)
class Part:
    name: str
    argv: tuple[str, ...]
    url: str  # what `up` prints
    health_url: str | None  # None: Kafka (checked with an admin client)
    ports: tuple[int, ...]
    timeout_s: float
    env: Mapping[str, str] | None = None


def _sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion in a private event loop on a private thread, so this works
    from plain code, from sync fixtures and from inside a running loop alike."""
    box: dict[str, T] = {}
    errors: list[BaseException] = []

    def runner() -> None:
        async def main() -> T:
            return await factory()

        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner, name="floorwatch-stack", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box["value"]


def pid_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.pid"


def _argv_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.cmdline"


def log_path(cfg: StackConfig, name: str) -> Path:
    return cfg.logs_dir / f"{name}.log"


def _proc_cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")  # zombies are dead


def _recorded(cfg: StackConfig, name: str) -> tuple[int, tuple[str, ...]] | None:
    try:
        pid = int(pid_path(cfg, name).read_text().strip())
        argv = tuple(_argv_path(cfg, name).read_text(encoding="utf-8").split("\0"))
    except (OSError, ValueError):
        return None
    return pid, argv


def running_pid(cfg: StackConfig, name: str) -> int | None:
    """The pid of part `name` if its pid file names a live process whose command line is the one we
    started (guards against pid reuse and against other people's processes)."""
    rec = _recorded(cfg, name)
    if rec is None:
        return None
    pid, argv = rec
    if not _alive(pid) or _proc_cmdline(pid) != argv:
        return None
    return pid


def _spec_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.spec"


def _spec(part: Part) -> str:
    """What identifies the settings a part was started with (its argv, health URL and ports)."""
    index = (part.env or {}).get("SCORER_WORKER_INDEX", "")
    return "\n".join([*part.argv, part.health_url or "", *map(str, part.ports), index]) + "\n"


def _forget(cfg: StackConfig, name: str) -> None:
    for path in (pid_path(cfg, name), _argv_path(cfg, name), _spec_path(cfg, name)):
        path.unlink(missing_ok=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(cfg: StackConfig, name: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path(cfg, name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _fail(cfg: StackConfig, name: str, why: str) -> StackError:
    return StackError(f"{name}: {why}\n--- last lines of {log_path(cfg, name)} ---\n{log_tail(cfg, name)}\n---")


def _spawn(cfg: StackConfig, part: Part) -> int:
    busy = [p for p in part.ports if not _port_free(p)]
    if busy:
        raise StackError(
            f"{part.name}: port(s) {busy} already in use by a process this stack did not start; "
            "stop it or choose other ports (see .env.example)"
        )
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    cfg.pids_dir.mkdir(parents=True, exist_ok=True)
    # The output goes through a log pump that rotates the file by size (deploy/local/logpump.py); it ends
    # when the part closes its output. Its own session: a Ctrl-C or a group signal to the part leaves it to
    # write the part's last lines.
    pump = subprocess.Popen(
        [sys.executable, str(LOGPUMP), str(log_path(cfg, part.name)), str(cfg.log_max_bytes), str(cfg.log_backups)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert pump.stdin is not None
    with pump.stdin as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log.write(f"=== {stamp} starting {part.name}: {shlex.join(part.argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            part.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cfg.repo,
            env=dict(part.env) if part.env is not None else None,
            start_new_session=True,
        )
    _pumps[:] = [p for p in _pumps if p.poll() is None]
    _pumps.append(pump)
    _children[proc.pid] = proc
    _argv_path(cfg, part.name).write_text("\0".join(part.argv), encoding="utf-8")
    _spec_path(cfg, part.name).write_text(_spec(part), encoding="utf-8")
    pid_path(cfg, part.name).write_text(f"{proc.pid}\n")
    return proc.pid


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # started in its own session: signal its helpers too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_dead(pids: Iterable[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    return left


def _stop_names(cfg: StackConfig, names: Sequence[str], sig: int = signal.SIGTERM) -> list[str]:
    """Signal each named part that is ours and alive, wait, SIGKILL stragglers, drop pid files."""
    stopped: list[str] = []
    targets: dict[int, str] = {}
    for name in names:
        rec = _recorded(cfg, name)
        pid = running_pid(cfg, name)
        if pid is None:
            if rec is not None and _alive(rec[0]):
                print(f"  {name}: pid {rec[0]} is not the process we started any more; left alone")
            _forget(cfg, name)
            continue
        _signal(pid, sig)
        targets[pid] = name
    left = _wait_dead(targets, STOP_TIMEOUT_S)
    for pid in left:
        print(f"  {targets[pid]}: no exit {STOP_TIMEOUT_S:.0f}s after SIGTERM, sending SIGKILL")
        _signal(pid, signal.SIGKILL)
    _wait_dead(left, 5.0)
    for pid, name in targets.items():
        _children.pop(pid, None)
        _forget(cfg, name)
        stopped.append(name)
    return stopped


# --------------------------------------------------------------------------------------------- kafka


def ensure_jars(cfg: StackConfig) -> Path:
    """Copy the broker's jars from Maven Central into KAFKA_CACHE unless they are already there."""
    libs = cfg.kafka_cache
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found: run `make system-deps` (Debian package maven)")
    libs.mkdir(parents=True, exist_ok=True)
    print(f"fetching Kafka {cfg.kafka_version} jars into {libs} ...", flush=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(cfg.repo / "deploy" / "kafka" / "pom.xml"),
        f"-Dkafka.version={cfg.kafka_version}",
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    result = subprocess.run(cmd, cwd=cfg.repo, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise StackError(f"mvn could not fetch the Kafka jars (exit {result.returncode}): {shlex.join(cmd)}")
    if not (libs / f"kafka_2.13-{cfg.kafka_version}.jar").exists():
        raise StackError(f"mvn ran but {libs} has no kafka_2.13-{cfg.kafka_version}.jar")
    marker.write_text(f"kafka {cfg.kafka_version}\n")
    return libs


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found: run `make system-deps` (Debian package openjdk-17-jre-headless)")
    return java


def _write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _kafka_files(cfg: StackConfig) -> tuple[Path, Path]:
    props = cfg.kafka_dir / "server.properties"
    log4j = cfg.kafka_dir / "log4j2.properties"
    return props, log4j


def _render_kafka_config(cfg: StackConfig) -> bool:
    props, log4j = _kafka_files(cfg)
    ctrl = cfg.kafka_controller_port
    listeners = f"""listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{ctrl}
advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
    if cfg.kafka_secrets is not None:
        cfg.kafka_secrets.ensure()
        listeners = cfg.kafka_secrets.server_properties(cfg.kafka_port).replace("{ctrl}", str(ctrl))
    server = f"""# Written by deploy/local/stack.py; single-node KRaft (combined broker + controller).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctrl}
controller.listener.names=CONTROLLER
{listeners}log.dirs={cfg.kafka_dir / "data"}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=33554432
"""
    quiet = """# Written by deploy/local/stack.py: WARN and above, plus the broker's start/stop lines.
status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
"""
    changed = _write_if_changed(props, server)
    _write_if_changed(log4j, quiet)
    return changed


def _kafka_cluster_id(cfg: StackConfig) -> str:
    path = cfg.kafka_dir / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    while True:  # what `kafka-storage.sh random-uuid` prints: 16 random bytes, base64url, no padding
        cid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cid + "\n")
    return cid


def _kafka_java_args(cfg: StackConfig, libs: Path) -> list[str]:
    _, log4j = _kafka_files(cfg)
    return [
        _java(),
        f"-Xms{cfg.kafka_heap}",
        f"-Xmx{cfg.kafka_heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
    ]


def _format_kafka(cfg: StackConfig, libs: Path) -> None:
    data = cfg.kafka_dir / "data"
    if (data / "meta.properties").exists():
        return
    props, _ = _kafka_files(cfg)
    cid = _kafka_cluster_id(cfg)
    cmd = [*_kafka_java_args(cfg, libs), "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(props)]
    if cfg.kafka_secrets is not None:
        cmd += cfg.kafka_secrets.scram_format_args()
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    with log_path(cfg, "kafka").open("ab") as log:
        log.write(f"=== formatting KRaft storage in {data} (cluster id {cid})\n".encode())
        log.flush()
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise _fail(cfg, "kafka", f"formatting storage failed (exit {result.returncode})")


def kafka_part(cfg: StackConfig, libs: Path | None = None) -> Part:
    props, _ = _kafka_files(cfg)
    return Part(
        name="kafka",
        argv=(*_kafka_java_args(cfg, libs or cfg.kafka_cache), "kafka.Kafka", str(props)),
        url=cfg.kafka_bootstrap,
        health_url=None,
        ports=(cfg.kafka_port, cfg.kafka_controller_port),
        timeout_s=KAFKA_TIMEOUT_S,
    )


def kafka_admin_kwargs(cfg: StackConfig) -> dict[str, Any]:
    """Security settings of the stack's own Kafka clients (the admin user under SASL_SSL)."""
    if cfg.kafka_secrets is None:
        return {}
    return client_kwargs(cfg.kafka_secrets.client_env(ADMIN_USER))


async def _list_topics(bootstrap: str, timeout_s: float = 5.0, **security: Any) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **security)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        topics = await asyncio.wait_for(admin.list_topics(), timeout_s)
        return [str(t) for t in topics]
    finally:
        await admin.close()


def kafka_answers(cfg: StackConfig) -> bool:
    if not _port_open(cfg.kafka_port):
        return False
    try:
        _sync(lambda: _list_topics(cfg.kafka_bootstrap, **kafka_admin_kwargs(cfg)))
    except Exception:
        return False
    return True


async def _create_topics(bootstrap: str, specs: Sequence[tuple[str, int, bool]], **security: Any) -> list[str]:
    """Create the missing ones; returns the names created. Existing topics are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if compact else {},
            )
            for name, partitions, compact in specs
            if name not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted, timeout_ms=15000)
        problems = []
        for entry in response.to_object().get("topic_errors", []):
            code = int(entry.get("error_code", 0))
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a racing creator)
                problems.append(f"{entry.get('topic')}: error {code} {entry.get('error_message')}")
        if problems:
            raise StackError("could not create topics: " + "; ".join(problems))
        names = [t.name for t in wanted]
        await _until_topics_ready(admin, names)
        return names
    finally:
        await admin.close()


async def _until_topics_ready(admin: Any, names: Sequence[str], timeout_s: float = 15.0) -> None:
    """The controller has answered; wait until the broker's metadata shows every partition led."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(list(names))
        ready = {
            t["topic"]
            for t in described
            if t.get("error_code", 0) == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics {sorted(set(names) - ready)} have no leader {timeout_s:.0f}s after creation")
        await asyncio.sleep(0.1)


def create_topics(cfg: StackConfig, specs: Sequence[tuple[str, int, bool]]) -> list[str]:
    start = time.monotonic()
    while True:  # a broker that just came up may still refuse with a retriable error
        try:
            return _sync(lambda: _create_topics(cfg.kafka_bootstrap, specs, **kafka_admin_kwargs(cfg)))
        except StackError:
            if time.monotonic() - start > 10.0:  # the broker said no: retry only briefly
                raise
        except Exception as exc:
            if time.monotonic() - start > KAFKA_TIMEOUT_S:
                msg = f"could not create topics on {cfg.kafka_bootstrap}: {exc!r}"
                raise StackError(msg) from exc
        time.sleep(1.0)


def start_kafka(cfg: StackConfig, quiet: bool = False) -> None:
    """Jars, storage, broker, topics: everything `up` does for Kafka (idempotent)."""
    libs = ensure_jars(cfg)
    changed = _render_kafka_config(cfg)
    _format_kafka(cfg, libs)
    part = kafka_part(cfg, libs)
    was_running = running_pid(cfg, "kafka") is not None
    _ensure_running(cfg, part, lambda: kafka_answers(cfg), quiet=quiet)
    if changed and was_running and not quiet:
        print("  kafka: server.properties changed while the broker runs; `down` then `up` to apply it")
    created = create_topics(cfg, topic_specs(cfg, service_env(cfg)))
    if created and not quiet:
        print(f"  kafka: created topics {', '.join(created)}")


# --------------------------------------------------------------------------------------------- monitoring


def _render(template: Path, values: Mapping[str, str]) -> str:
    try:
        return string.Template(template.read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError) as exc:
        raise StackError(f"{template}: bad placeholder {exc}") from exc


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _render_rules(template: Path, values: Mapping[str, str]) -> str:
    """A rules file with its ${NAME} placeholders filled. Unlike the config templates, rules keep
    Prometheus's own template variables ($labels, $value) as they are: only ${NAME} is replaced,
    and a ${NAME} with no value is an error."""
    text = template.read_text(encoding="utf-8")
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(values))
    if unknown:
        raise StackError(f"{template}: unknown placeholder(s) {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def wallboard_url(cfg: StackConfig) -> str:
    """The wallboard base URL put into alert links: WALLBOARD_URL if set (a public address, for
    rules rendered for another deployment), else this stack's API URL."""
    return (os.environ.get("WALLBOARD_URL") or cfg.api_url).rstrip("/")


def render_configs(cfg: StackConfig, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Render deploy/prometheus/prometheus.yml.tmpl and deploy/alertmanager/alertmanager.yml.tmpl
    (templates with ${NAME} placeholders) into RUN_DIR/config, or `out_dir`, and the rule files of
    deploy/prometheus/rules into its rules/ folder (their ${WALLBOARD_URL} filled). Returns the
    paths of the two configs."""
    folder = cfg.config_dir if out_dir is None else out_dir
    rules_dir = folder / "rules"
    scorer_targets = ", ".join(f"'127.0.0.1:{p}'" for p in cfg.scorer_ports)
    prom = _render(
        cfg.repo / "deploy" / "prometheus" / "prometheus.yml.tmpl",
        {
            "INGEST_TARGET": f"127.0.0.1:{cfg.ingest_port}",
            "API_TARGET": f"127.0.0.1:{cfg.api_port}",
            "SCORER_TARGETS": scorer_targets,
            "ALERTMANAGER_TARGET": f"127.0.0.1:{cfg.alertmanager_port}",
            "PROMETHEUS_TARGET": f"127.0.0.1:{cfg.prometheus_port}",
            "RULES_GLOB": str(rules_dir / "*.yml"),
        },
    )
    am = _render(
        cfg.repo / "deploy" / "alertmanager" / "alertmanager.yml.tmpl",
        {"ALERT_WEBHOOK_URL": cfg.alert_webhook_url},
    )
    templates = sorted((cfg.repo / "deploy" / "prometheus" / "rules").glob("*.yml"))
    rule_values = {"WALLBOARD_URL": wallboard_url(cfg)}
    rendered = {t.name: _render_rules(t, rule_values) for t in templates}
    rules_dir.mkdir(parents=True, exist_ok=True)
    for stale in rules_dir.glob("*.yml"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in rendered.items():
        _write_if_changed(rules_dir / name, text)
    prom_path = folder / "prometheus.yml"
    am_path = folder / "alertmanager.yml"
    _write_if_changed(prom_path, prom)
    _write_if_changed(am_path, am)
    return prom_path, am_path


def _rules_snapshot(cfg: StackConfig) -> str:
    folder = cfg.config_dir / "rules"
    return "\0".join(f"{p.name}\0{_snapshot(p)}" for p in sorted(folder.glob("*.yml"))) if folder.is_dir() else ""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found: run `make system-deps`")
    return found


def prometheus_part(cfg: StackConfig) -> Part:
    return Part(
        name="prometheus",
        argv=(
            _binary("prometheus"),
            f"--config.file={cfg.config_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={cfg.run_dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{cfg.prometheus_port}",
            *(["--web.enable-lifecycle"] if cfg.prometheus_lifecycle else []),
            # A live floor: resend firing alerts every 5 s (default 1m), so a first notification
            # lost before Alertmanager was discovered is retried at once, not a minute later.
            "--rules.alert.resend-delay=5s",
        ),
        url=cfg.prometheus_url,
        health_url=f"{cfg.prometheus_url}/-/ready",
        ports=(cfg.prometheus_port,),
        timeout_s=MONITORING_TIMEOUT_S,
    )


def alertmanager_part(cfg: StackConfig) -> Part:
    return Part(
        name="alertmanager",
        argv=(
            _binary("prometheus-alertmanager"),
            f"--config.file={cfg.config_dir / 'alertmanager.yml'}",
            f"--storage.path={cfg.run_dir / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{cfg.alertmanager_port}",
            "--cluster.listen-address=",
        ),
        url=cfg.alertmanager_url,
        health_url=f"{cfg.alertmanager_url}/-/ready",
        ports=(cfg.alertmanager_port,),
        timeout_s=MONITORING_TIMEOUT_S,
    )


# --------------------------------------------------------------------------------------------- services


def service_parts(cfg: StackConfig) -> list[Part]:
    env = service_env(cfg)
    py = cfg.python
    parts = [
        Part(
            name="ingest",
            argv=(py, "-m", "services.ingest"),
            url=cfg.ingest_url,
            health_url=f"{cfg.ingest_url}/healthz",
            ports=(cfg.ingest_port,),
            timeout_s=SERVICE_TIMEOUT_S,
            env=env,
        )
    ]
    for i, port in enumerate(cfg.scorer_ports):
        parts.append(
            Part(
                name=f"scorer-{i}",
                argv=(py, "-m", "services.scorer"),
                url=f"http://127.0.0.1:{port}/metrics",
                health_url=f"http://127.0.0.1:{port}/healthz",
                ports=(port,),
                timeout_s=SERVICE_TIMEOUT_S,
                env={**env, "SCORER_WORKER_INDEX": str(i), "SCORER_METRICS_PORT": str(port)},
            )
        )
    parts.append(
        Part(
            name="api",
            argv=(py, "-m", "services.api"),
            url=cfg.api_url,
            health_url=f"{cfg.api_url}/healthz",
            ports=(cfg.api_port,),
            timeout_s=SERVICE_TIMEOUT_S,
            env=env,
        )
    )
    return parts


def all_parts(cfg: StackConfig) -> list[Part]:
    return [kafka_part(cfg), prometheus_part(cfg), alertmanager_part(cfg), *service_parts(cfg)]


# --------------------------------------------------------------------------------------------- health


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _checker(cfg: StackConfig, part: Part) -> Callable[[], bool]:
    if part.health_url is None:
        return lambda: kafka_answers(cfg)
    url = part.health_url
    return lambda: http_ok(url)


def _wait_healthy(cfg: StackConfig, part: Part, pid: int, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + part.timeout_s
    while True:
        if check():
            return
        if not _alive(pid):
            raise _fail(cfg, part.name, f"process {pid} exited before it answered its health check")
        if time.monotonic() > deadline:
            what = part.health_url or f"a Kafka admin request on {cfg.kafka_bootstrap}"
            raise _fail(cfg, part.name, f"no answer from {what} within {part.timeout_s:.0f}s (pid {pid})")
        time.sleep(0.5)


def _start(cfg: StackConfig, part: Part, quiet: bool) -> tuple[int, bool]:
    """Start `part` unless our process for it is alive. Returns (pid, started_now)."""
    pid = running_pid(cfg, part.name)
    if pid is not None:
        if _spec(part) != _snapshot(_spec_path(cfg, part.name)):
            raise StackError(
                f"{part.name} (pid {pid}) runs with other settings than the current ones "
                "(ports, paths or worker index changed): `make down`, then `make up`"
            )
        if not quiet:
            print(f"  {part.name}: already running (pid {pid})", flush=True)
        return pid, False
    _forget(cfg, part.name)
    pid = _spawn(cfg, part)
    if not quiet:
        print(f"  {part.name}: started (pid {pid})", flush=True)
    return pid, True


def _ensure_running(cfg: StackConfig, part: Part, check: Callable[[], bool], quiet: bool = False) -> None:
    pid, _ = _start(cfg, part, quiet)
    _wait_healthy(cfg, part, pid, check)


def _ensure_many(cfg: StackConfig, parts: Sequence[Part], quiet: bool) -> None:
    """Start every part that is not running, then wait for all of them (they boot in parallel)."""
    started = [(part, *_start(cfg, part, quiet)) for part in parts]
    for part, pid, _ in started:
        _wait_healthy(cfg, part, pid, _checker(cfg, part))


def _reload(cfg: StackConfig, name: str) -> None:
    """Prometheus and Alertmanager reload their configuration on SIGHUP: no HTTP lifecycle endpoint needed."""
    pid = running_pid(cfg, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)


def start_monitoring(cfg: StackConfig, quiet: bool = False) -> None:
    prom_before = _snapshot(cfg.config_dir / "prometheus.yml")
    am_before = _snapshot(cfg.config_dir / "alertmanager.yml")
    rules_before = _rules_snapshot(cfg)
    prom_cfg, am_cfg = render_configs(cfg)
    (cfg.run_dir / "prometheus").mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "alertmanager").mkdir(parents=True, exist_ok=True)
    parts = [prometheus_part(cfg), alertmanager_part(cfg)]
    was_running = {p.name: running_pid(cfg, p.name) is not None for p in parts}
    _ensure_many(cfg, parts, quiet)
    # A running Prometheus/Alertmanager picks up a changed rendered config without a restart.
    if was_running["prometheus"] and (_snapshot(prom_cfg) != prom_before or _rules_snapshot(cfg) != rules_before):
        _reload(cfg, "prometheus")
    if was_running["alertmanager"] and _snapshot(am_cfg) != am_before:
        _reload(cfg, "alertmanager")


def _snapshot(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def start_services(cfg: StackConfig, quiet: bool = False) -> None:
    parts = service_parts(cfg)
    wanted = {p.name for p in parts}
    extra = [n for n in _recorded_names(cfg) if n.startswith("scorer-") and n not in wanted]
    if extra:  # SCORER_WORKERS went down since the last `up`
        _stop_names(cfg, extra)
    _ensure_many(cfg, parts, quiet)


# --------------------------------------------------------------------------------------------- up / down


def up(cfg: StackConfig, quiet: bool = False) -> None:
    """Start (or find running) every part and wait for every health check; idempotent.

    Raises StackError, whose message holds the failing part's log tail. What started stays
    running: call down(cfg) to stop it."""
    cfg.validate()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if ensure_dotenv(cfg) and not quiet:
        print(f"wrote new secrets to {cfg.env_file} (git-ignored; edit it to change them)")
    start_kafka(cfg, quiet=quiet)
    start_monitoring(cfg, quiet=quiet)
    start_services(cfg, quiet=quiet)
    if not quiet:
        print_summary(cfg)


def _recorded_names(cfg: StackConfig) -> list[str]:
    if not cfg.pids_dir.is_dir():
        return []
    return sorted(p.stem for p in cfg.pids_dir.glob("*.pid"))


def down(
    cfg: StackConfig,
    wipe: bool = False,
    parts: Sequence[str] | None = None,
    keep: Sequence[str] = (),
) -> list[str]:
    """Stop the parts this stack started (services first, Kafka last); only processes whose pid file
    and command line match. Keeps data unless `wipe` (then RUN_DIR is deleted). Returns the names
    stopped. `parts` limits it to those names, `keep` spares some (neither goes with `wipe`)."""
    if wipe and (parts is not None or keep):
        raise StackError("down(wipe=True) stops everything; do not pass parts or keep")
    names = [n for n in _recorded_names(cfg) if (parts is None or n in parts) and n not in keep]
    services = [n for n in names if n not in INFRA]
    stopped = _stop_names(cfg, services)
    stopped += _stop_names(cfg, [n for n in ("prometheus", "alertmanager") if n in names])
    stopped += _stop_names(cfg, [n for n in ("kafka",) if n in names])
    if wipe:
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    return stopped


def stop_part(cfg: StackConfig, name: str, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to one part (e.g. SIGKILL to a scorer worker) and wait until it is gone."""
    _stop_names(cfg, [name], sig)


def start_part(cfg: StackConfig, name: str) -> None:
    """(Re)start one part by name, as `up` would, and wait for its health check."""
    for part in all_parts(cfg):
        if part.name == name:
            _ensure_running(cfg, part, _checker(cfg, part))
            return
    raise StackError(f"no part named {name!r}")


def part_status(cfg: StackConfig) -> list[tuple[Part, int | None, bool]]:
    out: list[tuple[Part, int | None, bool]] = []
    for part in all_parts(cfg):
        pid = running_pid(cfg, part.name)
        out.append((part, pid, pid is not None and _checker(cfg, part)()))
    return out


def print_summary(cfg: StackConfig) -> None:
    print("\nFloorwatch local stack")
    for part in all_parts(cfg):
        print(f"  {part.name:<13} {part.url:<36} log: {log_path(cfg, part.name)}")
    print(f"  {'alerts ->':<13} {cfg.alert_webhook_url}")
    print(f"  run dir: {cfg.run_dir}   secrets: {cfg.env_file}")
    print("  stop: make down   (make down WIPE=1 also deletes the data)")


WEBHOOK_PLATFORMS: Final = ("chatwoot", "livechat", "sunshine")
_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def webhook_lines(metrics: str, now_s: float) -> list[str]:
    """One line per platform from ingest's /metrics: when its last delivery arrived (one that passed
    authentication and mapping) and how many it refused, by HTTP status, since ingest started."""
    last: dict[str, float] = {}
    refused: dict[str, dict[str, float]] = {p: {} for p in WEBHOOK_PLATFORMS}
    for line in metrics.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        platform = labels.get("platform", "")
        if platform not in refused:
            continue
        if m.group("name") == "floorwatch_ingest_webhook_last_delivery_timestamp_seconds":
            last[platform] = float(m.group("value"))
        elif m.group("name") == "floorwatch_ingest_webhook_requests_total" and labels.get("code", "2").startswith("4"):
            refused[platform][labels["code"]] = float(m.group("value"))
    out = []
    for platform in WEBHOOK_PLATFORMS:
        when = last.get(platform)
        seen = "no delivery yet"
        if when:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
            seen = f"last delivery {stamp} ({max(0.0, now_s - when):.0f} s ago)"
        errors = ", ".join(f"{code}: {n:g}" for code, n in sorted(refused[platform].items()) if n)
        out.append(f"  webhook {platform:<9} {seen}" + (f"; refused {errors} (see the ingest log)" if errors else ""))
    return out


def status(cfg: StackConfig) -> bool:
    ok = True
    ingest_up = False
    for part, pid, healthy in part_status(cfg):
        state = "healthy" if healthy else ("UNHEALTHY" if pid else "stopped")
        ok = ok and healthy
        ingest_up = ingest_up or (part.name == "ingest" and healthy)
        pid_s = str(pid) if pid else "-"
        print(f"  {part.name:<13} {state:<10} pid {pid_s:<8} {part.url:<36} {log_path(cfg, part.name)}")
    if ingest_up:  # the platform webhooks: did the first delivery arrive (docs/quickstart-platforms.md)
        try:
            metrics = httpx.get(f"{cfg.ingest_url}/metrics", timeout=5.0).text
        except httpx.HTTPError as err:
            print(f"  webhooks: ingest /metrics unreadable ({err})")
        else:
            print("\n".join(webhook_lines(metrics, time.time())))
    return ok


def copy_logs(cfg: StackConfig, dest: Path) -> None:
    """Copy RUN_DIR/logs (and the rendered configs) into `dest`, e.g. test-artifacts/logs."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in (cfg.logs_dir, cfg.config_dir):
        if folder.is_dir():
            for item in folder.iterdir():
                if item.is_file():
                    shutil.copy2(item, dest / item.name)


# --------------------------------------------------------------------------------------------- test handles


@dataclass
class KafkaBroker:
    """What the `kafka` test fixture yields: a running broker and a topic helper."""

    cfg: StackConfig
    bootstrap: str

    def create_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        """Create `name` unless it exists (usable from sync and async tests alike)."""
        create_topics(self.cfg, [(name, partitions, compact)])

    async def acreate_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        await asyncio.to_thread(self.create_topic, name, partitions, compact)

    def topics(self) -> list[str]:
        return _sync(lambda: _list_topics(self.bootstrap, **kafka_admin_kwargs(self.cfg)))


@dataclass
class RunningStack:
    """What the `stack` test fixture yields."""

    cfg: StackConfig
    env: dict[str, str]  # the full environment given to the services
    kafka_bootstrap: str
    ingest_url: str
    api_url: str
    scorer_metrics_url: str  # first worker's /metrics
    scorer_metrics_urls: list[str]
    prometheus_url: str
    alertmanager_url: str
    alert_webhook_url: str  # where Alertmanager posts: a test may listen there
    ingest_token: str
    api_token: str
    run_dir: Path

    def stop_part(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_part(self.cfg, name, sig)

    def start_part(self, name: str) -> None:
        start_part(self.cfg, name)

    def log(self, name: str) -> str:
        return _snapshot(log_path(self.cfg, name)) or ""


def reset(cfg: StackConfig) -> None:
    """Stop whatever an earlier run left in cfg.run_dir and delete it (test sessions start clean)."""
    down(cfg, wipe=True)


def start_broker_for_tests(cfg: StackConfig) -> KafkaBroker:
    start_kafka(cfg, quiet=True)
    return KafkaBroker(cfg=cfg, bootstrap=cfg.kafka_bootstrap)


def start_stack_for_tests(cfg: StackConfig) -> RunningStack:
    up(cfg, quiet=True)  # reuses the broker if the `kafka` fixture started it
    env = service_env(cfg)
    return RunningStack(
        cfg=cfg,
        env=env,
        kafka_bootstrap=cfg.kafka_bootstrap,
        ingest_url=cfg.ingest_url,
        api_url=cfg.api_url,
        scorer_metrics_url=f"http://127.0.0.1:{cfg.scorer_metrics_port}/metrics",
        scorer_metrics_urls=[f"http://127.0.0.1:{p}/metrics" for p in cfg.scorer_ports],
        prometheus_url=cfg.prometheus_url,
        alertmanager_url=cfg.alertmanager_url,
        alert_webhook_url=cfg.alert_webhook_url,
        ingest_token=env.get("INGEST_TOKEN", ""),
        api_token=env.get("API_TOKEN", ""),
        run_dir=cfg.run_dir,
    )


# --------------------------------------------------------------------------------------------- CLI


def _shell_env(cfg: StackConfig) -> str:
    env = service_env(cfg)
    keys = sorted(k for k in env if k not in os.environ or os.environ[k] != env[k])
    return "".join(f"export {k}={shlex.quote(env[k])}\n" for k in keys)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start every part not running and wait for its health check")
    p_down = sub.add_parser("down", help="stop every part this stack started")
    p_down.add_argument("--wipe", action="store_true", help=f"also delete RUN_DIR (default {StackConfig().run_dir})")
    sub.add_parser("status", help="show each part: pid, health, URL, log")
    sub.add_parser("jars", help="fetch the Kafka jars into KAFKA_CACHE if missing")
    p_render = sub.add_parser("render", help="render the Prometheus/Alertmanager configs into RUN_DIR/config")
    p_render.add_argument("--out", type=Path, help="write them here instead (e.g. to check them)")
    sub.add_parser("env", help="print `export` lines of the services' environment (for make demo)")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # connection-refused noise while waiting
    try:
        cfg = StackConfig.from_env()
        if args.cmd == "up":
            up(cfg)
        elif args.cmd == "down":
            stopped = down(cfg, wipe=args.wipe)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            if args.wipe:
                print(f"deleted {cfg.run_dir}")
        elif args.cmd == "status":
            return 0 if status(cfg) else 3
        elif args.cmd == "jars":
            print(ensure_jars(cfg))
        elif args.cmd == "render":
            for path in render_configs(cfg, args.out):
                print(path)
        elif args.cmd == "env":
            sys.stdout.write(_shell_env(cfg))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.cmd == "up":
            print("parts that did start keep running: `make down` stops them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
