#!/usr/bin/env python3
"""Run the whole Floorwatch stack on one machine, as plain processes (no Docker, no systemd).

    python deploy/local/stack.py up            # start what is not running, wait for every health check
    python deploy/local/stack.py status        # pid, health, URL and log of each part
    python deploy/local/stack.py down [--wipe] # stop what we started (and delete RUN_DIR with --wipe)

Parts, in start order: a single-node Kafka in KRaft mode (jars from Maven Central, cached outside
git), Prometheus, Alertmanager, then the services (ingest, SCORER_WORKERS scorer workers, api).
Each part logs to RUN_DIR/logs/<name>.log and has RUN_DIR/pids/<name>.pid; `up` is idempotent.

Every setting comes from the environment (then `.env` at the repository root); see StackConfig
and `.env.example`. This file keeps up/down/status and the command line; the parts live by concern
beside it: config.py (settings, secrets, the services' environment), processes.py (supervision, pid
files, logs, health waits), kafka.py (jars, KRaft storage, broker, topics), monitoring.py
(Prometheus/Alertmanager), service_parts.py (ingest, scorer workers, api) and testing.py (the test
fixtures' handles, used through tests/conftest.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import httpx

if __package__ in (None, ""):  # run as a script: this folder's kafka.py, config.py must not shadow others'
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from deploy.local.config import StackConfig, StackError, ensure_dotenv, ephemeral_clash, service_env
from deploy.local.kafka import ensure_jars, kafka_part, start_kafka
from deploy.local.monitoring import alertmanager_part, prometheus_part, render_configs, start_monitoring
from deploy.local.processes import Part, ensure_running, log_path, recorded_names, running_pid, stop_names
from deploy.local.service_parts import service_parts, start_services

INFRA: Final = ("kafka", "prometheus", "alertmanager")


def all_parts(cfg: StackConfig) -> list[Part]:
    return [kafka_part(cfg), prometheus_part(cfg), alertmanager_part(cfg), *service_parts(cfg)]


def up(cfg: StackConfig, quiet: bool = False) -> None:
    """Start (or find running) every part and wait for every health check; idempotent.

    Raises StackError, whose message holds the failing part's log tail. What started stays
    running: call down(cfg) to stop it."""
    cfg.validate()
    clash = ephemeral_clash(cfg.listen_ports)
    if clash is not None and not quiet:  # a warning: it works until a part restarts at the wrong moment
        print(f"warning: {clash} (see .env.example)", flush=True)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if ensure_dotenv(cfg) and not quiet:
        print(f"wrote new secrets to {cfg.env_file} (git-ignored; edit it to change them)")
    start_kafka(cfg, quiet=quiet)
    start_monitoring(cfg, quiet=quiet)
    start_services(cfg, quiet=quiet)
    if not quiet:
        print_summary(cfg)


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
    names = [n for n in recorded_names(cfg) if (parts is None or n in parts) and n not in keep]
    services = [n for n in names if n not in INFRA]
    stopped = stop_names(cfg, services)
    stopped += stop_names(cfg, [n for n in ("prometheus", "alertmanager") if n in names])
    stopped += stop_names(cfg, [n for n in ("kafka",) if n in names])
    if wipe:
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    return stopped


def stop_part(cfg: StackConfig, name: str, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to one part (e.g. SIGKILL to a scorer worker) and wait until it is gone."""
    stop_names(cfg, [name], sig)


def start_part(cfg: StackConfig, name: str) -> None:
    """(Re)start one part by name, as `up` would, and wait for its health check."""
    for part in all_parts(cfg):
        if part.name == name:
            ensure_running(cfg, part)
            return
    raise StackError(f"no part named {name!r}")


def part_status(cfg: StackConfig) -> list[tuple[Part, int | None, bool]]:
    out: list[tuple[Part, int | None, bool]] = []
    for part in all_parts(cfg):
        pid = running_pid(cfg, part.name)
        out.append((part, pid, pid is not None and part.healthy()))
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
