"""A bounded memory of recently acknowledged event_ids, to skip re-sending retried events.

Only ids that Kafka acknowledged are remembered. The store is bounded by count (`max_size`,
oldest acknowledgements evicted first) and by age (`ttl_s`). It only saves work: the scorer
deduplicates by event_id as well, so forgetting an id early never changes a number.

Memory layout: one dict entry per id pointing at the `_Ack` of the batch that acknowledged it,
and a deque of those batches in acknowledgement order. Eviction works from the front of the
deque (O(1) per id; the oldest batch is trimmed id by id when over size), so the dict is never
used as a FIFO queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable


class _Ack:
    __slots__ = ("expires", "ids", "start")

    def __init__(self, expires: float, ids: tuple[str, ...]) -> None:
        self.expires = expires
        self.ids = ids
        self.start = 0  # ids before this index were already evicted for size


class RecentIds:
    def __init__(self, max_size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._clock = clock
        self._where: dict[str, _Ack] = {}
        self._acks: deque[_Ack] = deque()

    def __len__(self) -> int:
        """Ids held; expired ones are dropped on the next `add`."""
        return len(self._where)

    def __contains__(self, event_id: object) -> bool:
        ack = self._where.get(event_id) if isinstance(event_id, str) else None
        return ack is not None and ack.expires > self._clock()

    def add(self, event_ids: Iterable[str]) -> None:
        """Remember ids that Kafka has just acknowledged."""
        ids = tuple(event_ids)
        now = self._clock()
        if ids:
            ack = _Ack(now + self.ttl_s, ids)
            for event_id in ids:
                self._where[event_id] = ack
            self._acks.append(ack)
        self._evict(now)

    def _evict(self, now: float) -> None:
        where = self._where
        acks = self._acks
        while acks:
            oldest = acks[0]
            if oldest.expires <= now:
                acks.popleft()
                for event_id in oldest.ids[oldest.start :]:
                    self._forget(event_id, oldest)
                continue
            if len(where) <= self.max_size:
                break
            self._forget(oldest.ids[oldest.start], oldest)
            oldest.start += 1
            if oldest.start == len(oldest.ids):
                acks.popleft()

    def _forget(self, event_id: str, ack: _Ack) -> None:
        # The id may have been acknowledged again since; then keep the newer entry.
        if self._where.get(event_id) is ack:
            del self._where[event_id]
