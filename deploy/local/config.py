"""The local stack's settings: where and how it runs (StackConfig), its secrets file and the environment
every service process gets. Defaults come from services/core/config.py (documented in .env.example)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from deploy.local.kafka_security import LocalKafkaSecrets
from services.core import config as core

REPO: Final = Path(__file__).resolve().parents[2]

SECRET_NAMES: Final = (
    "INGEST_TOKEN",
    "API_TOKEN",
    "CHATWOOT_WEBHOOK_SECRET",
    "LIVECHAT_SECRET_KEY",
    "SUNSHINE_API_KEY",
    "AGENT_ID_SALT",  # keys the agent-<hash> names of e-mail agent ids (services/core/privacy.py)
)
KAFKA_SECURITY_MODES: Final = ("plaintext", "sasl_ssl")
EPHEMERAL_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")


class StackError(RuntimeError):
    """A part failed to start or to answer its health check (message carries its log tail)."""


def ephemeral_ports(path: Path | None = None) -> range | None:
    """The ports the kernel hands to outgoing connections (None where it does not say)."""
    try:
        low, high = map(int, (path or EPHEMERAL_RANGE_FILE).read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def ephemeral_clash(ports: list[int], path: Path | None = None) -> str | None:
    """Why `ports` are unsafe to listen on, or None. A port in the ephemeral range can be taken by any
    outgoing connection; while a part is down, a client retrying it can even connect to itself from that
    very port (a TCP self-connect) and keep it, so the part cannot bind it again on restart."""
    eph = ephemeral_ports(path)
    if eph is None:
        return None
    inside = sorted(p for p in ports if p in eph)
    if not inside:
        return None
    return (
        f"port(s) {inside} lie in this machine's ephemeral port range {eph.start}-{eph.stop - 1} "
        f"(net.ipv4.ip_local_port_range): an outgoing connection can hold such a port, even a client "
        f"retrying it while its part restarts, and the part then cannot listen on it again. "
        f"Choose ports below {eph.start}"
    )


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
    """Where and how the local stack runs.

    Environment variable for each field: RUN_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT, INGEST_PORT,
    API_PORT, SCORER_METRICS_PORT (first worker; worker i listens on +i), PROMETHEUS_PORT,
    ALERTMANAGER_PORT, EVENT_PARTITIONS, QUEUE_PARTITIONS, SCORER_WORKERS, KAFKA_VERSION,
    KAFKA_CACHE, KAFKA_HEAP, ALERT_WEBHOOK_URL.
    """

    repo: Path = REPO
    run_dir: Path = REPO / core.DEFAULT_RUN_DIR
    kafka_port: int = core.DEFAULT_KAFKA_PORT
    kafka_controller_port: int = core.DEFAULT_KAFKA_CONTROLLER_PORT
    ingest_port: int = core.DEFAULT_INGEST_PORT
    api_port: int = core.DEFAULT_API_PORT
    scorer_metrics_port: int = core.DEFAULT_SCORER_METRICS_PORT
    prometheus_port: int = core.DEFAULT_PROMETHEUS_PORT
    alertmanager_port: int = core.DEFAULT_ALERTMANAGER_PORT
    event_partitions: int = core.DEFAULT_EVENT_PARTITIONS
    queue_partitions: int = core.DEFAULT_QUEUE_PARTITIONS
    scorer_workers: int = core.DEFAULT_SCORER_WORKERS
    kafka_version: str = core.DEFAULT_KAFKA_VERSION
    kafka_cache: Path = field(default_factory=lambda: default_kafka_cache(core.DEFAULT_KAFKA_VERSION))
    kafka_heap: str = core.DEFAULT_KAFKA_HEAP
    alert_webhook_url: str = core.DEFAULT_ALERT_WEBHOOK_URL
    # Or "sasl_ssl": SCRAM over TLS, the only listener clients reach.
    kafka_security: str = core.DEFAULT_KAFKA_SECURITY
    env_file: Path = REPO / ".env"
    # Each service's log is rotated past this size, keeping this many older files (LOG_MAX_BYTES, LOG_BACKUPS).
    log_max_bytes: int = core.DEFAULT_LOG_MAX_BYTES
    log_backups: int = core.DEFAULT_LOG_BACKUPS
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

        version = env.get("KAFKA_VERSION") or core.DEFAULT_KAFKA_VERSION
        cfg = cls(
            run_dir=(REPO / (env.get("RUN_DIR") or core.DEFAULT_RUN_DIR)).resolve(),  # relative: to the repo
            kafka_port=integer("KAFKA_PORT", core.DEFAULT_KAFKA_PORT),
            kafka_controller_port=integer("KAFKA_CONTROLLER_PORT", core.DEFAULT_KAFKA_CONTROLLER_PORT),
            ingest_port=integer("INGEST_PORT", core.DEFAULT_INGEST_PORT),
            api_port=integer("API_PORT", core.DEFAULT_API_PORT),
            scorer_metrics_port=integer("SCORER_METRICS_PORT", core.DEFAULT_SCORER_METRICS_PORT),
            prometheus_port=integer("PROMETHEUS_PORT", core.DEFAULT_PROMETHEUS_PORT),
            alertmanager_port=integer("ALERTMANAGER_PORT", core.DEFAULT_ALERTMANAGER_PORT),
            event_partitions=integer("EVENT_PARTITIONS", core.DEFAULT_EVENT_PARTITIONS),
            queue_partitions=integer("QUEUE_PARTITIONS", core.DEFAULT_QUEUE_PARTITIONS),
            scorer_workers=integer("SCORER_WORKERS", core.DEFAULT_SCORER_WORKERS),
            kafka_version=version,
            kafka_cache=Path(env.get("KAFKA_CACHE") or default_kafka_cache(version, env)),
            kafka_heap=env.get("KAFKA_HEAP") or core.DEFAULT_KAFKA_HEAP,
            alert_webhook_url=env.get("ALERT_WEBHOOK_URL") or core.DEFAULT_ALERT_WEBHOOK_URL,
            kafka_security=(env.get("KAFKA_SECURITY") or core.DEFAULT_KAFKA_SECURITY).lower(),
            env_file=env_path,
            log_max_bytes=integer("LOG_MAX_BYTES", core.DEFAULT_LOG_MAX_BYTES),
            log_backups=integer("LOG_BACKUPS", core.DEFAULT_LOG_BACKUPS),
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
        ports = self.listen_ports
        if len(set(ports)) != len(ports):
            raise StackError(f"two parts share a port: {sorted(ports)}")

    # ---- derived addresses
    @property
    def listen_ports(self) -> list[int]:
        """Every port a part of the stack listens on."""
        return [
            self.kafka_port,
            self.kafka_controller_port,
            self.ingest_port,
            self.api_port,
            self.prometheus_port,
            self.alertmanager_port,
            *self.scorer_ports,
        ]

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


def topics_for(env: Mapping[str, str]) -> core.Topics:
    """services.core.config.Topics as the services will see it (TOPIC_* from `env`)."""
    names = {k: v for k, v in env.items() if k.startswith("TOPIC_")}
    saved = {k: os.environ.get(k) for k in names}
    try:
        os.environ.update(names)
        return core.Topics()
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
