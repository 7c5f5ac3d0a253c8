"""Copy a service's output (stdin) into its log file, rotating the file by size.

`python deploy/local/logpump.py LOG MAX_BYTES BACKUPS`: the local stack starts one per service with the
service's stdout and stderr on this process's stdin. When writing a line would take LOG past MAX_BYTES,
LOG becomes LOG.1 (LOG.1 becomes LOG.2, … up to BACKUPS; the oldest goes) and a new LOG begins, so a
stack left running for weeks keeps at most (BACKUPS + 1) × MAX_BYTES of each log. Lines are never split
across files (a line longer than 64 KiB is written in 64 KiB pieces). It ends when the service closes
its output, i.e. when the service ends, so nothing needs to stop it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

READ_LIMIT = 64 * 1024


def rotate(path: Path, backups: int) -> None:
    if backups < 1:
        path.unlink(missing_ok=True)
        return
    path.with_name(f"{path.name}.{backups}").unlink(missing_ok=True)
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{i + 1}"))
    if path.exists():
        path.rename(path.with_name(f"{path.name}.1"))


def pump(source: BinaryIO, path: Path, max_bytes: int, backups: int) -> None:
    out = path.open("ab")
    size = out.tell()
    try:
        while chunk := source.readline(READ_LIMIT):
            if size and size + len(chunk) > max_bytes:
                out.close()
                rotate(path, backups)
                out = path.open("ab")
                size = 0
            out.write(chunk)
            out.flush()  # a crash's last lines reach the file (the stack shows them on a failed start)
            size += len(chunk)
    finally:
        out.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: logpump.py LOG MAX_BYTES BACKUPS", file=sys.stderr)
        return 2
    path, max_bytes, backups = Path(argv[0]), int(argv[1]), int(argv[2])
    path.parent.mkdir(parents=True, exist_ok=True)
    pump(sys.stdin.buffer, path, max(1, max_bytes), max(0, backups))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
