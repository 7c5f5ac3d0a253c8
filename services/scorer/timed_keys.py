"""Keys in the order they came, each with a time: what stage 1 keeps to find the closed conversations past
retention and the tombstones past theirs, oldest first.

A deque of (ts, key) holds a tuple and an int object per key besides the key itself (~90 bytes); a small floor's
day leaves ~100,000 tombstones per worker, each kept 24 hours. Here the times are one array, the keys' bytes one
bytearray and their lengths another array: ~12 bytes per key besides its bytes, where a bytes object of its own
would add ~36 more (84 -> 48 bytes for a 35-byte key, traced).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_COMPACT_AT = 1024  # popped entries are dropped once there are this many and they are an eighth of all held


class TimedKeys:
    __slots__ = ("_blob", "_head", "_lens", "_pos", "_ts")

    def __init__(self, pairs: Iterable[tuple[int, bytes]] = ()) -> None:
        self._ts = array("q")
        self._lens = array("I")
        self._blob = bytearray()
        self._head = 0  # the oldest entry not popped
        self._pos = 0  # where its bytes start in the blob
        for ts, key in pairs:
            self.append(ts, key)

    def append(self, ts: int, key: bytes) -> None:
        self._ts.append(ts)
        self._lens.append(len(key))
        self._blob += key

    def __len__(self) -> int:
        return len(self._ts) - self._head

    def first_ts(self) -> int:
        """The oldest key's time (IndexError when empty)."""
        if self._head >= len(self._ts):
            raise IndexError("no keys")
        return self._ts[self._head]

    def popleft(self) -> tuple[int, bytes]:
        i = self._head
        if i >= len(self._ts):
            raise IndexError("no keys")
        start = self._pos
        end = start + self._lens[i]
        out = self._ts[i], bytes(self._blob[start:end])
        self._head, self._pos = i + 1, end
        if self._head >= _COMPACT_AT and 8 * self._head >= len(self._ts):
            # An eighth popped at most stays held; each entry is moved ~8 times over its life, in C.
            del self._ts[: self._head], self._lens[: self._head], self._blob[: self._pos]
            self._head = self._pos = 0
        return out
