"""Process supervision for the local stack: a Part is one process with its own health check; it is
started in its own session with its output through a rotating log pump, recorded in pid files under
RUN_DIR/pids, waited for until healthy, and stopped only if it is still the process we started."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from deploy.local.config import StackConfig, StackError, ephemeral_clash

LOGPUMP: Final = Path(__file__).resolve().parent / "logpump.py"
STOP_TIMEOUT_S: Final = 20.0
LOG_TAIL_LINES: Final = 40

_children: dict[int, subprocess.Popen[bytes]] = {}  # processes started by this interpreter (reaped)
_pumps: list[subprocess.Popen[bytes]] = []  # their log pumps (they end with the process they serve)


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Part:
    """One process of the stack and how to tell it is healthy."""

    name: str
    argv: tuple[str, ...]
    url: str  # what `up` prints
    health_url: str | None  # answers 200 when healthy; None: `check` tells (Kafka: an admin request)
    ports: tuple[int, ...]
    timeout_s: float
    env: Mapping[str, str] | None = None
    check: Callable[[], bool] | None = None  # the health check when it is not a GET of health_url
    check_label: str = ""  # what `check` asks, for the error when it never answers

    def healthy(self) -> bool:
        if self.check is not None:
            return self.check()
        return self.health_url is not None and http_ok(self.health_url)


# ---- files: pid files, logs, rendered configs


def pid_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.pid"


def _argv_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.cmdline"


def _spec_path(cfg: StackConfig, name: str) -> Path:
    return cfg.pids_dir / f"{name}.spec"


def log_path(cfg: StackConfig, name: str) -> Path:
    return cfg.logs_dir / f"{name}.log"


def snapshot(path: Path) -> str | None:
    """The file's text, None when it cannot be read (to tell whether a rendered config changed)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def log_tail(cfg: StackConfig, name: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path(cfg, name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def failure(cfg: StackConfig, name: str, why: str) -> StackError:
    """A StackError that carries the part's log tail."""
    return StackError(f"{name}: {why}\n--- last lines of {log_path(cfg, name)} ---\n{log_tail(cfg, name)}\n---")


def recorded_names(cfg: StackConfig) -> list[str]:
    if not cfg.pids_dir.is_dir():
        return []
    return sorted(p.stem for p in cfg.pids_dir.glob("*.pid"))


# ---- is it ours and alive


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


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# ---- start


def spawn(cfg: StackConfig, part: Part) -> int:
    busy = [p for p in part.ports if not _port_free(p)]
    if busy:
        clash = ephemeral_clash(busy)
        raise StackError(
            f"{part.name}: port(s) {busy} already in use by a process this stack did not start; "
            "stop it or choose other ports (see .env.example)" + (f". Note: {clash}" if clash else "")
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


def _wait_healthy(cfg: StackConfig, part: Part, pid: int) -> None:
    deadline = time.monotonic() + part.timeout_s
    while True:
        if part.healthy():
            return
        if not _alive(pid):
            raise failure(cfg, part.name, f"process {pid} exited before it answered its health check")
        if time.monotonic() > deadline:
            what = part.health_url or part.check_label
            raise failure(cfg, part.name, f"no answer from {what} within {part.timeout_s:.0f}s (pid {pid})")
        time.sleep(0.5)


def _start(cfg: StackConfig, part: Part, quiet: bool) -> tuple[int, bool]:
    """Start `part` unless our process for it is alive. Returns (pid, started_now)."""
    pid = running_pid(cfg, part.name)
    if pid is not None:
        if _spec(part) != snapshot(_spec_path(cfg, part.name)):
            raise StackError(
                f"{part.name} (pid {pid}) runs with other settings than the current ones "
                "(ports, paths or worker index changed): `make down`, then `make up`"
            )
        if not quiet:
            print(f"  {part.name}: already running (pid {pid})", flush=True)
        return pid, False
    _forget(cfg, part.name)
    pid = spawn(cfg, part)
    if not quiet:
        print(f"  {part.name}: started (pid {pid})", flush=True)
    return pid, True


def ensure_running(cfg: StackConfig, part: Part, quiet: bool = False) -> None:
    """Start `part` unless it runs, and wait for its health check."""
    pid, _ = _start(cfg, part, quiet)
    _wait_healthy(cfg, part, pid)


def ensure_many(cfg: StackConfig, parts: Sequence[Part], quiet: bool) -> None:
    """Start every part that is not running, then wait for all of them (they boot in parallel)."""
    started = [(part, *_start(cfg, part, quiet)) for part in parts]
    for part, pid, _ in started:
        _wait_healthy(cfg, part, pid)


def reload(cfg: StackConfig, name: str) -> None:
    """Prometheus and Alertmanager reload their configuration on SIGHUP: no HTTP lifecycle endpoint needed."""
    pid = running_pid(cfg, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)


# ---- stop


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


def stop_names(cfg: StackConfig, names: Sequence[str], sig: int = signal.SIGTERM) -> list[str]:
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
