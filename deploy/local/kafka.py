"""The local broker: its jars (Maven Central, cached outside git), a single-node KRaft storage and
config, the broker process with an admin request as its health check, and the stack's topics."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from deploy.local.config import StackConfig, StackError, service_env, topics_for
from deploy.local.kafka_security import ADMIN_USER
from deploy.local.processes import (
    Part,
    ensure_running,
    failure,
    log_path,
    port_open,
    running_pid,
    write_if_changed,
)
from services.core.config import TopicSpec, deployment_topics
from services.core.kafka_security import client_kwargs
from services.core.kafka_topics import create_missing_topics

T = TypeVar("T")

KAFKA_TIMEOUT_S: Final = 60.0


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
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


# ---- jars, config, storage


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
    changed = write_if_changed(props, server)
    write_if_changed(log4j, quiet)
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
        raise failure(cfg, "kafka", f"formatting storage failed (exit {result.returncode})")


# ---- the broker and its health check


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


def topic_names(cfg: StackConfig) -> list[str]:
    """The broker's topics (an admin request as the stack's admin user)."""
    return run_sync(lambda: _list_topics(cfg.kafka_bootstrap, **kafka_admin_kwargs(cfg)))


def kafka_answers(cfg: StackConfig) -> bool:
    if not port_open(cfg.kafka_port):
        return False
    try:
        topic_names(cfg)
    except Exception:
        return False
    return True


def kafka_part(cfg: StackConfig, libs: Path | None = None) -> Part:
    props, _ = _kafka_files(cfg)
    return Part(
        name="kafka",
        argv=(*_kafka_java_args(cfg, libs or cfg.kafka_cache), "kafka.Kafka", str(props)),
        url=cfg.kafka_bootstrap,
        health_url=None,
        ports=(cfg.kafka_port, cfg.kafka_controller_port),
        timeout_s=KAFKA_TIMEOUT_S,
        check=lambda: kafka_answers(cfg),
        check_label=f"a Kafka admin request on {cfg.kafka_bootstrap}",
    )


# ---- topics


def topic_specs(cfg: StackConfig, env: Mapping[str, str]) -> list[TopicSpec]:
    """(name, partitions, compacted) of every topic the stack needs, named as in `env` (TOPIC_*)."""
    return deployment_topics(topics_for(env), cfg.event_partitions, cfg.queue_partitions)


async def _create_topics(bootstrap: str, specs: Sequence[tuple[str, int, bool]], **security: Any) -> list[str]:
    """Create the missing ones; returns the names created. Existing topics are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **security)
    await admin.start()
    try:
        names, problems = await create_missing_topics(admin, map(TopicSpec._make, specs), timeout_ms=15000)
        if problems:
            raise StackError("could not create topics: " + "; ".join(problems))
        if names:
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
            return run_sync(lambda: _create_topics(cfg.kafka_bootstrap, specs, **kafka_admin_kwargs(cfg)))
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
    ensure_running(cfg, part, quiet=quiet)
    if changed and was_running and not quiet:
        print("  kafka: server.properties changed while the broker runs; `down` then `up` to apply it")
    created = create_topics(cfg, topic_specs(cfg, service_env(cfg)))
    if created and not quiet:
        print(f"  kafka: created topics {', '.join(created)}")
