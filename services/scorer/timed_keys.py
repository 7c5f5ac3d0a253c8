"""Keys in the order they came, each with a time: what stage 1 keeps to find the closed conversations past
retention and the tombstones past theirs, oldest first.

A deque of (ts, key) holds a tuple and an int object per key besides the key itself (~90 bytes); a small floor's
day leaves ~100,000 tombstones per worker, each kept 24 hours. Here the times are one array and the keys one list:
~16 bytes per key besides it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_COMPACT_AT = 1024  # popped slots dropped once there are this many and they are at least half the list


class TimedKeys:
    __slots__ = ("_head", "_keys", "_ts")

    def __init__(self, pairs: Iterable[tuple[int, bytes]] = ()) -> None:
        self._ts = array("q")
        self._keys: list[bytes] = []
        self._head = 0  # the oldest not popped
        for ts, key in pairs:
            self.append(ts, key)

    def append(self, ts: int, key: bytes) -> None:
        self._ts.append(ts)
        self._keys.append(key)

    def __len__(self) -> int:
        return len(self._keys) - self._head

    def first_ts(self) -> int:
        """The oldest key's time (IndexError when empty)."""
        if self._head >= len(self._keys):
            raise IndexError("no keys")
        return self._ts[self._head]

    def popleft(self) -> tuple[int, bytes]:
        i = self._head
        if i >= len(self._keys):
            raise IndexError("no keys")
        out = self._ts[i], self._keys[i]
        self._keys[i] = b""  # the key goes now, not at the next compaction
        self._head = i + 1
        if self._head >= _COMPACT_AT and 2 * self._head >= len(self._keys):
            del self._ts[: self._head]
            del self._keys[: self._head]
            self._head = 0
        return out
