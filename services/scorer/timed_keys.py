"""Keys in the order they came, each with a time: what stage 1 keeps to find the closed conversations past
retention and the tombstones past theirs, oldest first.

A deque of (ts, key) holds a tuple and an int object per key besides the key itself (~90 bytes); a small floor's
day leaves ~170,000 closed conversations and tombstones per worker by its end, each kept 24 hours. Here the times
are one array and the keys' lengths another (12 bytes a key); the keys' bytes go into chunks of `_CHUNK` bytes,
zlib-compressed once full: keys of one tenant and shop share most of their bytes. Traced over 100,000 keys: 48
bytes a key when their bytes were kept whole, 15 compressed with a floor's keys (35 bytes, numbered ids), 33 with
random 32-hex-digit ids. Only the newest chunk (filling) and the oldest (being read) are held plain.
"""

from __future__ import annotations

import zlib
from array import array
from collections import deque
from collections.abc import Iterable

_COMPACT_AT = 1024  # popped entries are dropped once there are this many and they are an eighth of all held
_CHUNK = 16 * 1024  # key bytes compressed together: a few hundred keys, ~0.1 ms to compress or read back


class TimedKeys:
    __slots__ = ("_head", "_left", "_lens", "_pos", "_reading", "_sealed", "_tail", "_tail_n", "_ts")

    def __init__(self, pairs: Iterable[tuple[int, bytes]] = ()) -> None:
        self._ts = array("q")
        self._lens = array("I")
        self._head = 0  # the oldest entry not popped
        self._sealed: deque[tuple[int, bytes]] = deque()  # (keys in it, their bytes compressed), oldest first
        self._tail = bytearray()  # the newest keys' bytes, filling up to _CHUNK
        self._tail_n = 0
        self._reading = b""  # the oldest chunk's bytes, plain, while its keys are popped
        self._pos = 0  # where the next key to pop starts in it
        self._left = 0  # keys in it not popped yet
        for ts, key in pairs:
            self.append(ts, key)

    def append(self, ts: int, key: bytes) -> None:
        self._ts.append(ts)
        self._lens.append(len(key))
        self._tail += key
        self._tail_n += 1
        if len(self._tail) >= _CHUNK:
            self._sealed.append((self._tail_n, zlib.compress(self._tail)))
            self._tail, self._tail_n = bytearray(), 0

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
        if not self._left:  # the oldest chunk is read out: the next one (the filling one if none is sealed)
            if self._sealed:
                self._left, packed = self._sealed.popleft()
                self._reading = zlib.decompress(packed)
            else:
                self._left, self._reading = self._tail_n, bytes(self._tail)
                self._tail, self._tail_n = bytearray(), 0
            self._pos = 0
        start = self._pos
        end = start + self._lens[i]
        out = self._ts[i], self._reading[start:end]
        self._head, self._pos, self._left = i + 1, end, self._left - 1
        if self._head >= _COMPACT_AT and 8 * self._head >= len(self._ts):
            # An eighth popped at most stays held; each entry is moved ~8 times over its life, in C.
            del self._ts[: self._head], self._lens[: self._head]
            self._head = 0
        return out
